"""Streaming the training side through worker processes, in order, with bounded memory.

The main process reads raw records (a jsonl line as bytes, or a row dict) in chunks and keeps at most
`2 × workers` chunks in flight; each worker parses its chunk with the source's parser, matches it
against the index it received when it started, and returns finished output lines plus counts.
Nothing grows with the training set except the output files themselves.
"""
from __future__ import annotations

import gzip
import json
import multiprocessing as mp
import os
import re
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any, Iterator, Mapping

try:
    import orjson
except ImportError:  # optional: json alone gives the same results, slower
    orjson = None

from rmkit.data.io import read_rows
from rmkit.data.schema import ROLES, DataError, PreferencePair, conversation_to_dicts, to_conversation
from rmkit.data.sources import PARSERS, detect_format, generic, iter_pairs
from rmkit.decontam.index import NgramIndex
from rmkit.decontam.ngrams import pair_texts

CANONICAL = "canonical"  # rows that are PreferencePair.to_dict() (meta kept)
MAX_NGRAMS_SHOWN = 20


@dataclass
class ChunkResult:
    kept: list = field(default_factory=list)       # output lines (str or bytes), then one blob
    removed: list = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)       # (source, "kept"|"removed") → n
    subsets: Counter = field(default_factory=Counter)      # (benchmark, subset) → removed pairs
    skipped: Counter = field(default_factory=Counter)      # "field: reason" → n
    error: tuple | None = None                             # (message, file, row, field)


@dataclass
class Job:
    """What a worker needs besides the index: how to parse and what to look at."""

    fmt: str
    file: str
    turns: str
    errors: str = "raise"
    column_map: Mapping[str, str] | None = None
    check_rows: bool = True


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
            if isinstance(raw, (str, bytes)):
                try:
                    raw = json.loads(raw)
                except json.JSONDecodeError as e:
                    raise DataError(f"invalid JSON: {e.msg}", file=job.file, row=index) from e
                except UnicodeDecodeError as e:
                    raise DataError(f"not valid UTF-8 ({e.reason})", file=job.file, row=index) from e
                if not isinstance(raw, dict):
                    raise DataError("a row must be a JSON object", file=job.file, row=index)
            pairs.append(parse(raw, file=job.file, index=index))
        except DataError as e:
            if job.errors == "raise":
                out.error = (str(e), e.file or job.file, e.row if e.row is not None else index, e.field)
                break
            out.skipped[e.skip_key] += 1
    return pairs


def _match_fields(hit, index: NgramIndex) -> dict:
    """The benchmark documents matched, and the longest matched n-grams (the first few, as text)."""
    n = max(hit.ngrams)
    shown = sorted(index.ngram_text(n, e) for e in sorted(hit.ngrams[n])[:MAX_NGRAMS_SHOWN])
    return {"matched": [index.docs[d] for d in sorted(hit.docs)], "matched_n": n,
            "matched_ngrams": shown, "num_matched_ngrams": len(hit.ngrams[n])}


def _removed_row(pair: PreferencePair, hit, index: NgramIndex) -> dict:
    return {**pair.to_dict(), **_match_fields(hit, index)}


def _check_messages(value: Any, name: str, first: str | None, last: str | None, where: dict) -> None:
    """Plain type tests (no objects built): a non-empty list of {role, content: str} messages."""
    if type(value) is not list or not value:
        raise DataError("expected a non-empty list of messages", **where, field=name)
    for m in value:
        if type(m) is not dict or m.get("role") not in ROLES or type(m.get("content")) is not str:
            raise DataError("each message needs a role and a string content", **where, field=name)
    if first and value[0]["role"] != first:
        raise DataError(f"must start with an {first} turn", **where, field=name)
    if last and value[-1]["role"] != last:
        raise DataError(f"must end with a {last} turn", **where, field=name)


_HEAD = re.compile(r'\{"id": (?:"(?:[^"\\]|\\.)*"|-?\d+), "source": ("(?:[^"\\]|\\.)*"), "prompt": ')
_DECODER = json.JSONDecoder()


def loads(raw: Any) -> Any:
    """json.loads, through orjson when it is installed; what orjson refuses goes to json again
    (NaN, huge integers, lone surrogates parse as json parses them; errors are json's)."""
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def try_loads(raw: bytes) -> Any:
    """The parsed row, or None when it does not parse (then `loads` names the error)."""
    try:
        return orjson.loads(raw) if orjson is not None else json.loads(raw)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return None


def _full_row(raw: Any, job: Job, where: dict) -> tuple[dict, Any]:
    """(row, line to write back) of a canonical row, parsed and checked in full."""
    row = loads(raw) if isinstance(raw, (str, bytes)) else raw
    if not isinstance(row, dict):
        raise DataError("a row must be a JSON object", **where)
    if not (type(row.get("prompt")) is type(row.get("chosen")) is type(row.get("rejected")) is list):
        row, raw = _canonical(row, where), None  # strings in place of message lists: written back canonical
    elif "id" not in row:
        row, raw = {"id": str(where["row"]), **row}, None  # as PreferencePair.from_dict names it
    _check_messages(row.get("prompt"), "prompt", None, "user", where)
    if job.turns == "all":  # the replies are looked at too: they must read
        _check_messages(row.get("chosen"), "chosen", "assistant", None, where)
        _check_messages(row.get("rejected"), "rejected", "assistant", None, where)
    return row, raw.rstrip() if isinstance(raw, (str, bytes)) else None


def _canonical(row: dict, where: dict) -> dict:
    """A row with strings for messages, rewritten with message lists. A row is checked on its prompt
    alone (decontamination reads only the prompt): a reply that does not convert is left as it was."""
    if row.get("prompt") is None:
        raise DataError("missing", **where, field="prompt")
    out = {"id": str(row.get("id", where["row"])), "source": str(row.get("source", "")), **row}
    out["prompt"] = conversation_to_dicts(to_conversation(row["prompt"], where={**where, "field": "prompt"}))
    for k in ("chosen", "rejected"):
        if k in row and type(row[k]) is not list:
            try:
                out[k] = conversation_to_dicts(to_conversation(row[k], default_role="assistant"))
            except DataError:
                pass
    return out


def _prompt_only(raw: Any, where: dict) -> dict | None:
    """check_rows=False: only the source and prompt of a row laid out as rmkit writes it (id,
    source, prompt first); None for any other layout (then it is parsed in full)."""
    line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    m = _HEAD.match(line) if isinstance(line, str) else None
    if m is None:
        return None
    prompt, _ = _DECODER.raw_decode(line, m.end())
    if type(prompt) is not list:
        return None  # a string prompt (canonical too): parsed in full and rewritten
    _check_messages(prompt, "prompt", None, "user", where)
    return {"source": json.loads(m.group(1)), "prompt": prompt, "_partial": True}


def _parse_one(job: Job, raw: Any, where: dict, lazy: bool) -> tuple[dict, Any]:
    try:
        row = _prompt_only(raw, where) if lazy else None
        return (row, raw.rstrip()) if row is not None else _full_row(raw, job, where)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", **where) from e
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 ({e.reason})", **where) from e


def _canonical_rows(job: Job, records: list[tuple[int, Any]], out: ChunkResult) -> list[tuple]:
    """(row dict, raw line, where) of canonical rows, checked with plain type tests."""
    rows, lazy = [], not job.check_rows and job.turns != "all"
    for index, raw in records:
        where = {"file": job.file, "row": index}
        try:
            rows.append((*_parse_one(job, raw, where, lazy), where))
        except DataError as e:
            if not _skip(job, e, index, out):
                break
    return rows


def _skip(job: Job, e: DataError, index: int, out: ChunkResult) -> bool:
    if job.errors == "raise":
        out.error = (str(e), e.file or job.file, e.row if e.row is not None else index, e.field)
        return False
    out.skipped[e.skip_key] += 1
    return True


def _run_canonical(job: Job, records: list[tuple[int, Any]], index: NgramIndex) -> ChunkResult:
    """Canonical rows: kept lines are written back as read (they are canonical already)."""
    out = ChunkResult()
    rows = _canonical_rows(job, records, out)
    hits = index.match([pair_texts(r, job.turns) for r, _, _ in rows])
    for i, (row, raw, where) in enumerate(rows):
        source, hit = str(row.get("source", "")), hits.get(i)
        if hit is None:
            out.kept.append(raw if raw is not None else json.dumps(row, ensure_ascii=False))
            out.counts[(source, "kept")] += 1
            continue
        if row.get("_partial"):  # a removed row is written in full: parse and check it now
            try:
                row, _ = _parse_one(job, raw, where, lazy=False)
            except DataError as e:
                if not _skip(job, e, where["row"], out):
                    break
                continue
        removed = {**row, **_match_fields(hit, index)}
        out.removed.append(json.dumps(removed, ensure_ascii=False))
        out.counts[(source, "removed")] += 1
        out.subsets.update({(d["benchmark"], d["subset"]) for d in removed["matched"]})
    return out


def _blob(lines: list) -> bytes:
    """Output lines as one bytes block (cheap to send back and to write)."""
    if not lines:
        return b""
    return b"\n".join(x if isinstance(x, bytes) else x.encode("utf-8") for x in lines) + b"\n"


def run_chunk(job: Job, records: list[tuple[int, Any]], index: NgramIndex | None = None) -> ChunkResult:
    """Parse, match and serialise one chunk (in a worker, or in-process when index is given)."""
    index = index or _INDEX
    if job.fmt in (CANONICAL, "pairs") and not job.column_map:
        out = _run_canonical(job, records, index)
    else:
        out = _run_parsed(job, records, index)
    out.kept, out.removed = _blob(out.kept), _blob(out.removed)
    return out


def _run_parsed(job: Job, records: list[tuple[int, Any]], index: NgramIndex) -> ChunkResult:
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
        try:
            row = json.loads(first[1]) if isinstance(first[1], (str, bytes)) else first[1]
            if not isinstance(row, dict):
                raise DataError("a row must be a JSON object")
            fmt = detect_format(row)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON: {e.msg}", file=str(source), row=first[0]) from e
        except UnicodeDecodeError as e:
            raise DataError(f"not valid UTF-8 ({e.reason})", file=str(source), row=first[0]) from e
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
    calls = ((None, run_chunk, (job, block)) for block in chunks(recs, chunk_size))
    for _, result in in_order(calls, index, workers=workers):
        yield result


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


def in_order(calls: Iterator[tuple[Any, Any, tuple]], index: NgramIndex, *, workers: int
             ) -> Iterator[tuple[Any, Any]]:
    """(tag, fn(*args)) for each (tag, fn, args) in `calls`, run in `workers` processes that hold
    `index`, yielded in call order with at most 2 × workers calls in flight.

    A worker that dies raises BrokenProcessPool instead of leaving the caller waiting, and stopping
    early (an error here, or the caller closing this generator) cancels the calls not yet started
    and waits for the running ones, so no process outlives the call."""
    ex = ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=_init,
                             initargs=(index,))
    pending: deque = deque()
    try:
        for tag, fn, args in calls:
            pending.append((tag, ex.submit(fn, *args)))
            if len(pending) >= 2 * workers:
                tag, fut = pending.popleft()
                yield tag, fut.result()
        while pending:
            tag, fut = pending.popleft()
            yield tag, fut.result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))
