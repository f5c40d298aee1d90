"""Source formats → PreferencePair. One module per family; `load_pairs` picks one by the columns.

    from rmkit.data import load_pairs
    pairs = load_pairs("../shared/data/hh-rlhf/helpful-base/test.jsonl.gz")        # detected: hh-rlhf
    pairs = load_pairs("allenai/reward-bench", format="rewardbench", split="filtered")
    pairs = load_pairs("my.parquet", column_map={"prompt": "q", "chosen": "a", "rejected": "b"})
"""
from __future__ import annotations

import itertools
import os
from collections import Counter
from functools import partial
from typing import Any, Callable, Iterator, Mapping

from rmkit.data.io import is_local, read_rows
from rmkit.data.schema import DataError, PreferencePair, check_errors, on_row_error
from rmkit.data.sources import (generic, helpsteer2, hh_rlhf, magpie, offsetbias, rewardbench,
                                 ultrafeedback, wildguard)

Parser = Callable[..., PreferencePair]

PARSERS: dict[str, Parser] = {
    "rewardbench": rewardbench.parse_row,
    "hh-rlhf": hh_rlhf.parse_row,
    "ultrafeedback": ultrafeedback.parse_row,
    "skywork": ultrafeedback.parse_skywork_row,
    "pairs": lambda row, *, file, index: PreferencePair.from_dict(row, file=file, row=index),
    "offsetbias": offsetbias.parse_row,  # also LLMBar's {input, output_1, output_2, label}
    "magpie": magpie.parse_row,
}
# formats whose pairs come from several rows: fn(rows, *, file, dropped=None) → pairs | DataErrors
GROUPED: dict[str, Callable[..., Iterator]] = {
    "helpsteer2": helpsteer2.iter_rows,
    "wildguard": wildguard.iter_rows,
}
FORMATS = (*PARSERS, *GROUPED, "generic")


def detect_format(row: Mapping[str, Any]) -> str:
    """Name the format of a row from its columns (and, for chosen/rejected only, their types)."""
    cols = set(row)
    if rewardbench.matches(cols):
        return "rewardbench"
    if {"prompt", "chosen", "rejected", "source", "meta"} <= cols:
        return "pairs"
    if magpie.matches(cols):
        return "magpie"
    if wildguard.matches(cols):
        return "wildguard"
    if helpsteer2.matches(cols):
        return "helpsteer2"
    if offsetbias.matches(cols):
        return "offsetbias"
    if ultrafeedback.matches_ultrafeedback(cols):
        return "ultrafeedback"
    if {"chosen", "rejected"} <= cols:
        return "hh-rlhf" if isinstance(row["chosen"], str) else "skywork"
    raise DataError(f"cannot tell the format from columns {sorted(cols)}; pass format= or a "
                    f"column map (formats: {', '.join(FORMATS)})")


def iter_pairs(source: str | os.PathLike, *, format: str = "auto",
               column_map: Mapping[str, str] | None = None, split: str | None = None,
               errors: str = "raise", skipped: Counter | None = None) -> Iterator[PreferencePair]:
    """Stream PreferencePairs from a file or hub id.

    errors="raise" stops at the first malformed row with a DataError naming file/row/field;
    errors="skip" counts skipped rows in `skipped` (keyed by the error's field) and goes on.
    """
    check_errors(errors)
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; known: {', '.join(FORMATS)}")
    file = str(source) if is_local(source) else f"hub:{source}"
    if format == "rewardbench" and not is_local(source) and split is None:
        split = rewardbench.SPLIT
    parse: Parser | None = None
    if column_map:
        parse = partial(generic.parse_row, column_map=column_map)
    elif format != "auto" and format not in GROUPED:
        parse = PARSERS[format] if format != "generic" else partial(generic.parse_row, column_map={})
    rows = read_rows(source, split=split)
    if parse is None and format == "auto":
        rows, format = _peek_grouped(rows)
    if format in GROUPED:
        yield from _apply_policy(GROUPED[format](rows, file=file), errors, skipped)
        return
    for index, row in rows:
        try:
            if parse is None:
                parse = PARSERS[detect_format(row)]
            yield parse(row, file=file, index=index)
        except DataError as e:
            on_row_error(e if e.file is not None else DataError(str(e), file=file, row=index), errors, skipped)


def _peek_grouped(rows) -> tuple[Iterator, str]:
    """("auto" or a GROUPED format, the same rows): detection of multi-row formats up front."""
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return iter(()), "auto"
    try:
        fmt = detect_format(first[1])
    except DataError:
        fmt = "auto"
    return itertools.chain([first], rows), fmt if fmt in GROUPED else "auto"


def _apply_policy(items, errors: str, skipped: Counter | None) -> Iterator[PreferencePair]:
    for item in items:
        if not isinstance(item, DataError):
            yield item
        else:
            on_row_error(item, errors, skipped)


def load_pairs(source: str | os.PathLike, **kwargs) -> list[PreferencePair]:
    return list(iter_pairs(source, **kwargs))
