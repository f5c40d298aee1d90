"""The curation report: counts per source and category after each step, and every drop's reason.

Written by `curate` as `<report>.json`, `<report>.md` and `<report>.dropped.jsonl` (one row per
dropped pair: id, source, category, step, reason, detail).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from rmkit.data.io import atomic_path, write_json_atomic
from rmkit.data.schema import PreferencePair


@dataclass
class CurateReport:
    config: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    drops: list[dict[str, Any]] = field(default_factory=list)
    load_skipped: dict[str, dict[str, int]] = field(default_factory=dict)

    def step(self, name: str, pairs: Iterable[PreferencePair], drops=()) -> None:
        counts: dict[str, Counter] = {}
        for p in pairs:
            counts.setdefault(p.source, Counter())[p.category or "none"] += 1
        reasons: Counter = Counter()
        for p, reason, detail in drops:
            reasons[(p.source, reason)] += 1
            self.drops.append({"id": p.id, "source": p.source, "category": p.category,
                               "step": name, "reason": reason, "detail": detail})
        self.steps.append({"step": name,
                           "counts": {s: dict(sorted(c.items())) for s, c in sorted(counts.items())},
                           "dropped": {f"{s}/{r}": n for (s, r), n in sorted(reasons.items())}})

    def totals(self) -> list[tuple[str, dict[str, int]]]:
        return [(s["step"], {src: sum(c.values()) for src, c in s["counts"].items()})
                for s in self.steps]

    def to_dict(self) -> dict[str, Any]:
        reasons = Counter(d["reason"] for d in self.drops)
        return {"kept": sum(self.totals()[-1][1].values()) if self.steps else 0,
                "dropped": len(self.drops), "drop_reasons": dict(sorted(reasons.items())),
                "load_skipped": self.load_skipped, "steps": self.steps, "config": self.config}


def to_markdown(d: dict[str, Any]) -> str:
    sources = sorted({s for step in d["steps"] for s in step["counts"]} |
                     {k.split("/")[0] for step in d["steps"] for k in step["dropped"]})
    names = [step["step"] for step in d["steps"]]
    lines = ["# Curation report", "", f"**{d['kept']} pairs kept**, {d['dropped']} dropped "
             f"({', '.join(f'{k} {v}' for k, v in d['drop_reasons'].items()) or 'none'}).", "",
             "Pairs per source after each step:", "",
             "| source | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for src in sources:
        row = [str(sum(step["counts"].get(src, {}).values())) for step in d["steps"]]
        lines.append(f"| {src} | " + " | ".join(row) + " |")
    final = d["steps"][-1]["counts"] if d["steps"] else {}
    lines += ["", "Final pairs per category:", "", "| source | category | pairs |", "|---|---|---:|"]
    lines += [f"| {s} | {c} | {n} |" for s, cats in final.items() for c, n in cats.items()]
    if d["load_skipped"]:
        lines += ["", f"Rows skipped or dropped while loading: {d['load_skipped']}"]
    return "\n".join(lines) + "\n"


def write_report(report: CurateReport, path: str | Path) -> dict[str, Any]:
    d = report.to_dict()
    base = str(path)[: -len(".json")] if str(path).endswith(".json") else str(path)
    write_json_atomic(path, d)
    with atomic_path(base + ".md") as tmp:
        tmp.write_text(to_markdown(d), encoding="utf-8")
    with atomic_path(base + ".dropped.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in report.drops)
    return d
