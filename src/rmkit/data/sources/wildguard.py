"""WildGuardMix (`allenai/wildguardmix`, config `wildguardtrain`) → refusal / compliance pairs.

Rows are `{prompt, adversarial, response, prompt_harm_label, response_refusal_label,
response_harm_label, subcategory}`; labels are strings ("harmful" / "unharmful", "refusal" /
"compliance"), None on prompt-only rows. For each prompt with both a refusal and a compliance
response: a harmful prompt prefers the refusal, an unharmful one the compliance (the first of each
kind in file order). Rows are grouped by prompt over the whole input (held in memory: the train
split has ~38K rows with responses). Prompt-only rows and prompts lacking a counterpart are counted
in `dropped`, not errors.

    load_pairs("allenai/wildguardmix:train", format="wildguard")   # gated: accept the terms first
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Iterator, Mapping

from rmkit.data.schema import DataError, Message, PreferencePair
from rmkit.data.sources.common import get_field

HUB_ID = "allenai/wildguardmix"
HARM = ("harmful", "unharmful")
REFUSAL = ("refusal", "compliance")


def matches(columns: set[str]) -> bool:
    return {"prompt", "response", "prompt_harm_label", "response_refusal_label"} <= columns


def _label(row: Mapping[str, Any], name: str, allowed: tuple[str, ...], where: dict) -> str:
    value = get_field(row, name, where)
    if value not in allowed:
        raise DataError(f"expected one of {allowed}, got {value!r}", **where, field=name)
    return value


def _collect(rows, file, dropped) -> Iterator[tuple[str, dict] | DataError]:
    for index, row in rows:
        where = {"file": file, "row": index}
        if row.get("response") is None:
            dropped["prompt_only"] += 1
            continue
        try:
            prompt = get_field(row, "prompt", where)
            harm = _label(row, "prompt_harm_label", HARM, where)
            kind = _label(row, "response_refusal_label", REFUSAL, where)
            response = get_field(row, "response", where)
        except DataError as e:
            yield e
            continue
        yield prompt, {"index": index, "harm": harm, "kind": kind, "response": response, "row": row}


def _pair(prompt: str, items: dict[str, dict]) -> PreferencePair:
    first = min(it["index"] for it in items.values())
    harmful = items["refusal"]["harm"] == "harmful"
    good, bad = (items["refusal"], items["compliance"]) if harmful else \
        (items["compliance"], items["refusal"])
    row = good["row"]
    meta = {"prompt_harm_label": good["harm"], "adversarial": row.get("adversarial"),
            "subcategory": row.get("subcategory"), "chosen_kind": good["kind"]}
    return PreferencePair(id=f"wildguard:{first}", source="wildguard",
                          prompt=[Message("user", prompt)],
                          chosen=[Message("assistant", good["response"])],
                          rejected=[Message("assistant", bad["response"])], category="safety",
                          meta={k: v for k, v in meta.items() if v is not None}).validate()


def iter_rows(rows: Iterable[tuple[int, Mapping[str, Any]]], *, file: str | None,
              dropped: Counter | None = None) -> Iterator[PreferencePair | DataError]:
    """One pair per prompt that has both a refusal and a compliance response, in first-seen order."""
    dropped = dropped if dropped is not None else Counter()
    groups: dict[str, dict[str, dict]] = {}
    for item in _collect(rows, file, dropped):
        if isinstance(item, DataError):
            yield item
            continue
        prompt, it = item
        groups.setdefault(prompt, {}).setdefault(it["kind"], it)
    for prompt, items in groups.items():
        if len(items) < 2:
            dropped["no_counterpart"] += 1
            continue
        yield _pair(prompt, items)
