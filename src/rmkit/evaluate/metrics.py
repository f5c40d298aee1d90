"""Pure scoring maths for pairwise benchmarks: accuracy, section scores, bootstrap intervals.

No torch, no I/O. Every function takes plain numbers and is tested on hand-checkable inputs.

    >>> pairwise_correct([1.0, 0.5, 2.0], [0.0, 0.5, 3.0])   # a tie is wrong
    [1, 0, 0]
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

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
    """Intervals for each section and for the overall score, resampling items within each subset.

    The official section rule (`section_scores`, a section with no subset present scores 0) applied
    elementwise to `grouped_bootstrap` samples.
    """
    boots = grouped_bootstrap(correct_by_subset, n_boot, seed)
    sec = {k: np.broadcast_to(v, (n_boot,)) for k, v in section_scores(boots, counts, mapping).items()}
    overall = sum(sec.values()) / len(sec)
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


# ---- grouped scores: every benchmark's headline is built from per-unit values in groups ----
#
# A "unit" is what the bootstrap resamples (an item, or a prompt for RewardBench 2 Ties); a group's
# score is the mean of its units' values (or a custom statistic); sections are weighted means of
# groups; the overall score is the plain mean of sections ("sections") or the unit-weighted mean
# of all groups ("micro").


def aggregate(group_scores: Mapping[str, Any], counts: Mapping[str, int],
              sections: Mapping[str, Mapping[str, float]], overall: str = "sections"
              ) -> tuple[dict[str, Any], Any]:
    """Sections (weighted means of their present groups) and the overall score.

    Works on floats and, elementwise, on arrays of bootstrap samples.
    """
    if overall not in ("sections", "micro"):
        raise ValueError("overall must be 'sections' or 'micro'")
    sec: dict[str, Any] = {}
    for name, weights in sections.items():
        present = [g for g in weights if g in group_scores]
        total = sum(weights[g] for g in present)
        if total:
            sec[name] = sum(group_scores[g] * weights[g] for g in present) / total
    if overall == "sections":
        return sec, (sum(sec.values()) / len(sec) if sec else 0.0)
    n = sum(counts[g] for g in group_scores)
    return sec, (sum(group_scores[g] * counts[g] for g in group_scores) / n if n else 0.0)


def resample_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) multiplicities of a with-replacement resample of n units."""
    idx = rng.integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n), dtype=np.int32)
    np.add.at(counts, (np.arange(n_boot)[:, None], idx), 1)
    return counts


def grouped_bootstrap(values: Mapping[str, Sequence[float]], n_boot: int = 1000, seed: int = 0,
                      custom: Mapping[str, tuple[int, Callable[[np.ndarray], float]]] | None = None
                      ) -> dict[str, np.ndarray]:
    """Bootstrap samples of each group's score, resampling units within the group.

    `custom[group] = (n_units, stat)`: stat(weights) gives the group score for unit multiplicities
    `weights` (all ones = the observed score), for scores that are not plain means (RB2 Ties).
    """
    rng = np.random.default_rng(seed)
    out = {g: bootstrap_means(values[g], n_boot, rng) for g in sorted(values)}
    for g, (n, stat) in sorted((custom or {}).items()):
        w = resample_counts(n, n_boot, rng)
        out[g] = np.array([stat(row) for row in w])
    return out


def grouped_scores(values: Mapping[str, Sequence[float]], sections: Mapping[str, Mapping[str, float]],
                   overall: str = "sections", n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                   custom: Mapping[str, tuple[int, Callable[[np.ndarray], float]]] | None = None
                   ) -> dict[str, Any]:
    """Group, section and overall scores with percentile bootstrap intervals for each."""
    custom = dict(custom or {})
    groups = {g: float(np.mean(v)) if len(v) else 0.0 for g, v in values.items()}
    groups.update({g: float(stat(np.ones(n))) for g, (n, stat) in custom.items()})
    counts = {**{g: len(v) for g, v in values.items()}, **{g: n for g, (n, _) in custom.items()}}
    sec, score = aggregate(groups, counts, sections, overall)
    boots = grouped_bootstrap(values, n_boot, seed, custom)
    b_sec, b_score = aggregate(boots, counts, sections, overall)
    ci = lambda s: list(percentile_interval(s, level))  # noqa: E731
    return {"score": float(score), "sections": {k: float(v) for k, v in sec.items()},
            "groups": groups, "counts": counts,
            "intervals": {"level": level, "n_boot": n_boot, "score": ci(b_score),
                          "sections": {k: ci(v) for k, v in b_sec.items()},
                          "subsets": {k: ci(v) for k, v in boots.items()}}}
