"""Streaming the training side through worker processes, in order, with bounded memory.

The main process reads raw records (a jsonl line, or a row dict) in chunks and keeps at most
`2 × workers` chunks in flight; each worker parses its chunk with the source's parser, matches it
against the index it inherited, and returns finished output lines plus counts. Nothing grows with
the training set except the output files themselves.
"""
from __future__ import annotations

import gzip
import json
import multiprocessing as mp
import os
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any, Iterator, Mapping

from rmkit.data.io import read_rows
from rmkit.data.schema import DataError, PreferencePair
from rmkit.data.sources import PARSERS, detect_format, generic, iter_pairs
from rmkit.decontam.index import NgramIndex
from rmkit.decontam.ngrams import pair_texts

CANONICAL = "canonical"  # rows that are PreferencePair.to_dict() (meta kept)
MAX_NGRAMS_SHOWN = 20


@dataclass
class ChunkResult:
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)       # (source, "kept"|"removed") → n
    subsets: Counter = field(default_factory=Counter)      # (benchmark, subset) → removed pairs
    skipped: Counter = field(default_factory=Counter)      # field → n
    error: tuple | None = None                             # (message, file, row, field)


@dataclass
class Job:
    """What a worker needs besides the index: how to parse and what to look at."""

    fmt: str
    file: str
    turns: str
    errors: str = "raise"
    column_map: Mapping[str, str] | None = None


_INDEX: NgramIndex | None = None


def _init(index: NgramIndex) -> None:
    global _INDEX
    _INDEX = index


def _parser(job: Job):
    if job.column_map:
        return partial(generic.parse_row, column_map=job.column_map)
    if job.fmt == "generic":
        return partial(generic.parse_row, column_map={})
    if job.fmt in (CANONICAL, "pairs"):
        return lambda row, file, index: PreferencePair.from_dict(row, file=file, row=index)
    return PARSERS[job.fmt]


def _parse_chunk(job: Job, records: list[tuple[int, Any]], out: ChunkResult) -> list[PreferencePair]:
    parse, pairs = _parser(job), []
    for index, raw in records:
        try:
            if isinstance(raw, str):
                try:
                    raw = json.loads(raw)
                except json.JSONDecodeError as e:
                    raise DataError(f"invalid JSON: {e.msg}", file=job.file, row=index) from e
                if not isinstance(raw, dict):
                    raise DataError("a row must be a JSON object", file=job.file, row=index)
            pairs.append(parse(raw, file=job.file, index=index))
        except DataError as e:
            if job.errors == "raise":
                out.error = (str(e), e.file or job.file, e.row if e.row is not None else index, e.field)
                break
            out.skipped[e.field or "row"] += 1
    return pairs


def _removed_row(pair: PreferencePair, hit, index: NgramIndex) -> dict:
    docs = [index.docs[d] for d in sorted(hit.docs)]
    n = max(hit.ngrams)
    shown = sorted(index.ngram_text(n, e) for e in hit.ngrams[n])
    return {**pair.to_dict(), "matched": docs, "matched_n": n,
            "matched_ngrams": shown[:MAX_NGRAMS_SHOWN], "num_matched_ngrams": len(hit.ngrams[n])}


def run_chunk(job: Job, records: list[tuple[int, Any]], index: NgramIndex | None = None) -> ChunkResult:
    """Parse, match and serialise one chunk (in a worker, or in-process when index is given)."""
    index = index or _INDEX
    out = ChunkResult()
    pairs = _parse_chunk(job, records, out)
    hits = index.match([pair_texts(p, job.turns) for p in pairs])
    for i, pair in enumerate(pairs):
        hit = hits.get(i)
        if hit is None:
            out.kept.append(json.dumps(pair.to_dict(), ensure_ascii=False))
            out.counts[(pair.source, "kept")] += 1
            continue
        row = _removed_row(pair, hit, index)
        out.removed.append(json.dumps(row, ensure_ascii=False))
        out.counts[(pair.source, "removed")] += 1
        out.subsets.update({(d["benchmark"], d["subset"]) for d in row["matched"]})
    return out


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(row, line) of a jsonl(.gz) file, decoded line by line so a bad byte names its own row."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        for row, raw in enumerate(f):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"not valid UTF-8 ({e.reason})", file=str(path), row=row) from e
            if line.strip():
                yield row, line


def records(source: str, *, fmt: str = "auto", split: str | None = None,
            column_map: Mapping[str, str] | None = None, errors: str = "raise",
            skipped: Counter | None = None) -> tuple[str, Iterator[tuple[int, Any]]]:
    """(format, records): raw jsonl lines when the rows parse one by one, else row dicts; formats
    that pair up several rows (HelpSteer2, WildGuardMix) are parsed here and sent as canonical."""
    path = Path(source)
    local_jsonl = path.exists() and path.name.endswith((".jsonl", ".jsonl.gz"))
    rows = _jsonl_lines(path) if local_jsonl else iter(read_rows(source, split=split))
    if fmt == "auto" and not column_map:
        first = next(rows, None)
        if first is None:
            return "pairs", iter(())
        try:
            row = json.loads(first[1]) if isinstance(first[1], str) else first[1]
            if not isinstance(row, dict):
                raise DataError("a row must be a JSON object")
            fmt = detect_format(row)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON: {e.msg}", file=str(source), row=first[0]) from e
        except DataError as e:
            raise DataError(str(e), file=str(source), row=first[0]) from e
        rows = chain([first], rows)
    if column_map or fmt in PARSERS or fmt == "generic":
        return fmt, rows
    pairs = iter_pairs(source, format=fmt, split=split, errors=errors, skipped=skipped)
    return CANONICAL, ((i, p.to_dict()) for i, p in enumerate(pairs))


def chunks(it: Iterator, size: int) -> Iterator[list]:
    while True:
        block = list(islice(it, size))
        if not block:
            return
        yield block


def run_all(job: Job, recs: Iterator, index: NgramIndex, *, workers: int, chunk_size: int
            ) -> Iterator[ChunkResult]:
    """Chunk results in input order; at most 2 × workers chunks are in flight."""
    if workers <= 1:
        for block in chunks(recs, chunk_size):
            yield run_chunk(job, block, index)
        return
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(workers, initializer=_init, initargs=(index,)) as pool:
        pending: deque = deque()
        for block in chunks(recs, chunk_size):
            pending.append(pool.apply_async(run_chunk, (job, block)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))
