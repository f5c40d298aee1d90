"""Magpie preference rows (`instruction`, `responses`, `rewards_armorm`, `task_category`) → PreferencePair.

The format of the Magpie DPO sets (e.g. `Magpie-Align/Magpie-Llama-3.1-Pro-DPO-100K-v0.1`) and of
magpie's `data_po` examples: several responses per instruction, each with an ArmoRM score. Chosen is
the highest-scored response, rejected the lowest (the first one on equal scores); a row whose scores
are all equal is an error (field `rewards_armorm`). `meta` keeps the scores and their average
(`armorm_mean`, what the Skywork recipe ranks by); `category` is math / code / other from
`task_category`.

Also read: argilla/magpie-ultra-v0.1 rows (`instruction`, `response` / `response_base` with ArmoRM
`score` / `score_base`, `primary_tag` as the task category): its two responses, same rule.

    load_pairs("../shared/data/magpie-armorm-example/example_instructions_5res_armorm.json")
"""
from __future__ import annotations

from typing import Any, Mapping

from rmkit.data.schema import BestOfN, DataError, Message, PreferencePair
from rmkit.data.sources.common import get_field

CATEGORIES = {"Math": "math", "Coding & Debugging": "code"}
META_KEYS = ("task_category", "difficulty", "input_quality", "other_task_category")


ULTRA_COLUMNS = {"instruction", "response", "response_base", "score", "score_base"}


def matches(columns: set[str]) -> bool:
    return {"instruction", "responses", "rewards_armorm"} <= columns or ULTRA_COLUMNS <= columns


def _from_ultra(row: Mapping[str, Any]) -> dict[str, Any]:
    """magpie-ultra-v0.1 layout → the DPO-set layout."""
    return {**row, "responses": [row.get("response"), row.get("response_base")],
            "rewards_armorm": [row.get("score"), row.get("score_base")],
            "task_category": row.get("task_category") or row.get("primary_tag")}


def skywork_category(task_category: str | None) -> str:
    """Skywork's three selection groups: math, code, other."""
    return CATEGORIES.get(task_category or "", "other")


def _scores(row: Mapping[str, Any], n: int, where: dict) -> list[float]:
    raw = get_field(row, "rewards_armorm", where, kind=list)
    try:
        scores = [float(s["score"] if isinstance(s, Mapping) else s) for s in raw]
    except (KeyError, TypeError, ValueError) as e:
        raise DataError("each entry must be a number or {'score': number}", **where,
                        field="rewards_armorm") from e
    if len(scores) != n:
        raise DataError(f"{len(scores)} scores for {n} responses", **where, field="rewards_armorm")
    return scores


def _responses(row: Mapping[str, Any], where: dict) -> tuple[Mapping[str, Any], list[str]]:
    """(the row in the DPO-set layout, its responses), checked: at least 2 non-empty strings."""
    if "responses" not in row and ULTRA_COLUMNS <= set(row):
        row = _from_ultra(row)
    responses = get_field(row, "responses", where, kind=list)
    if len(responses) < 2 or not all(isinstance(r, str) and r.strip() for r in responses):
        raise DataError("need at least 2 non-empty string responses", **where, field="responses")
    return row, responses


def parse_row(row: Mapping[str, Any], *, file: str | None, index: int, source: str = "magpie"
              ) -> PreferencePair:
    where = {"file": file, "row": index}
    row, responses = _responses(row, where)
    scores = _scores(row, len(responses), where)
    best, worst = scores.index(max(scores)), scores.index(min(scores))
    if scores[best] == scores[worst]:
        raise DataError("all responses have the same ArmoRM score", **where, field="rewards_armorm")
    meta = {k: row[k] for k in META_KEYS if row.get(k) is not None}
    meta.update(armorm_chosen=scores[best], armorm_rejected=scores[worst],
                armorm_mean=sum(scores) / len(scores))
    return PreferencePair(
        id=str(row.get("uuid") or row.get("id") or f"{source}:{index}"), source=source,
        prompt=[Message("user", get_field(row, "instruction", where))],
        chosen=[Message("assistant", responses[best])],
        rejected=[Message("assistant", responses[worst])],
        category=skywork_category(row.get("task_category")), meta=meta,
    ).validate(file=file, row=index)


def parse_group(row: Mapping[str, Any], *, file: str | None, index: int, source: str = "magpie") -> BestOfN:
    """All of a Magpie row's responses with their ArmoRM scores (for training on every ordered pair)."""
    where = {"file": file, "row": index}
    row, responses = _responses(row, where)
    return BestOfN(id=str(row.get("uuid") or row.get("id") or f"{source}:{index}"), source=source,
                   prompt=[Message("user", get_field(row, "instruction", where))],
                   completions=[[Message("assistant", r)] for r in responses],
                   scores=_scores(row, len(responses), where),
                   subset=skywork_category(row.get("task_category"))).validate(file=file, row=index)
