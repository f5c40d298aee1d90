"""OffsetBias (`NCSOFT/offsetbias`) rows `{instruction, output_1, output_2, label}` → PreferencePair.

`label` (1 or 2, int or string) names the better output. The same layout with `input` instead of
`instruction` is LLMBar's (`princeton-nlp/LLMBar`, which OffsetBias follows); such rows get source
"llmbar".

    load_pairs("NCSOFT/offsetbias", format="offsetbias")
"""
from __future__ import annotations

from typing import Any, Mapping

from rmkit.data.schema import DataError, Message, PreferencePair
from rmkit.data.sources.common import get_field

HUB_ID = "NCSOFT/offsetbias"


def matches(columns: set[str]) -> bool:
    return {"output_1", "output_2", "label"} <= columns and bool({"instruction", "input"} & columns)


def parse_row(row: Mapping[str, Any], *, file: str | None, index: int) -> PreferencePair:
    where = {"file": file, "row": index}
    key, source = ("instruction", "offsetbias") if "instruction" in row else ("input", "llmbar")
    label = str(get_field(row, "label", where, kind=(int, str))).strip()
    if label not in ("1", "2"):
        raise DataError(f"label must be 1 or 2, got {row['label']!r}", **where, field="label")
    good, bad = ("output_1", "output_2") if label == "1" else ("output_2", "output_1")
    return PreferencePair(
        id=str(row.get("id", f"{source}:{index}")), source=source,
        prompt=[Message("user", get_field(row, key, where))],
        chosen=[Message("assistant", get_field(row, good, where, allow_empty=True))],
        rejected=[Message("assistant", get_field(row, bad, where, allow_empty=True))],
    ).validate(file=file, row=index)
