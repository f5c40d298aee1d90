"""Pure scoring maths for pairwise benchmarks: accuracy, section scores, bootstrap intervals.

No torch, no I/O. Every function takes plain numbers and is tested on hand-checkable inputs.

    >>> pairwise_correct([1.0, 0.5, 2.0], [0.0, 0.5, 3.0])   # a tie is wrong
    [1, 0, 0]
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np


def pairwise_correct(chosen: Sequence[float], rejected: Sequence[float]) -> list[int]:
    """1 where chosen > rejected strictly; a tie or a NaN (skipped input) counts as wrong."""
    return [int(c > r) for c, r in zip(chosen, rejected)]  # NaN > x and x > NaN are both False


def section_scores(subset_acc: Mapping[str, float], counts: Mapping[str, int],
                   mapping: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Each section = Σ acc·count / Σ count over its subsets that are present (0 if none is)."""
    out = {}
    for section, subsets in mapping.items():
        present = [s for s in subsets if s in subset_acc]
        total = sum(counts[s] for s in present)
        out[section] = sum(subset_acc[s] * counts[s] for s in present) / total if total else 0.0
    return out


def overall_score(sections: Mapping[str, float]) -> float:
    return float(sum(sections.values()) / len(sections)) if sections else 0.0


def bootstrap_means(values: Sequence[float], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """n_boot bootstrap means of `values` (resampled with replacement)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return np.full(n_boot, np.nan)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    return v[idx].mean(axis=1)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.nanpercentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def bootstrap_ci(values: Sequence[float], n_boot: int = 1000, seed: int = 0, level: float = 0.95
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`."""
    return percentile_interval(bootstrap_means(values, n_boot, np.random.default_rng(seed)), level)


def stratified_section_bootstrap(correct_by_subset: Mapping[str, Sequence[int]],
                                 counts: Mapping[str, int], mapping: Mapping[str, Sequence[str]],
                                 n_boot: int = 1000, seed: int = 0, level: float = 0.95
                                 ) -> tuple[dict[str, tuple[float, float]], tuple[float, float]]:
    """Intervals for each section and for the overall score, resampling items within each subset."""
    rng = np.random.default_rng(seed)
    boots = {s: bootstrap_means(v, n_boot, rng) for s, v in sorted(correct_by_subset.items())}
    sec = {}
    for section, subsets in mapping.items():
        present = [s for s in subsets if s in boots]
        total = sum(counts[s] for s in present)
        sec[section] = (sum(boots[s] * counts[s] for s in present) / total if total
                        else np.zeros(n_boot))
    overall = np.mean(np.stack(list(sec.values())), axis=0)
    return ({k: percentile_interval(v, level) for k, v in sec.items()},
            percentile_interval(overall, level))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict[str, float]:
    """Difference mean(a) − mean(b) on the same items, its bootstrap interval and a two-sided p-value."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if x.shape != y.shape:
        raise ValueError("paired bootstrap needs the same items on both sides")
    d = x - y
    boots = bootstrap_means(d, n_boot, np.random.default_rng(seed))
    lo, hi = percentile_interval(boots, level)
    p = 2 * min((boots <= 0).mean(), (boots >= 0).mean())
    return {"diff": float(d.mean()), "low": lo, "high": hi, "p_value": float(min(1.0, p)),
            "significant": bool(lo > 0 or hi < 0)}


def sign_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Exact two-sided sign test on paired items (ties dropped)."""
    wins = sum(1 for x, y in zip(a, b) if x > y)
    losses = sum(1 for x, y in zip(a, b) if x < y)
    n = wins + losses
    if n == 0:
        return {"wins": 0, "losses": 0, "p_value": 1.0}
    k = min(wins, losses)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
    return {"wins": wins, "losses": losses, "p_value": p}
