"""DecontamConfig: what `rmkit decontaminate` does, in one dataclass (`rmkit.decontam.run.decontaminate`
runs it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rmkit.data.schema import check_errors
from rmkit.decontam.ngrams import TURNS, parse_ngram_range, tokenizer
from rmkit.decontam.stream import default_workers


@dataclass
class DecontamConfig:
    train: str
    """Training pairs: a file in any format the loaders read (jsonl/json/parquet/csv) or a hub id."""
    output: str
    """Where the kept pairs go (canonical jsonl; `.jsonl.gz` is gzipped)."""
    removed: str | None = None
    """Where the removed pairs go, each with `matched` (benchmark ids) and `matched_ngrams`."""
    against: list[str] = field(default_factory=lambda: ["rewardbench"])
    """Benchmarks: "rewardbench" (local copy under $RMKIT_DATA_DIR, else the hub) or pair files."""
    ngram: Any = 13
    """n-gram size N, or a range "LO-HI" (a pair shares an n-gram of some length in the range)."""
    turns: str = "first"
    """Benchmark text indexed: "first" user turn, every "user" turn, or "all" messages."""
    train_turns: str | None = None
    """Training text checked; None = the same as `turns`."""
    tokens: str = "punct"
    """Tokenisation: "punct" (words + each punctuation character) or "words" (punctuation dropped)."""
    format: str = "auto"
    """Training format; "auto" detects it from the columns of the first row."""
    column_map: dict[str, str] | None = None
    split: str | None = None
    errors: str = "raise"
    """A malformed training row: "raise" (named error, nothing replaced) or "skip" (counted)."""
    check_rows: bool = True
    """Parse and check every row in full. False: only each row's prompt is checked (on the row path,
    rows laid out as rmkit writes them are read only up to their prompt); kept rows are then written
    back unchecked, removed ones checked in full."""
    workers: int = field(default_factory=default_workers)
    chunk_size: int = 1000
    report: str | None = None
    """Report path (.json; a .md is written next to it). None = `<output>.report.json`."""

    def __post_init__(self):
        self.ngram = parse_ngram_range(self.ngram)
        if isinstance(self.against, str):
            self.against = [self.against]
        if not self.against:
            raise ValueError("against: name at least one benchmark")
        for name, value in (("turns", self.turns), ("train_turns", self.train_turns or self.turns)):
            if value not in TURNS:
                raise ValueError(f"{name} must be one of {TURNS}, got {value!r}")
        tokenizer(self.tokens)  # checks the name
        check_errors(self.errors)
        if self.workers < 1 or self.chunk_size < 1:
            raise ValueError("workers and chunk_size must be at least 1")
        for name in ("output", "removed"):
            value = getattr(self, name)
            if value is not None and not str(value).endswith((".jsonl", ".jsonl.gz")):
                raise ValueError(f"{name} must be a .jsonl or .jsonl.gz path, got {value!r}")
        if self.report is None:
            self.report = f"{_stem(self.output)}.report.json"


def _stem(path: str) -> str:
    for suffix in (".jsonl.gz", ".jsonl"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path
