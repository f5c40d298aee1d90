"""Any jsonl / parquet / csv with a column map: `{"prompt": "question", "chosen": "good", ...}`.

The map names, for each canonical field (prompt, chosen, rejected, id, category), the column that
holds it; unmapped canonical fields are read from columns of the same name.
"""
from __future__ import annotations

from typing import Any, Mapping

from rmkit.data.schema import DataError, PreferencePair
from rmkit.data.sources import ultrafeedback

FIELDS = ("prompt", "chosen", "rejected", "id", "category", "source")


def parse_row(row: Mapping[str, Any], *, file: str | None, index: int,
              column_map: Mapping[str, str], source: str = "generic") -> PreferencePair:
    unknown = set(column_map) - set(FIELDS)
    if unknown:
        raise DataError(f"column map names unknown fields {sorted(unknown)}; known: {FIELDS}")
    renamed = {f: row.get(column_map.get(f, f)) for f in FIELDS}
    for f in ("chosen", "rejected"):
        if renamed[f] is None:
            raise DataError("missing", file=file, row=index, field=column_map.get(f, f))
    pair = ultrafeedback.parse_row({k: v for k, v in renamed.items() if v is not None},
                                   file=file, index=index, source=source)
    return pair
