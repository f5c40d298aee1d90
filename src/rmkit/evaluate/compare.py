"""Is model A really better than model B? `rmkit compare RESULTS_A RESULTS_B [--output cmp.json]`.

    from rmkit.evaluate.compare import compare_results
    table = compare_results(json.load(open("a.json")), json.load(open("b.json")))

Both results.json must come from the same benchmark. Items are paired by id within each group
(subset / domain / source); only items present in both are compared (the count is reported).
For each group, section and the overall score: the difference A − B, a paired bootstrap 95%
interval (the same resampled items on both sides, within each group, combined with the benchmark's
own weights) and its p-value, and an exact sign test on the items (McNemar's test when items are
right/wrong). A difference is flagged "within noise" unless the interval excludes 0 and the sign
test's p < 0.05. RewardBench 2 Ties is paired on per-prompt credits. On pair benchmarks it also compares the
preference probabilities: the log-loss of P(chosen > rejected) = sigmoid((r_c - r_r) / T), each side with its
own calibrated temperature (`rmkit calibrate`; T = 1 when none was fitted).
No torch.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from rmkit.evaluate.metrics import aggregate, percentile_interval, sign_test


def units_of(results: Mapping[str, Any]) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """(units {group: {id: value}}, aggregation) of a results dict; RewardBench v1 from its items."""
    if "units" in results:
        return results["units"], results["aggregation"]
    if results.get("benchmark") == "rewardbench":
        from rmkit.evaluate.constants import EXAMPLE_COUNTS, SUBSET_MAPPING

        units: dict[str, dict[str, float]] = {}
        for it in results["items"]:
            units.setdefault(it["subset"], {})[str(it["id"])] = float(it["correct"])
        sections = {s: {g: EXAMPLE_COUNTS[g] for g in gs} for s, gs in SUBSET_MAPPING.items()}
        return units, {"sections": sections, "overall": "sections"}
    raise ValueError("results have no per-item units; re-run the evaluation with this rmkit version")


def paired_groups(a: Mapping[str, Any], b: Mapping[str, Any]
                  ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any], int, int]:
    """Per group, the aligned value arrays of A and B on their common items."""
    if a.get("benchmark") != b.get("benchmark"):
        raise ValueError(f"different benchmarks: {a.get('benchmark')} vs {b.get('benchmark')}")
    ua, agg = units_of(a)
    ub, _ = units_of(b)
    out, n_a = {}, sum(len(u) for u in ua.values())
    for g in sorted(set(ua) & set(ub)):
        ids = sorted(set(ua[g]) & set(ub[g]))
        if ids:
            out[g] = (np.array([ua[g][i] for i in ids]), np.array([ub[g][i] for i in ids]))
    n_common = sum(len(x) for x, _ in out.values())
    if not n_common:
        raise ValueError("the two results share no items")
    return out, agg, n_common, n_a


def _row(name: str, a: float, b: float, boots: np.ndarray, xa: np.ndarray, xb: np.ndarray,
         level: float) -> dict[str, Any]:
    lo, hi = percentile_interval(boots, level)
    p = float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))
    st = sign_test(xa, xb)
    # the percentile bootstrap is overconfident on a handful of items; the exact sign test (McNemar's
    # test for right/wrong items) is not, so a difference counts only when both see it
    noise = not (lo > 0 or hi < 0) or st["p_value"] >= 1 - level
    verdict = "within noise" if noise else ("A better" if a > b else "B better")
    return {"name": name, "a": float(a), "b": float(b), "diff": float(a - b), "low": lo, "high": hi,
            "p_bootstrap": p, "sign_test": st, "n": int(xa.size), "within_noise": noise,
            "verdict": verdict}


def compare_results(a: Mapping[str, Any], b: Mapping[str, Any], *, n_boot: int = 2000,
                    seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Paired comparison of two results on the same items: groups, sections and overall."""
    groups, agg, n_common, n_a = paired_groups(a, b)
    rng = np.random.default_rng(seed)
    counts = {g: x.size for g, (x, _) in groups.items()}
    mean_a = {g: float(x.mean()) for g, (x, _) in groups.items()}
    mean_b = {g: float(y.mean()) for g, (_, y) in groups.items()}
    boots = {}
    for g, (x, y) in groups.items():
        idx = rng.integers(0, x.size, size=(n_boot, x.size))
        boots[g] = x[idx].mean(axis=1) - y[idx].mean(axis=1)
    sec_a, all_a = aggregate(mean_a, counts, agg["sections"], agg["overall"])
    sec_b, all_b = aggregate(mean_b, counts, agg["sections"], agg["overall"])
    sec_d, all_d = aggregate(boots, counts, agg["sections"], agg["overall"])
    xa = np.concatenate([x for x, _ in groups.values()])
    xb = np.concatenate([y for _, y in groups.values()])
    rows = [_row("Overall", all_a, all_b, np.asarray(all_d), xa, xb, level)]
    for s in sec_a:
        members = [g for g in agg["sections"][s] if g in groups]
        sx = np.concatenate([groups[g][0] for g in members])
        sy = np.concatenate([groups[g][1] for g in members])
        rows.append(_row(s, sec_a[s], sec_b[s], np.asarray(sec_d[s]), sx, sy, level))
    group_rows = [_row(g, mean_a[g], mean_b[g], boots[g], x, y, level) for g, (x, y) in groups.items()]
    out = {"benchmark": a.get("benchmark"), "model_a": a.get("model"), "model_b": b.get("model"),
           "n_common_items": n_common, "n_items_a": n_a, "level": level, "n_boot": n_boot,
           "rows": rows, "groups": group_rows if set(groups) != set(sec_a) else []}
    ll = preference_log_loss(a, b, n_boot=n_boot, seed=seed, level=level)
    if ll is not None:
        out["preference_log_loss"] = ll
    return out


def _pair_margins(results: Mapping[str, Any]) -> dict[tuple, float]:
    """{item key: (chosen - rejected) / T} for pair benchmarks, T the results' calibration temperature."""
    t = results.get("temperature", 1.0)
    t = float("inf") if t is None else float(t)
    out = {}
    for it in results.get("items", []):
        c, r = it.get("chosen_reward"), it.get("rejected_reward")
        if c is None or r is None or it.get("correct") is None:
            continue  # not a pair item, an unscored pair, or a tie-labelled pair
        group = it.get("subset") or it.get("group") or it.get("source") or it.get("category")
        out[(group, str(it.get("id")), it.get("row"))] = 0.0 if t == float("inf") else (c - r) / t
    return out


def preference_log_loss(a: Mapping[str, Any], b: Mapping[str, Any], *, n_boot: int = 2000, seed: int = 0,
                        level: float = 0.95) -> dict[str, Any] | None:
    """Mean -log P(chosen > rejected) of A and B on their common pairs, P = sigmoid((r_c - r_r) / T) with each
    results' own temperature (`rmkit calibrate --save`; 1 when none), and a paired bootstrap interval of
    A - B (lower is better). None when the results hold no pair items."""
    ma, mb = _pair_margins(a), _pair_margins(b)
    keys = sorted(set(ma) & set(mb), key=str)
    if not keys:
        return None
    la = np.logaddexp(0.0, -np.array([ma[k] for k in keys]))
    lb = np.logaddexp(0.0, -np.array([mb[k] for k in keys]))
    idx = np.random.default_rng(seed).integers(0, len(keys), size=(n_boot, len(keys)))
    lo, hi = percentile_interval(la[idx].mean(axis=1) - lb[idx].mean(axis=1), level)
    return {"a": float(la.mean()), "b": float(lb.mean()), "diff": float(la.mean() - lb.mean()),
            "low": lo, "high": hi, "n": len(keys), "temperature_a": a.get("temperature", 1.0),
            "temperature_b": b.get("temperature", 1.0)}
