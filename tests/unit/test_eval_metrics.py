"""Grouped scores and bootstrap intervals: hand-checked aggregation, coverage on a seeded simulation."""
import numpy as np
import pytest

from rmkit.evaluate.metrics import (aggregate, bootstrap_ci, grouped_scores, resample_counts,
                                    stratified_section_bootstrap)


def test_aggregate_sections_and_micro():
    groups = {"a": 1.0, "b": 0.5, "c": 0.0}
    counts = {"a": 2, "b": 4, "c": 2}
    sections = {"S1": {"a": 1, "b": 3}, "S2": {"c": 1}}
    sec, overall = aggregate(groups, counts, sections, "sections")
    assert sec == pytest.approx({"S1": (1.0 + 1.5) / 4, "S2": 0.0}) and overall == pytest.approx(0.3125)
    _, micro = aggregate(groups, counts, sections, "micro")
    assert micro == pytest.approx((2 + 2 + 0) / 8)
    with pytest.raises(ValueError):
        aggregate(groups, counts, sections, "median")


def test_resample_counts_rows_sum_to_n():
    w = resample_counts(7, 50, np.random.default_rng(0))
    assert w.shape == (50, 7) and (w.sum(axis=1) == 7).all()


def test_grouped_scores_point_values_and_custom_group():
    custom = {"T": (3, lambda w: float(np.average([0.0, 0.5, 1.0], weights=w)))}
    out = grouped_scores({"a": [1, 1, 0, 0], "b": [1, 1, 1, 1]}, {"a": {"a": 1}, "b": {"b": 1},
                         "T": {"T": 1}}, "sections", n_boot=300, seed=1, custom=custom)
    assert out["groups"] == {"a": 0.5, "b": 1.0, "T": 0.5}
    assert out["score"] == pytest.approx(2 / 3)
    assert out["intervals"]["subsets"]["b"] == [1.0, 1.0]
    lo, hi = out["intervals"]["score"]
    assert lo < out["score"] < hi


def test_bootstrap_interval_covers_the_truth_about_95_percent():
    rng = np.random.default_rng(12345)
    truth, hits, sims = 0.7, 0, 300
    for s in range(sims):
        sample = rng.random(200) < truth
        lo, hi = bootstrap_ci(sample.astype(float), n_boot=400, seed=s)
        hits += lo <= truth <= hi
    assert 0.90 <= hits / sims <= 0.99


def test_grouped_interval_of_a_mean_of_sections_covers_the_truth():
    rng = np.random.default_rng(7)
    p = {"x": 0.9, "y": 0.5, "z": 0.6}
    n = {"x": 60, "y": 150, "z": 90}
    truth = np.mean(list(p.values()))
    hits, sims = 0, 150
    for s in range(sims):
        values = {g: (rng.random(n[g]) < p[g]).astype(float) for g in p}
        out = grouped_scores(values, {g: {g: 1} for g in p}, "sections", n_boot=300, seed=s)
        lo, hi = out["intervals"]["score"]
        hits += lo <= truth <= hi
    assert 0.88 <= hits / sims <= 0.995


def test_matches_the_v1_stratified_bootstrap():
    values = {"a": [1, 0, 1, 1], "b": [0, 0, 1]}
    mapping, counts = {"S": ["a", "b"]}, {"a": 2, "b": 1}
    _, ci_v1 = stratified_section_bootstrap(values, counts, mapping, n_boot=500, seed=3)
    out = grouped_scores(values, {"S": {"a": 2, "b": 1}}, "sections", n_boot=500, seed=3)
    assert out["intervals"]["score"] == pytest.approx(list(ci_v1))
