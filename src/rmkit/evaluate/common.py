"""What every benchmark evaluator shares: the results dict, lengths, default data, hub ids.

    results = build_results("judgebench", units, sections, "micro", items, view, n_boot=1000, seed=0)

`results.json` (one shape for all benchmarks) holds:
  benchmark, model, score (the headline fraction in [0, 1]), sections, subsets {name: {score, n}},
  intervals {level, n_boot, score, sections, subsets} (95% percentile bootstrap),
  units {group: {unit_id: value}} and aggregation {sections, overall} (what `rmkit compare` pairs on),
  items (every item with its rewards), pair_view (chosen/rejected rewards and lengths, for the
  report), diagnostics (length diagnostics). No torch here.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rmkit.data.schema import Conversation, check_errors
from rmkit.evaluate.diagnostics import diagnostics_from_view
from rmkit.evaluate.metrics import grouped_scores

Custom = Mapping[str, tuple[int, Callable[[np.ndarray], float]]]


def reply_length(conv: Conversation) -> int:
    """Characters of the assistant reply (all assistant turns), as the length baseline counts."""
    return sum(len(m.content) for m in conv if m.role == "assistant")


def local_or_hub(local_names: Sequence[str], hub_id: str) -> str:
    """The first of `local_names` under $RMKIT_DATA_DIR that exists, else the hub id."""
    root = os.environ.get("RMKIT_DATA_DIR")
    for rel in local_names:
        if root and (Path(root) / rel).exists():
            return str(Path(root) / rel)
    return hub_id


def build_results(benchmark: str, units: Mapping[str, Mapping[str, float]],
                  sections: Mapping[str, Mapping[str, float]], overall: str,
                  items: list[dict[str, Any]], view: Mapping[str, list[float]], *,
                  n_boot: int = 1000, seed: int = 0, custom: Custom | None = None) -> dict[str, Any]:
    """Scores, intervals, units, items, pair view and diagnostics in the shared results shape.

    Groups in `custom` are scored by their own statistic (their units serve `rmkit compare` only).
    """
    values = {g: list(u.values()) for g, u in units.items() if g not in (custom or {})}
    scored = grouped_scores(values, sections, overall, n_boot=n_boot, seed=seed, custom=custom)
    return {
        "benchmark": benchmark, "score": scored["score"], "sections": scored["sections"],
        "subsets": {g: {"score": scored["groups"][g], "n": scored["counts"][g]}
                    for g in sorted(scored["groups"])},
        "intervals": scored["intervals"],
        "units": {g: dict(u) for g, u in units.items()},
        "aggregation": {"sections": {s: dict(w) for s, w in sections.items()}, "overall": overall},
        "n_items": len(items), "items": items, "pair_view": {k: list(v) for k, v in view.items()},
        "diagnostics": diagnostics_from_view(view, n_boot=n_boot, seed=seed),
    }


def new_view() -> dict[str, list[float]]:
    return {"chosen_reward": [], "rejected_reward": [], "chosen_len": [], "rejected_len": []}


def add_to_view(view: dict[str, list[float]], chosen_reward: float, rejected_reward: float,
                chosen_len: int, rejected_len: int) -> None:
    view["chosen_reward"].append(float(chosen_reward))
    view["rejected_reward"].append(float(rejected_reward))
    view["chosen_len"].append(int(chosen_len))
    view["rejected_len"].append(int(rejected_len))


def completeness(seen: Mapping[str, int], official: Mapping[str, int], *, subsample: bool = False) -> dict:
    """Whether the scored input is the whole official set: {"complete", "missing_subsets", "short_subsets"
    ({subset: [rows seen, official rows]}), "subsample" (asked for)}. Incomplete input is still scored, but
    its figure is not the leaderboard's."""
    missing = sorted(s for s in official if not seen.get(s))
    short = {s: [seen[s], official[s]] for s in official if 0 < seen.get(s, 0) < official[s]}
    return {"complete": not missing and not short and not subsample, "missing_subsets": missing,
            "short_subsets": short, "subsample": subsample}


def partial_note(results: Mapping[str, Any]) -> str | None:
    """One line on why a figure is not the leaderboard's, or None for complete input."""
    if results.get("complete", True):
        return None
    if results.get("subsample"):
        return ("subsample (asked for): an estimate with intervals, not comparable with the leaderboard "
                "as a figure")
    parts = []
    missing = results.get("missing_subsets") or []
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more (all in the results' missing_subsets)"
                                          if len(missing) > 6 else "")
        parts.append("missing " + shown)
    if results.get("short_subsets"):
        parts.append("short " + ", ".join(f"{s} ({a}/{b})" for s, (a, b) in results["short_subsets"].items()))
    if results.get("skipped_rows"):
        parts.append(f"{sum(results['skipped_rows'].values())} unreadable rows skipped")
    return "partial: not comparable with the leaderboard; " + "; ".join(parts)


def read_benchmark(data, local_names: Sequence[str], hub_id: str, split: str, parse_row: Callable,
                   errors: str = "raise", skipped: Counter | None = None) -> list:
    """Parse every row of a benchmark from `data`, or the local copy under RMKIT_DATA_DIR, else the hub.
    errors="skip": a row that does not parse is counted in `skipped` ("field: reason") and left out."""
    from rmkit.data.io import is_local, read_rows

    source = str(data or local_or_hub(local_names, hub_id))
    file = source if is_local(source) else f"hub:{source}"
    split = None if is_local(source) or ":" in source else split
    return parse_each(read_rows(source, split=split), lambda i, row: parse_row(row, file=file, index=i), file,
                      errors, skipped)


def parse_each(rows, parse: Callable, file: str, errors: str = "raise", skipped: Counter | None = None) -> list:
    """[parse(index, row) for each (index, row)] under the --errors policy: "raise" lets a DataError out,
    "skip" counts it in `skipped` ("field: reason") and goes on. No rows, or none readable, is an error
    naming `file`."""
    from rmkit.data.schema import DataError, on_row_error

    check_errors(errors)
    items, seen = [], 0
    for i, row in rows:
        seen += 1
        try:
            items.append(parse(i, row))
        except DataError as e:
            on_row_error(e, errors, skipped)
    if not items:
        raise DataError("no rows" if not seen else f"none of its {seen} rows could be read", file=file)
    return items


def float_pair_rewards(scorer, pairs: Sequence[Any]) -> list[tuple[float, float]]:
    """(chosen, rejected) rewards from any scorer, with a missing reward (None) as NaN."""
    return [(float(c) if c is not None else math.nan, float(r) if r is not None else math.nan)
            for c, r in scorer.score_pairs(pairs)]


def scorer_name(scorer) -> str:
    return getattr(scorer, "name", type(scorer).__name__)


def finite(x: float) -> float | None:
    """JSON-safe float: NaN (a skipped input) becomes None."""
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


def json_safe(obj: Any) -> Any:
    """Recursively replace NaN / ±inf by None and numpy scalars by Python ones (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def attach_pair_diagnostics(results: dict[str, Any], pairs: Sequence[Any], *, n_boot: int = 1000,
                            seed: int = 0) -> dict[str, Any]:
    """For pair results made elsewhere (RewardBench v1): lengths on items, pair_view, diagnostics,
    and an interval for each subset."""
    from rmkit.evaluate.metrics import bootstrap_ci

    view, by_subset = new_view(), {}
    for it, p in zip(results["items"], pairs):
        it["chosen_len"], it["rejected_len"] = reply_length(p.chosen), reply_length(p.rejected)
        c, r = it["chosen_reward"], it["rejected_reward"]
        add_to_view(view, np.nan if c is None else c, np.nan if r is None else r,
                    it["chosen_len"], it["rejected_len"])
        by_subset.setdefault(it.get("subset"), []).append(float(it["correct"]))
    results["pair_view"] = view
    results["diagnostics"] = diagnostics_from_view(view, n_boot=n_boot, seed=seed)
    results["intervals"].setdefault("subsets", {
        s: list(bootstrap_ci(v, n_boot, seed)) for s, v in by_subset.items() if s is not None})
    return results
