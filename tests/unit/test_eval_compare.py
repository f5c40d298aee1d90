"""`compare`: a planted difference is found, a null one is (almost always) within noise."""
import numpy as np
import pytest

from rmkit.evaluate.compare import compare_results, units_of


def _results(values_by_group, model):
    units = {g: {f"i{k}": float(v) for k, v in enumerate(vals)} for g, vals in values_by_group.items()}
    return {"benchmark": "pairwise", "model": model, "units": units,
            "aggregation": {"sections": {g: {g: float(len(v))} for g, v in units.items()},
                            "overall": "micro"}}


def _draw(rng, p, n=300):
    return {"g1": rng.random(n) < p, "g2": rng.random(n) < p}


def test_planted_difference_is_found():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        out = compare_results(_results(_draw(rng, 0.80), "A"), _results(_draw(rng, 0.65), "B"),
                              n_boot=500, seed=seed)
        overall = out["rows"][0]
        assert overall["name"] == "Overall" and overall["verdict"] == "A better"
        assert overall["low"] > 0 and overall["sign_test"]["p_value"] < 0.05


def test_null_difference_is_within_noise():
    flagged = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        out = compare_results(_results(_draw(rng, 0.7), "A"), _results(_draw(rng, 0.7), "B"),
                              n_boot=400, seed=seed)
        flagged += not out["rows"][0]["within_noise"]
    assert flagged <= 6   # expected about 2 of 40 at the 95% level


def test_only_common_items_are_paired_and_benchmarks_must_match():
    a = _results({"g1": [1, 1, 0, 1]}, "A")
    b = _results({"g1": [1, 0, 0]}, "B")
    out = compare_results(a, b, n_boot=100)
    assert out["n_common_items"] == 3 and out["n_items_a"] == 4
    assert out["rows"][0]["diff"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="different benchmarks"):
        compare_results(a, {**b, "benchmark": "judgebench"})


def test_rewardbench_v1_units_from_items():
    items = [{"id": "1", "subset": "alpacaeval-easy", "correct": 1},
             {"id": "2", "subset": "math-prm", "correct": 0}]
    units, agg = units_of({"benchmark": "rewardbench", "items": items})
    assert units == {"alpacaeval-easy": {"1": 1.0}, "math-prm": {"2": 0.0}}
    assert agg["sections"]["Reasoning"]["math-prm"] == 984


def test_compare_reproduces_each_side_official_scores_on_rewardbench2():
    from pathlib import Path

    from rmkit.evaluate.rewardbench2 import evaluate_rewardbench2, load_rewardbench2
    from rmkit.score.baselines import LengthScorer, RandomScorer

    items = load_rewardbench2(Path(__file__).parents[1] / "fixtures" / "eval" / "rewardbench2" / "sample.jsonl")
    a = evaluate_rewardbench2(LengthScorer(), items, n_boot=50)
    b = evaluate_rewardbench2(RandomScorer(seed=1), items, n_boot=50)
    out = compare_results(a, b, n_boot=200)
    rows = {r["name"]: r for r in out["rows"]}
    assert rows["Overall"]["a"] == pytest.approx(a["score"]) and rows["Overall"]["b"] == pytest.approx(b["score"])
    for s in a["sections"]:   # Ties included: every prompt has both a ref and a tied row
        assert rows[s]["a"] == pytest.approx(a["sections"][s])
        assert rows[s]["diff"] == pytest.approx(a["sections"][s] - b["sections"][s])


def test_preference_log_loss_uses_each_sides_temperature():
    import math

    def res(margins, t):
        items = [{"id": str(k), "subset": "alpacaeval-easy", "chosen_reward": m, "rejected_reward": 0.0,
                  "correct": int(m > 0)} for k, m in enumerate(margins)]
        return {"benchmark": "rewardbench", "model": "m", "items": items, "temperature": t}

    a, b = res([2.0, -1.0, 4.0], 2.0), res([2.0, -1.0, 4.0], 1.0)
    ll = compare_results(a, b, n_boot=100)["preference_log_loss"]
    want = lambda t: sum(math.log1p(math.exp(-m / t)) for m in (2.0, -1.0, 4.0)) / 3  # noqa: E731
    assert ll["a"] == pytest.approx(want(2.0)) and ll["b"] == pytest.approx(want(1.0)) and ll["n"] == 3
    assert ll["diff"] == pytest.approx(want(2.0) - want(1.0))
    none = compare_results(a, res([2.0, -1.0, 4.0], None), n_boot=100)["preference_log_loss"]
    assert none["b"] == pytest.approx(math.log(2))  # T = inf (no signal): every probability 0.5
    assert "preference_log_loss" not in compare_results(_results({"g": [1, 0]}, "A"), _results({"g": [0, 1]}, "B"),
                                                        n_boot=50)
