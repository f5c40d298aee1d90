"""The decontamination report: counts per training source and per benchmark subset, as JSON + markdown.

Written by `decontaminate` next to the clean output (`clean.report.json` and `clean.report.md`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmkit.data.io import atomic_path, write_json_atomic


@dataclass
class DecontamReport:
    config: dict[str, Any]
    benchmark_docs: int
    benchmark_ngrams: int
    index_seconds: float
    counts: Counter = field(default_factory=Counter)   # (source, "kept"|"removed")
    subsets: Counter = field(default_factory=Counter)  # (benchmark, subset) → removed pairs
    skipped: Counter = field(default_factory=Counter)  # field → rows skipped
    seconds: float = 0.0

    @classmethod
    def start(cls, cfg, index, index_seconds: float) -> "DecontamReport":
        config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()}
        return cls(config=config, benchmark_docs=len(index.docs), benchmark_ngrams=index.size,
                   index_seconds=round(index_seconds, 3))

    def add(self, chunk) -> None:
        self.counts.update(chunk.counts)
        self.subsets.update(chunk.subsets)
        self.skipped.update(chunk.skipped)

    def finish(self, seconds: float) -> None:
        self.seconds = round(seconds, 3)

    @property
    def kept(self) -> int:
        return sum(v for (_, what), v in self.counts.items() if what == "kept")

    @property
    def removed(self) -> int:
        return sum(v for (_, what), v in self.counts.items() if what == "removed")

    def per_source(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (source, what), v in sorted(self.counts.items()):
            row = out.setdefault(source, {"total": 0, "kept": 0, "removed": 0})
            row[what] += v
            row["total"] += v
        return out

    def to_dict(self) -> dict[str, Any]:
        total = self.kept + self.removed
        n_skipped = sum(self.skipped.values())
        return {"input": total + n_skipped, "total": total, "kept": self.kept, "removed": self.removed,
                "skipped_rows": n_skipped, "skipped": dict(sorted(self.skipped.items())),
                "per_source": self.per_source(),
                "removed_by_benchmark_subset": {f"{b}/{s}": v for (b, s), v in
                                                sorted(self.subsets.items(), key=str)},
                "benchmark_docs": self.benchmark_docs, "benchmark_ngrams": self.benchmark_ngrams,
                "index_seconds": self.index_seconds, "seconds": self.seconds,
                "pairs_per_second": round(total / self.seconds, 1) if self.seconds else None,
                "config": self.config}


def to_markdown(d: dict[str, Any]) -> str:
    c = d["config"]
    lines = [f"# Decontamination report: {c['train']}", "",
             f"Against {', '.join(c['against'])}; n-grams {c['ngram'][0]}-{c['ngram'][1]}, "
             f"tokens `{c['tokens']}`, benchmark turns `{c['turns']}`, "
             f"training turns `{c['train_turns'] or c['turns']}`; "
             f"{d['benchmark_docs']} benchmark prompts, {d['benchmark_ngrams']} distinct n-grams.", "",
             f"**{d['removed']} of {d['total']} pairs removed**, {d['kept']} kept.", "",
             f"Input rows {d['input']} = clean {d['kept']} + removed {d['removed']} + skipped "
             f"{d['skipped_rows']} (rows that could not be read; a row is checked on its prompt alone).", ""]
    if d["skipped"]:
        lines += ["| skipped: field: reason | rows |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in d["skipped"].items()] + [""]
    lines += ["| source | total | kept | removed |", "|---|---:|---:|---:|"]
    lines += [f"| {s} | {r['total']} | {r['kept']} | {r['removed']} |"
              for s, r in d["per_source"].items()]
    if d["removed_by_benchmark_subset"]:
        lines += ["", "| benchmark subset matched | removed pairs |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in d["removed_by_benchmark_subset"].items()]
    lines += ["", f"{d['seconds']} s ({d['pairs_per_second']} pairs/s).", ""]
    return "\n".join(lines)


def write_report(report: DecontamReport, path: str | Path) -> None:
    d = report.to_dict()
    write_json_atomic(path, d)
    md = Path(str(path)[: -len(".json")] + ".md" if str(path).endswith(".json") else f"{path}.md")
    with atomic_path(md) as tmp:
        tmp.write_text(to_markdown(d), encoding="utf-8")
