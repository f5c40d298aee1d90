"""`rmkit score INPUT -o OUTPUT --model M`: score a file of conversations or pairs, resumably.

    from rmkit.score.run import score_file
    score_file("pairs.jsonl", "scored.jsonl", scorer, chunk_size=256)

Input: jsonl / parquet / json / csv. A row holding `messages` (or `conversation`) is one conversation
and gets a `reward`; any pair format rmkit reads gets `chosen_reward` / `rejected_reward`. Output
rows keep the input `id` and the row's position. Results are appended chunk by chunk, each chunk
flushed and fsynced; a rerun after a kill drops a torn last line, skips what was written and goes
on, so no row is lost or written twice.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from rmkit.data.io import read_complete_jsonl, read_rows
from rmkit.data.schema import DataError, to_conversation
from rmkit.data.sources import iter_pairs
from rmkit.evaluate.common import check_errors

CONV_KEYS = ("messages", "conversation")


def _first_row(source: str) -> dict:
    for _, row in read_rows(source):
        return row
    raise DataError("no rows", file=str(source))


def iter_items(source: str, *, format: str = "auto", errors: str = "raise",
               skipped: Counter | None = None) -> Iterator[tuple[str, str, Any]]:
    """Yield (kind, id, payload): ("conv", id, Conversation) or ("pair", id, PreferencePair).
    errors="skip": a row that does not parse is counted in `skipped` and left out (the same rows on a
    resume, so the output stays a prefix)."""
    first = _first_row(source)
    key = next((k for k in CONV_KEYS if k in first), None)
    if key is None or format != "auto":
        for pair in iter_pairs(source, format=format, errors=errors, skipped=skipped):
            yield "pair", pair.id, pair
        return
    for index, row in read_rows(source):
        try:
            if key not in row:
                raise DataError("missing", file=str(source), row=index, field=key)
            conv = to_conversation(row[key], where={"file": str(source), "row": index, "field": key})
        except DataError as e:
            if errors == "raise":
                raise
            if skipped is not None:
                skipped[e.skip_key] += 1
            continue
        yield "conv", str(row.get("id", index)), conv


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for it in items:
        chunk.append(it)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _score_chunk(scorer, chunk: list, start: int) -> list[dict]:
    convs = [c for kind, _, c in chunk if kind == "conv"]
    pairs = [p for kind, _, p in chunk if kind == "pair"]
    conv_r = iter(scorer.score(convs)) if convs else iter(())
    pair_r = iter(scorer.score_pairs(pairs)) if pairs else iter(())
    out = []
    for offset, (kind, item_id, _) in enumerate(chunk):
        row = {"row": start + offset, "id": item_id}
        if kind == "conv":
            row["reward"] = _num(next(conv_r))
        else:
            c, r = next(pair_r)
            row.update(chosen_reward=_num(c), rejected_reward=_num(r))
        out.append(row)
    return out


def _num(x: float) -> float | None:
    return None if x != x else x  # NaN (skipped as over-long) → null


def score_file(source: str | os.PathLike, output: str | os.PathLike, scorer, *, chunk_size: int = 256,
               format: str = "auto", progress=None, errors: str = "raise") -> dict[str, Any]:
    """Score `source` into `output` (jsonl), resuming from what `output` already holds."""
    output = Path(output)
    done = read_complete_jsonl(output)
    if [r.get("row") for r in done] != list(range(len(done))):
        raise DataError("existing output is not a prefix written by `rmkit score`; "
                        "remove it or choose another path", file=str(output))
    check_errors(errors)
    skipped: Counter = Counter()
    items = iter_items(str(source), format=format, errors=errors, skipped=skipped)
    for _ in range(len(done)):
        next(items, None)
    written = len(done)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "a", encoding="utf-8") as f:
        for chunk in _chunks(items, chunk_size):
            rows = _score_chunk(scorer, chunk, written)
            f.write("".join(json.dumps(r) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
            written += len(rows)
            if progress is not None:
                progress(len(rows))
    return {"resumed_from": len(done), "written": written - len(done), "total": written,
            "skipped_rows": dict(sorted(skipped.items()))}
