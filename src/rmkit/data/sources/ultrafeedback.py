"""UltraFeedback-binarized and Skywork-Reward-Preference-80K style rows → PreferencePair.

- UltraFeedback-binarized style: `prompt` (str or messages), `chosen` / `rejected` as strings or
  message lists (a list may repeat the prompt; the shared prefix is stripped).
- Skywork-Reward-Preference-80K: `chosen` / `rejected` are full message lists (user + assistant),
  with no prompt column; the shared leading turns become the prompt.
"""
from __future__ import annotations

from typing import Any, Mapping

from rmkit.data.schema import DataError, PreferencePair
from rmkit.data.sources.common import conv_field, split_shared_prefix

HUB_IDS = {"ultrafeedback": "trl-lib/ultrafeedback_binarized",
           "skywork": "Skywork/Skywork-Reward-Preference-80K-v0.2"}


def matches_ultrafeedback(columns: set[str]) -> bool:
    return {"prompt", "chosen", "rejected"} <= columns


def matches_skywork(columns: set[str]) -> bool:
    return {"chosen", "rejected"} <= columns and "prompt" not in columns


def _strip_prompt(prompt, reply, where, name):
    if len(reply) > len(prompt) and reply[:len(prompt)] == prompt:
        return reply[len(prompt):]
    if reply and reply[0].role == "user":
        raise DataError("message list does not start with the prompt", **where, field=name)
    return reply


def parse_row(row: Mapping[str, Any], *, file: str | None, index: int,
              source: str = "ultrafeedback") -> PreferencePair:
    where = {"file": file, "row": index}
    chosen = conv_field(row, "chosen", where, default_role="assistant")
    rejected = conv_field(row, "rejected", where, default_role="assistant")
    if row.get("prompt") is not None:
        prompt = conv_field(row, "prompt", where, default_role="user")
        chosen = _strip_prompt(prompt, chosen, where, "chosen")
        rejected = _strip_prompt(prompt, rejected, where, "rejected")
    else:
        prompt, chosen, rejected = split_shared_prefix(chosen, rejected, where=where)
    meta = {k: row[k] for k in ("score_chosen", "score_rejected", "metadata", "source_index")
            if row.get(k) is not None}
    return PreferencePair(id=str(row.get("id", f"{source}:{index}")),
                          source=str(row.get("source") or source), prompt=prompt, chosen=chosen,
                          rejected=rejected, category=row.get("category"), meta=meta
                          ).validate(file=file, row=index)


def parse_skywork_row(row: Mapping[str, Any], *, file: str | None, index: int) -> PreferencePair:
    return parse_row(row, file=file, index=index, source="skywork-80k")
