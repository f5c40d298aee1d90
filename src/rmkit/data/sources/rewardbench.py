"""RewardBench v1 (`allenai/reward-bench`, split `filtered`) rows → PreferencePair.

Reads the canonical schema `{id, subset, prompt, chosen, chosen_model, rejected, rejected_model}`
and the re-export `{question, response_A (chosen), response_B (rejected), subset, id, domain}`.
"""
from __future__ import annotations

from typing import Any, Mapping

from rmkit.data.schema import Message, PreferencePair
from rmkit.data.sources.common import get_field

HUB_ID = "allenai/reward-bench"
SPLIT = "filtered"
COLUMNS = {"prompt", "chosen", "rejected", "subset"}
ALT_COLUMNS = {"question", "response_A", "response_B", "subset"}


def matches(columns: set[str]) -> bool:
    return COLUMNS <= columns or ALT_COLUMNS <= columns


def parse_row(row: Mapping[str, Any], *, file: str | None, index: int) -> PreferencePair:
    where = {"file": file, "row": index}
    alt = "question" in row and "prompt" not in row
    p, c, r = ("question", "response_A", "response_B") if alt else ("prompt", "chosen", "rejected")
    if alt and row.get("label", 1) not in (1, "1", None):
        c, r = r, c
    subset = get_field(row, "subset", where)
    meta = {k: row[k] for k in ("chosen_model", "rejected_model") if row.get(k) is not None}
    return PreferencePair(
        id=str(row.get("id", index)), source="rewardbench", category=subset, meta=meta,
        prompt=[Message("user", get_field(row, p, where))],
        chosen=[Message("assistant", get_field(row, c, where, allow_empty=True))],
        rejected=[Message("assistant", get_field(row, r, where, allow_empty=True))],
    ).validate(file=file, row=index)
