"""Streaming the training side through worker processes, in order, with bounded memory.

The main process reads raw records (a jsonl line as bytes, or a row dict) in chunks, or a local jsonl
file in byte blocks (blocks.py); `in_order` hands them to worker processes with `Executor.map` over
windows of `workers` calls, at most two windows (2 × workers calls) in flight. Each worker holds the
index it received when it started and runs `run_rows`: every row through rows.parse_row (the one
parser), then matched, and back come the clean file's pieces, the removed rows and counts. Nothing
grows with the training set except the output files themselves.
"""
from __future__ import annotations

import gzip
import json
import multiprocessing as mp
import os
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from rmkit.data.io import read_rows
from rmkit.data.schema import DataError, on_row_error
from rmkit.data.sources import PARSERS, detect_format, iter_pairs
from rmkit.decontam.index import NgramIndex
from rmkit.decontam.rows import CANONICAL, Job, Row, as_object, parse_row

MAX_NGRAMS_SHOWN = 20


@dataclass
class Result:
    """What a worker sends back for one chunk of rows."""

    kept: list = field(default_factory=list)   # the clean file's pieces: bytes, or (start, end) of the block
    removed: bytes = b""
    counts: Counter = field(default_factory=Counter)       # (source, "kept"|"removed") → n
    subsets: Counter = field(default_factory=Counter)      # (benchmark, subset) → removed pairs
    skipped: Counter = field(default_factory=Counter)      # "field: reason" → n
    error: tuple | None = None                             # (message, file, row, field)


_INDEX: NgramIndex | None = None


def _init(index: NgramIndex) -> None:
    global _INDEX
    _INDEX = index


def run_rows(job: Job, items: Iterable[tuple[int, Any, tuple | None]], index: NgramIndex | None = None
             ) -> Result:
    """Parse, check, match and serialise rows (in a worker, or in-process when index is given). Items
    are (row number, raw record, span): span is the (start, end) of the line in the block it came from,
    so a row kept as read goes back as that span only; None sends its line back."""
    index = index or _INDEX
    out = Result()
    parsed = _parse_all(job, items, out)
    if out.error is not None:
        return out
    hits = index.match(parsed.texts)
    out.kept = _pieces(parsed, hits)
    _count_kept(parsed.sources, hits, out.counts)
    removed = []
    for i in sorted(hits):
        row_no, _, r = parsed.rows[i]
        line, fields = _removed_line(job, r, row_no, hits[i], index, out)
        if out.error is not None:
            return out
        if line is not None:
            removed.append(line)
            out.counts[(r.source, "removed")] += 1
            out.subsets.update({(d["benchmark"], d["subset"]) for d in fields["matched"]})
    out.removed = b"".join(removed)
    return out


@dataclass(slots=True)
class _Parsed:
    """The rows of a chunk that parsed, in order, and what the matcher and the counts read of them."""

    rows: list = field(default_factory=list)      # (row number, span, Row)
    texts: list = field(default_factory=list)     # Row.texts
    sources: list = field(default_factory=list)   # Row.source
    odd: list = field(default_factory=list)
    """Positions of the rows that do not simply extend the rows before them in the clean file: not
    written as read (`_in_block`), or not right after the previous row in the block (a blank or
    skipped line between them, or no block at all). Every other row, when kept, only lengthens the
    block span before it, so `_pieces` looks at these rows and the matched ones alone."""


def _parse_all(job: Job, items: Iterable[tuple[int, Any, tuple | None]], out: Result) -> _Parsed:
    """The rows that parse, up to the first error under errors="raise"."""
    parsed = _Parsed()
    rows, texts, sources, odd = parsed.rows, parsed.texts, parsed.sources, parsed.odd
    end = -1
    for row_no, raw, span in items:
        try:
            r = parse_row(job, raw, row_no)
        except DataError as e:
            if _skip(job, e, row_no, out):
                continue
            break
        line = r.line  # _in_block(span, line), and right after the previous row:
        if span is None or span[0] != end or line is None or span[1] - end != len(line) + 1:
            odd.append(len(rows))
        end = span[1] if span is not None else -1
        rows.append((row_no, span, r))
        texts.append(r.texts)
        sources.append(r.source)
    return parsed


def _in_block(span: tuple | None, line: bytes | None) -> bool:
    """Whether a row goes to the clean file as its span of the block: its line and newline as read."""
    return span is not None and line is not None and span[1] - span[0] == len(line) + 1


def _skip(job: Job, error: DataError, row_no: int, out: Result) -> bool:
    """The shared row-error rule (schema.on_row_error): True when the row is skipped (counted) and the
    chunk goes on; under "raise" the error is kept to travel back, and the main process raises it."""
    try:
        on_row_error(error, job.errors, out.skipped)
    except DataError as e:
        out.error = (str(e), e.file or job.file, e.row if e.row is not None else row_no, e.field)
        return False
    return True


def _pieces(parsed: _Parsed, hits) -> list:
    """The clean file's pieces for the rows not in `hits`: a run of rows written as read (line and
    newline as in the block) is one (start, end) span of the block; any other row is its line. Rows
    that came without a block make one bytes piece (cheap to send back and to write).

    Only the odd rows and the matched ones are visited: between two of them every row is kept as
    read right after the one before, so it lengthens the open span."""
    rows, pieces = parsed.rows, []
    start = end = None
    after = 0  # the first row not yet looked at
    for i in sorted({*parsed.odd, *hits}) + [len(rows)]:
        if after < i:  # rows after .. i-1: kept as read, each right after the one before
            if start is None:
                start = rows[after][1][0]
            end = rows[i - 1][1][1]
        if i == len(rows):
            break
        after = i + 1
        _, span, r = rows[i]
        if start is not None:
            pieces.append((start, end))
            start = None
        if i in hits:
            continue
        if _in_block(span, r.line):
            start, end = span
        else:
            pieces.append(b"".join((r.line if r.line is not None else dumps(r.data), b"\n")))
    if start is not None:
        pieces.append((start, end))
    return pieces if any(type(p) is tuple for p in pieces) else [b"".join(pieces)]


def _count_kept(sources: list, hits, counts: Counter) -> None:
    """Count the rows not in `hits` as (source, "kept") (by the matched ones alone, not row by row)."""
    kept = Counter(sources)
    for i in hits:
        kept[sources[i]] -= 1
    counts.update({(s, "kept"): n for s, n in kept.items() if n})


def _removed_line(job: Job, r: Row, row_no: int, hit, index: NgramIndex, out: Result
                  ) -> tuple[bytes | None, dict]:
    """The removed file's line: the row's own fields, then the match fields. A row checked in full
    (check_rows) whose line is the row as read gets them appended to its bytes (the same object, keys
    in the same order, as the dict merge); any other row read as is is read again, checked in full
    (None: it failed, and was named or skipped)."""
    fields = match_fields(hit, index)
    line = bytes(r.line) if r.line is not None else None  # a view of the block: searched and cut below
    if job.check_rows and line is not None and b'"matched' not in line and b'"num_matched' not in line:
        return line[:-1] + b", " + dumps(fields)[1:] + b"\n", fields
    if r.data is None:
        try:
            r = parse_row(job, line, row_no, keep=True)
        except DataError as e:
            _skip(job, e, row_no, out)
            return None, fields
    return dumps({**r.data, **fields}) + b"\n", fields


def match_fields(hit, index: NgramIndex) -> dict:
    """The benchmark documents matched, and the longest matched n-grams (the first few, as text)."""
    n = max(hit.ngrams)
    shown = sorted(index.ngram_text(n, e) for e in sorted(hit.ngrams[n])[:MAX_NGRAMS_SHOWN])
    return {"matched": [index.docs[d] for d in sorted(hit.docs)], "matched_n": n,
            "matched_ngrams": shown, "num_matched_ngrams": len(hit.ngrams[n])}


def dumps(obj: Any) -> bytes:
    """An output line's JSON (json.dumps as rmkit writes jsonl: ", " and ": ", non-ASCII as is)."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def run_chunk(job: Job, records: list[tuple[int, Any]], index: NgramIndex | None = None) -> Result:
    """run_rows on records (row number, raw record) read by the main process."""
    return run_rows(job, ((row_no, raw, None) for row_no, raw in records), index)


def _jsonl_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(row, raw bytes line) of a jsonl(.gz) file; workers decode, so a bad byte names its row."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        for row, raw in enumerate(f):
            if raw.strip():
                yield row, raw


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
        row = as_object(first[1], {"file": str(source), "row": first[0]})
        try:
            fmt = detect_format(row)
        except DataError as e:
            raise DataError(str(e), file=str(source), row=first[0]) from e
        rows = chain([first], rows)
    if column_map or fmt in PARSERS or fmt == "generic":
        return fmt, rows
    pairs = iter_pairs(source, format=fmt, split=split, errors=errors, skipped=skipped)
    return CANONICAL, ((i, p.to_dict()) for i, p in enumerate(pairs))


def chunks(it: Iterable, size: int) -> Iterator[list]:
    it = iter(it)
    while block := list(islice(it, size)):
        yield block


def run_all(job: Job, recs: Iterator, index: NgramIndex, *, workers: int, chunk_size: int
            ) -> Iterator[Result]:
    """Chunk results in input order (in_order's bounds when workers > 1)."""
    blocks = chunks(recs, chunk_size)
    if workers <= 1:
        return (run_chunk(job, block, index) for block in blocks)
    return in_order(run_chunk, ((job, block) for block in blocks), index, workers=workers)


def pool_context():
    """How worker processes start: from a fork server where the platform has one, else spawned.

    Never a plain fork of this process: the caller may hold threads (torch's, tqdm's monitor, a
    server's) and a child forked while one of them holds a lock can wait on it forever. The fork
    server is a clean single-threaded process that has already imported the decontamination code,
    so a worker still starts in milliseconds; the index reaches it pickled (13 MB for RewardBench)."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["rmkit.decontam.blocks"])
        return ctx
    return mp.get_context("spawn")


def start_server() -> None:
    """Start the fork server now rather than with the pool: it imports the decontamination code in its
    own process while this one builds the index, so the first workers need not wait for it. (Where
    workers are spawned there is nothing to start.)"""
    if pool_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver
        forkserver.ensure_running()


def in_order(fn: Callable, calls: Iterable[tuple], index: NgramIndex, *, workers: int) -> Iterator:
    """fn(*args) for each args in `calls`, run in `workers` processes that hold `index`, yielded in
    call order, at most 2 × workers calls in flight: each result read hands the pool the next call
    before it is yielded, so the workers never wait for the caller to finish a batch (a window of
    `Executor.map` calls would: they idle at each window's end).

    A worker that dies raises BrokenProcessPool instead of leaving the caller waiting, and stopping
    early (an error here, or the caller closing this generator) cancels the calls not yet started
    and waits for the running ones, so no process outlives the call."""
    ex = ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=_init, initargs=(index,))
    try:
        calls = iter(calls)
        pending = deque(ex.submit(fn, *args) for args in islice(calls, 2 * workers))
        while pending:
            result = pending.popleft().result()
            pending.extend(ex.submit(fn, *args) for args in islice(calls, 1))
            yield result
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))
