"""The mixture recipe: which sources, how each is selected and filtered. Read from YAML.

    cfg = load_config("configs/curate/skywork-80k.yaml", ["seed=1", "rm_filter.model=/ckpt"])

A YAML config opens with a comment holding the command that runs it; `key=value` overrides use
dotted paths (`sources.2.quota=1000`, `top_k.per_category.math=0.5`) and YAML values, typed by the field
they fill: `no`/`off`/`yes`/`on` stay words in a string field (`sources.0.name=no`), booleans in a bool one.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rmkit.data.schema import check_errors
from rmkit.data.sources import FORMATS
from rmkit.yaml_config import load_yaml, typed

OVERFLOW = ("sample", "first")


@dataclass
class SourceSpec:
    name: str
    """Label of the source in the output (`pair.source`) and the report."""
    path: str
    """A local file (jsonl/json/parquet/csv) or a hub id (`owner/name`, `owner/name:split`)."""
    format: str = "auto"
    split: str | None = None
    column_map: dict[str, str] | None = None
    quota: int | None = None
    """At most this many pairs kept from the source (a seeded sample), after every filter."""
    offset: float = 0.0
    """Added to the ranking score in top-k selection (Skywork: Magpie Air -0.1, Pro -0.05)."""
    select: bool = False
    """Whether the source's pairs compete in the per-category top-k selection."""

    def __post_init__(self):
        if self.format not in ("auto", *FORMATS):
            raise ValueError(f"source {self.name}: unknown format {self.format!r}; known: {FORMATS}")
        if self.quota is not None and self.quota < 0:
            raise ValueError(f"source {self.name}: quota must be >= 0")


@dataclass
class TopKSpec:
    per_category: dict[str, float]
    """Keep per category: a fraction (0 < k < 1) or a count (k >= 1) of the selectable pairs."""
    score: str = "armorm_mean"
    """The `meta` key ranked by (plus the source's offset); a pair without it is dropped."""

    def __post_init__(self):
        for cat, k in self.per_category.items():
            if not (isinstance(k, (int, float)) and k > 0):
                raise ValueError(f"top_k.per_category.{cat} must be > 0, got {k!r}")


@dataclass
class RMFilterSpec:
    model: str
    """A reward model path / hub id (scored with rmkit's RewardScorer), or "length" / "random"."""
    sources: list[str]
    """Sources whose pairs must satisfy reward(chosen) - reward(rejected) > margin."""
    margin: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    """`build_scorer` options: ScorerConfig's (dtype, max_length, truncation, batch_tokens, ...), `backend`
    (vllm: vLLM's engine), `engine: ray` with `actors` ...; `rmkit curate --backend vllm` etc. set them."""


@dataclass
class CurateConfig:
    sources: list[SourceSpec]
    output: str
    """The curated pairs: .jsonl (canonical rows) or .parquet."""
    report: str | None = None
    """Report .json (a .md and a `.dropped.jsonl` with every drop's reason go next to it)."""
    seed: int = 0
    top_k: TopKSpec | None = None
    rm_filter: RMFilterSpec | None = None
    dedup: bool = True
    """Exact dedup on (prompt, chosen, rejected) across all sources; the first occurrence stays."""
    drop_identical: bool = True
    """Drop pairs whose chosen equals rejected."""
    max_chars: int | None = None
    """Drop pairs whose prompt + longer response exceed this many characters."""
    min_response_chars: int = 1
    """Drop pairs with a chosen or rejected reply shorter than this (after stripping)."""
    errors: str = "skip"
    """Malformed source rows: "skip" (counted in the report) or "raise"."""
    shuffle: bool = False
    """Shuffle the output with the seed (else sources in order, pairs in source order)."""

    def __post_init__(self):
        self.sources = [s if isinstance(s, SourceSpec) else SourceSpec(**s) for s in self.sources]
        if not self.sources:
            raise ValueError("sources: name at least one source")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        if isinstance(self.top_k, dict):
            self.top_k = TopKSpec(**self.top_k)
        if isinstance(self.rm_filter, dict):
            self.rm_filter = RMFilterSpec(**self.rm_filter)
        if self.rm_filter and set(self.rm_filter.sources) - set(names):
            raise ValueError(f"rm_filter.sources names unknown sources "
                             f"{sorted(set(self.rm_filter.sources) - set(names))}")
        check_errors(self.errors)
        if not str(self.output).endswith((".jsonl", ".parquet")):
            raise ValueError(f"output must be .jsonl or .parquet, got {self.output!r}")
        if self.report is None:
            self.report = str(Path(self.output).with_suffix("")) + ".report.json"


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set dotted `key=value` overrides (values parsed as YAML) on a nested dict / list."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override must be key=value, got {item!r}")
        key, value = item.split("=", 1)
        *path, last = key.strip().split(".")
        node: Any = data
        for part in path:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = load_yaml(value)
        else:
            node[last] = load_yaml(value)
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> CurateConfig:
    data = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
    data = typed(apply_overrides(data, overrides or []), CurateConfig, "config")
    known = {f.name for f in fields(CurateConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return CurateConfig(**data)
