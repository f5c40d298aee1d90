"""Calibrated preference probabilities: fit a temperature T so that P(a > b) = sigmoid((r_a - r_b) / T).

    rmkit calibrate --model M --data heldout_pairs.jsonl --output calibration.json --report calib/ [--save]

A Bradley-Terry reward model's raw sigmoid(r_a - r_b) is a probability only if training made it one; most
are over- or under-confident. On labelled pairs held out from training, T minimises the log-loss of the
preferred side (one parameter: the order of the two replies cannot change a reward-model's probabilities,
so each pair counts once each way). Reported before (T = 1) and after: log-loss, Brier score, and the expected
calibration error (ECE, 10 equal-width bins over P(first better), both orders), with a reliability diagram.
`--save` writes `calibration.json` beside a local model; `rmkit serve` then returns calibrated
`prob_first_better`, and `RewardScorer.temperature` reads it. The same file holds the mean and standard
deviation of every reward on those pairs (`reward_mean`, `reward_std`): the reference an RL loop
normalises rewards by (`rmkit.integrations.trl.reward_function(M, normalize=True)`, OpenRLHF's
config.mean / config.std).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np


BINS = 10


def _nll(beta: float, d: np.ndarray) -> tuple[float, float, float]:
    """Mean -log sigmoid(beta * d), its first and second derivative in beta (d = r_preferred - r_other)."""
    z = beta * d
    nll = np.logaddexp(0.0, -z).mean()
    s = 1.0 / (1.0 + np.exp(np.clip(z, -700, 700)))  # sigmoid(-z)
    grad = -(d * s).mean()
    hess = (d * d * s * (1 - s)).mean()
    return float(nll), float(grad), float(hess)


def fit_temperature(margins: Sequence[float]) -> float:
    """T > 0 minimising the mean -log sigmoid(margin / T) (margin = reward of the preferred reply minus the
    other's). Convex in beta = 1/T: Newton's method with a backtracking step. With no signal (the margins
    favour neither side) T is infinite: every probability is 0.5."""
    d = np.asarray([m for m in margins if math.isfinite(m)], float)
    if d.size == 0:
        raise ValueError("no finite reward differences to calibrate on")
    beta, (f, g, h) = 1.0, _nll(1.0, d)
    for _ in range(100):
        step = -g / h if h > 1e-12 else -g
        t = 1.0
        while t > 1e-8:
            nb = max(beta + t * step, 0.0)
            nf, ng, nh = _nll(nb, d)
            if nf <= f + 1e-12:
                break
            t /= 2
        if abs(nb - beta) < 1e-10:
            beta = nb
            break
        beta, f, g, h = nb, nf, ng, nh
    return math.inf if beta <= 1e-12 else 1.0 / beta


def _probs(margins: np.ndarray, temperature: float) -> np.ndarray:
    if math.isinf(temperature):
        return np.full_like(margins, 0.5)
    return 1.0 / (1.0 + np.exp(-np.clip(margins / temperature, -700, 700)))


def metrics(margins: Sequence[float], temperature: float = 1.0, bins: int = BINS) -> dict[str, Any]:
    """Log-loss, Brier and ECE of P(first better) over both orders of each pair, plus the diagram's bins."""
    d = np.asarray([m for m in margins if math.isfinite(m)], float)
    p = _probs(np.concatenate([d, -d]), temperature)          # the preferred reply first, then second
    y = np.concatenate([np.ones_like(d), np.zeros_like(d)])
    eps = 1e-12
    logloss = float(-(y * np.log(np.maximum(p, eps)) + (1 - y) * np.log(np.maximum(1 - p, eps))).mean())
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if not m.any():
            continue
        conf, acc = float(p[m].mean()), float(y[m].mean())
        ece += m.mean() * abs(conf - acc)
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(m.sum()),
                     "mean_probability": conf, "observed": acc})
    return {"temperature": temperature, "log_loss": logloss, "brier": float(((p - y) ** 2).mean()),
            "ece": float(ece), "bins": rows, "n_pairs": int(d.size)}


def calibrate(rewards: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """(chosen, rejected) rewards of labelled pairs → the fitted T and the metrics before and after."""
    margins = [c - r for c, r in rewards]
    t = fit_temperature(margins)
    return {"temperature": t, "before": metrics(margins, 1.0), "after": metrics(margins, t),
            "accuracy": float(np.mean([c > r for c, r in rewards])), "n_pairs": len(margins),
            "reward_stats": reward_stats([x for pair in rewards for x in pair])}


def reward_stats(rewards: Sequence[float]) -> dict[str, float]:
    """Mean and (population) standard deviation of the finite rewards: the reference for normalising."""
    r = np.asarray([x for x in rewards if math.isfinite(x)], float)
    if r.size == 0:
        raise ValueError("no finite rewards to measure")
    return {"mean": float(r.mean()), "std": float(r.std()), "n": int(r.size)}


def reliability_png(result: dict[str, Any], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfectly calibrated")
    for key, label in (("before", "raw: sigmoid(r_a - r_b)"),
                       ("after", f"T = {result['temperature']:.3g}: sigmoid((r_a - r_b) / T)")):
        m = result[key]
        xs = [b["mean_probability"] for b in m["bins"]]
        ys = [b["observed"] for b in m["bins"]]
        ax.plot(xs, ys, marker="o", label=f"{label}  (ECE {m['ece']:.3f})")
    ax.set_xlabel("predicted P(first reply preferred)")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"reliability, {result['n_pairs']} labelled pairs (both orders)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
