"""`curate(CurateConfig)`: the Skywork-style mixture recipe, from sources to a curated pair file.

    rmkit curate --config configs/curate/skywork-80k.yaml [key=value ...]

    from rmkit.curate import curate, load_config
    report = curate(load_config("configs/curate/fixture-demo.yaml"))

Steps, in order (each recorded in the report with per-source / per-category counts and reasons):
load → identical → length → dedup → top_k (selectable sources) → rm_filter (named sources) →
quota → output. Deterministic for a seed: ties and samples depend only on the seed and the data.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict

from rmkit.curate.filters import drop_identical, exact_dedup, length_limits, rm_consistency
from rmkit.curate.config import CurateConfig, SourceSpec
from rmkit.curate.report import CurateReport, write_report
from rmkit.curate.select import apply_quota, top_k_per_category
from rmkit.data.io import read_rows, write_rows
from rmkit.data.schema import DataError, PreferencePair, on_row_error
from rmkit.data.sources import GROUPED, iter_pairs


def load_source(spec: SourceSpec, *, errors: str, skipped: Counter) -> list[PreferencePair]:
    """A source's pairs, labelled with its name; skipped rows and grouped-format drops counted."""
    if spec.format in GROUPED:
        items = GROUPED[spec.format](read_rows(spec.path, split=spec.split), file=spec.path,
                                     dropped=skipped)
        pairs = []
        for item in items:
            if isinstance(item, DataError):
                on_row_error(item, errors, skipped, key=item.field or "row")
            else:
                pairs.append(item)
    else:
        pairs = list(iter_pairs(spec.path, format=spec.format, split=spec.split,
                                column_map=spec.column_map, errors=errors, skipped=skipped))
    for p in pairs:
        p.meta = {**p.meta, "origin": p.source} if p.source != spec.name else p.meta
        p.source = spec.name
    return pairs


def _select(cfg: CurateConfig, pairs: list[PreferencePair]):
    names = {s.name for s in cfg.sources if s.select}
    pool = [p for p in pairs if p.source in names]
    offsets = {s.name: s.offset for s in cfg.sources}
    kept, drops = top_k_per_category(pool, cfg.top_k.per_category, offsets=offsets,
                                     key=cfg.top_k.score, seed=cfg.seed)
    kept_ids = {id(p) for p in kept}
    return [p for p in pairs if p.source not in names or id(p) in kept_ids], drops


def _rm_filter(cfg: CurateConfig, pairs: list[PreferencePair], scorer):
    spec = cfg.rm_filter
    target = [p for p in pairs if p.source in spec.sources]
    kept, drops = rm_consistency(target, scorer or spec.model, margin=spec.margin,
                                 options=spec.options)
    kept_ids = {id(p) for p in kept}
    return [p for p in pairs if p.source not in spec.sources or id(p) in kept_ids], drops


def _quotas(cfg: CurateConfig, pairs: list[PreferencePair]):
    out, drops = [], []
    for i, spec in enumerate(cfg.sources):
        kept, d = apply_quota([p for p in pairs if p.source == spec.name], spec.quota, cfg.seed + i)
        out += kept
        drops += d
    return out, drops


def curate(cfg: CurateConfig, *, scorer=None) -> dict:
    """Run the recipe; write the output and the report; return the report dict.

    `scorer` (any rmkit Scorer) overrides `rm_filter.model` for the RM-consistency step."""
    report = CurateReport(config=asdict(cfg))
    pairs: list[PreferencePair] = []
    for spec in cfg.sources:
        skipped: Counter = Counter()
        pairs += load_source(spec, errors=cfg.errors, skipped=skipped)
        if skipped:
            report.load_skipped[spec.name] = dict(skipped)
    report.step("load", pairs)
    steps = [("identical", drop_identical if cfg.drop_identical else None),
             ("length", lambda ps: length_limits(ps, max_chars=cfg.max_chars,
                                                 min_response_chars=cfg.min_response_chars)),
             ("dedup", exact_dedup if cfg.dedup else None),
             ("top_k", (lambda ps: _select(cfg, ps)) if cfg.top_k else None),
             ("rm_filter", (lambda ps: _rm_filter(cfg, ps, scorer)) if cfg.rm_filter else None),
             ("quota", lambda ps: _quotas(cfg, ps))]
    for name, fn in steps:
        if fn is not None:
            pairs, drops = fn(pairs)
            report.step(name, pairs, drops)
    if cfg.shuffle:
        random.Random(cfg.seed).shuffle(pairs)
    write_rows(cfg.output, (p.to_dict() for p in pairs))
    return write_report(report, cfg.report)
