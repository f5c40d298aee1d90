"""`decontaminate(DecontamConfig)`: drop training pairs that share an n-gram with a benchmark prompt.

    from rmkit.decontam import DecontamConfig, decontaminate
    report = decontaminate(DecontamConfig(train="mix.jsonl", against=["rewardbench"],
                                          output="clean.jsonl", removed="removed.jsonl"))

    rmkit decontaminate mix.jsonl --against rewardbench -o clean.jsonl --removed removed.jsonl

The Skywork-Reward-V2 rule by default: a pair goes when it shares at least one 13-gram (lowercased
words, punctuation split off) with the first user turn of any benchmark prompt. The benchmark side
is indexed once; the training side streams through `workers` processes; the clean and removed
files are written as chunks finish and renamed into place only when the run succeeds.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

from rmkit.data.io import atomic_path
from rmkit.data.schema import DataError, PreferencePair
from rmkit.data.sources import iter_pairs
from rmkit.data.sources.rewardbench import HUB_ID as REWARDBENCH_HUB, SPLIT as REWARDBENCH_SPLIT
from rmkit.decontam.blocks import run_blocks, usable, write_kept
from rmkit.decontam.config import DecontamConfig
from rmkit.decontam.index import NgramIndex
from rmkit.decontam.report import DecontamReport, write_report
from rmkit.decontam.rows import Job
from rmkit.decontam.stream import records, run_all, start_server


def benchmark_pairs(name: str) -> Iterator[PreferencePair]:
    """Pairs of one benchmark: "rewardbench" or any pair file / hub id the loaders read."""
    if name.lower() in ("rewardbench", "reward-bench"):
        local = Path(os.environ.get("RMKIT_DATA_DIR", "")) / "reward-bench" / "filtered.jsonl.gz"
        if os.environ.get("RMKIT_DATA_DIR") and local.exists():
            return iter_pairs(local, format="rewardbench")
        return iter_pairs(REWARDBENCH_HUB, format="rewardbench", split=REWARDBENCH_SPLIT)
    label = Path(name).name.split(".")[0] if Path(name).exists() else name
    return (_relabel(p, label) for p in iter_pairs(name))


def _relabel(pair: PreferencePair, benchmark: str) -> PreferencePair:
    pair.meta = {**pair.meta, "_benchmark": benchmark}
    return pair


def _describe(pair: PreferencePair) -> dict[str, Any]:
    return {"benchmark": pair.meta.get("_benchmark", pair.source), "id": pair.id,
            "subset": pair.category}


def build_index(cfg: DecontamConfig) -> NgramIndex:
    pairs = (p for name in cfg.against for p in benchmark_pairs(name))
    return NgramIndex.build(pairs, ngram=cfg.ngram, turns=cfg.turns, tokens=cfg.tokens,
                            describe=_describe)


def _open(tmp: Path, gz: bool):
    import gzip
    return gzip.open(tmp, "wb") if gz else open(tmp, "wb")


def decontaminate(cfg: DecontamConfig) -> DecontamReport:
    """Index the benchmarks, stream the training pairs, write clean / removed / report."""
    t0 = time.perf_counter()
    skipped: Counter = Counter()
    fmt, recs = records(cfg.train, fmt=cfg.format, split=cfg.split, column_map=cfg.column_map,
                        errors=cfg.errors, skipped=skipped)  # opens TRAIN first: fail fast
    if cfg.workers > 1:
        start_server()  # ready by the time the index is
    index = build_index(cfg)
    report = DecontamReport.start(cfg, index, time.perf_counter() - t0)
    report.skipped = skipped
    job = Job(fmt=fmt, file=str(cfg.train), turns=cfg.train_turns or cfg.turns, errors=cfg.errors,
              column_map=cfg.column_map, check_rows=cfg.check_rows)
    removed_path = cfg.removed or os.devnull
    with atomic_path(cfg.output) as tmp_out, _maybe_atomic(cfg.removed) as tmp_rem:
        with _open(tmp_out, cfg.output.endswith(".gz")) as out, \
                _open(tmp_rem or Path(removed_path), str(removed_path).endswith(".gz")) as rem:
            # closing(): an error below stops the workers here and now, not whenever the
            # suspended generator happens to be collected
            with closing(_chunks(cfg, job, recs, index)) as results:
                for block, chunk in results:
                    if chunk.error:
                        raise _data_error(*chunk.error)
                    write_kept(out, block, chunk.kept)
                    _write(rem, chunk.removed)
                    report.add(chunk)
    report.finish(time.perf_counter() - t0)
    write_report(report, cfg.report)
    return report


def _chunks(cfg: DecontamConfig, job: Job, recs, index: NgramIndex):
    """(block, result): the block path for local jsonl files of canonical rows (kept rows copied
    from the block), else (None, result) with the kept lines in the result."""
    if usable(str(cfg.train), job.fmt, job):
        close = getattr(recs, "close", None)
        if close:
            close()  # the row reader opened by records(): not needed
        yield from run_blocks(job, index, workers=cfg.workers, chunk_size=cfg.chunk_size)
        return
    for chunk in run_all(job, recs, index, workers=cfg.workers, chunk_size=cfg.chunk_size):
        yield None, chunk


def _data_error(message: str, file: str | None, row: int | None, fld: str | None) -> DataError:
    err = DataError(message)  # the message already names the file, row and field
    err.file, err.row, err.field = file, row, fld
    return err


def _write(f, blob: bytes) -> None:
    if blob:
        f.write(blob)


class _NoPath:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _maybe_atomic(path: str | None):
    return atomic_path(path) if path else _NoPath()
