"""Length diagnostics: does the reward model just prefer the longer answer?

    from rmkit.evaluate.diagnostics import length_diagnostics
    diag = length_diagnostics(chosen_reward, rejected_reward, chosen_len, rejected_len)

Pure numpy, no torch. Every benchmark projects its items onto (chosen, rejected) pairs (`pair_view`);
from those this module reports accuracy by length-difference bucket (log2 of the length ratio
chosen / rejected), the correlation of reward with response length (Pearson and Spearman, over all
scored responses, and of the reward margin with the length margin), and how often the model agrees
with the length baseline (prefers the longer response) where the two differ in length. Every number
has a 95% bootstrap interval. Lengths are characters of the reply, as `LengthScorer` counts them.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from rmkit.evaluate.metrics import bootstrap_ci, percentile_interval

# (label, low, high) on log2(len_chosen / len_rejected); low inclusive, high exclusive
BUCKETS = (("chosen ≤ ½ length", -math.inf, -1.0), ("chosen shorter", -1.0, -0.25),
           ("similar length", -0.25, 0.25), ("chosen longer", 0.25, 1.0),
           ("chosen ≥ 2× length", 1.0, math.inf))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), for Spearman's rho."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return sums[inv] / counts[inv]


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; NaN when either side is constant or fewer than 3 points."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return pearson(_ranks(np.asarray(x, float)), _ranks(np.asarray(y, float)))


def correlation_ci(x: Sequence[float], y: Sequence[float], method: str = "pearson",
                   n_boot: int = 500, seed: int = 0) -> list[float]:
    """Percentile bootstrap interval of a correlation, resampling points."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    if a.size < 3:
        return [float("nan"), float("nan")]
    fn = pearson if method == "pearson" else spearman
    idx = np.random.default_rng(seed).integers(0, a.size, size=(n_boot, a.size))
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = np.array([fn(a[i], b[i]) for i in idx])
    if np.all(np.isnan(samples)):
        return [float("nan"), float("nan")]
    return list(percentile_interval(samples))


def length_buckets(correct: Sequence[float], chosen_len: Sequence[int], rejected_len: Sequence[int],
                   n_boot: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Accuracy of the model in each length-ratio bucket, with n and a bootstrap interval."""
    c = np.asarray(correct, float)
    ratio = np.log2((np.asarray(chosen_len, float) + 1) / (np.asarray(rejected_len, float) + 1))
    rows = []
    for label, lo, hi in BUCKETS:
        mask = (ratio >= lo) & (ratio < hi)
        vals = c[mask]
        acc = float(vals.mean()) if vals.size else float("nan")
        ci = list(bootstrap_ci(vals, n_boot, seed)) if vals.size else [float("nan")] * 2
        rows.append({"bucket": label, "n": int(vals.size), "accuracy": acc, "interval": ci})
    return rows


def length_agreement(chosen_reward, rejected_reward, chosen_len, rejected_len,
                     n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """How often the model prefers the longer response, where the two differ in length.

    `agreement` = share of those pairs where the model's preference matches the length baseline's
    (a reward tie counts as disagreement); `length_baseline_accuracy` = share where chosen is longer.
    """
    cr, rr = np.asarray(chosen_reward, float), np.asarray(rejected_reward, float)
    cl, rl = np.asarray(chosen_len, float), np.asarray(rejected_len, float)
    mask = cl != rl
    longer_is_chosen = (cl > rl)[mask]
    model_prefers_chosen = (cr > rr)[mask]
    model_prefers_rejected = (cr < rr)[mask]
    agree = np.where(longer_is_chosen, model_prefers_chosen, model_prefers_rejected).astype(float)
    base = longer_is_chosen.astype(float)
    nan2 = [float("nan")] * 2
    return {"n_pairs_differing_in_length": int(mask.sum()),
            "agreement": float(agree.mean()) if agree.size else float("nan"),
            "agreement_interval": list(bootstrap_ci(agree, n_boot, seed)) if agree.size else nan2,
            "length_baseline_accuracy": float(base.mean()) if base.size else float("nan"),
            "length_baseline_interval": list(bootstrap_ci(base, n_boot, seed)) if base.size else nan2}


def length_diagnostics(chosen_reward: Sequence[float], rejected_reward: Sequence[float],
                       chosen_len: Sequence[int], rejected_len: Sequence[int],
                       n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """All length diagnostics for a set of (chosen, rejected) pairs."""
    cr, rr = np.asarray(chosen_reward, float), np.asarray(rejected_reward, float)
    cl, rl = np.asarray(chosen_len, float), np.asarray(rejected_len, float)
    ok = ~(np.isnan(cr) | np.isnan(rr))  # skipped (over-long) inputs have NaN rewards
    cr, rr, cl, rl = cr[ok], rr[ok], cl[ok], rl[ok]
    rewards, lengths = np.concatenate([cr, rr]), np.concatenate([cl, rl])
    corr = {}
    for method, fn in (("pearson", pearson), ("spearman", spearman)):
        corr[method] = {"value": fn(rewards, lengths),
                        "interval": correlation_ci(rewards, lengths, method, seed=seed)}
    corr["margin_pearson"] = {"value": pearson(cr - rr, cl - rl),
                              "interval": correlation_ci(cr - rr, cl - rl, seed=seed)}
    return {"n_pairs": int(ok.sum()),
            "length_buckets": length_buckets((cr > rr).astype(float), cl, rl, n_boot, seed),
            "reward_length_correlation": corr,
            "length_baseline": length_agreement(cr, rr, cl, rl, n_boot, seed)}


def diagnostics_from_view(view: Mapping[str, Sequence[float]], n_boot: int = 1000,
                          seed: int = 0) -> dict[str, Any]:
    return length_diagnostics(view["chosen_reward"], view["rejected_reward"], view["chosen_len"],
                              view["rejected_len"], n_boot=n_boot, seed=seed)


__all__ = ["BUCKETS", "pearson", "spearman", "correlation_ci", "length_buckets", "length_agreement",
           "length_diagnostics", "diagnostics_from_view"]
