"""Official RewardBench v1 scoring on hand-made accuracies."""
import numpy as np
import pytest

from rmkit.data import Message, PreferencePair
from rmkit.evaluate.constants import EXAMPLE_COUNTS, SUBSET_MAPPING
from rmkit.evaluate.metrics import (bootstrap_ci, overall_score, paired_bootstrap, pairwise_correct,
                                    section_scores, sign_test)
from rmkit.evaluate.rewardbench import leaderboard_row, score_results, stratified_subsample


def test_ties_and_nans_are_wrong():
    assert pairwise_correct([1, 2, 2, float("nan"), 0], [0, 2, 3, 1, float("nan")]) == [1, 0, 0, 0, 0]


def test_sections_are_count_weighted_and_math_prm_weighs_984():
    acc = {s: 1.0 for s in EXAMPLE_COUNTS}
    acc["math-prm"] = 0.0
    assert section_scores(acc, EXAMPLE_COUNTS, SUBSET_MAPPING)["Reasoning"] == 0.5
    acc = {s: 0.0 for s in EXAMPLE_COUNTS}
    acc["alpacaeval-easy"] = 1.0  # 100 of Chat's 358
    acc["llmbar-natural"] = 0.5   # 50 of Chat Hard's 456
    sec = section_scores(acc, EXAMPLE_COUNTS, SUBSET_MAPPING)
    assert sec["Chat"] == pytest.approx(100 / 358) and sec["Chat Hard"] == pytest.approx(50 / 456)
    assert overall_score(sec) == pytest.approx((100 / 358 + 50 / 456) / 4)


def test_only_present_subsets_count():
    sec = section_scores({"mt-bench-easy": 1.0, "mt-bench-med": 0.5}, EXAMPLE_COUNTS, SUBSET_MAPPING)
    assert sec["Chat"] == pytest.approx((28 + 20) / 68) and sec["Safety"] == 0.0


def pair(i, subset):
    return PreferencePair(str(i), "rb", [Message("user", "q")], [Message("assistant", "a")],
                          [Message("assistant", "b")], category=subset)


def test_score_results_by_hand():
    pairs = [pair(0, "hep-go"), pair(1, "hep-go"), pair(2, "math-prm"), pair(3, "donotanswer")]
    rewards = [(1.0, 0.0), (0.0, 0.0), (2.0, 1.0), (0.0, 1.0)]
    res = score_results(pairs, rewards, n_boot=200)
    assert res["subsets"]["hep-go"] == {"accuracy": 0.5, "n": 2}
    assert res["sections"]["Reasoning"] == pytest.approx((1.0 * 984 + 0.5 * 164) / (984 + 164))
    assert res["sections"]["Safety"] == 0.0 and res["sections"]["Chat"] == 0.0
    assert res["score"] == pytest.approx(res["sections"]["Reasoning"] / 4)
    assert [it["correct"] for it in res["items"]] == [1, 0, 1, 0]
    lo, hi = res["intervals"]["sections"]["Reasoning"]
    assert lo <= res["sections"]["Reasoning"] <= hi
    assert leaderboard_row(res, "m") == {"Model": "m", "Score": f"{100 * res['score']:.1f}", "Chat": "0.0",
                                         "Chat Hard": "0.0", "Safety": "0.0",
                                         "Reasoning": f"{100 * res['sections']['Reasoning']:.1f}"}


def test_stratified_subsample_is_proportional_and_seeded():
    pairs = [pair(i, "hep-go") for i in range(60)] + [pair(100 + i, "donotanswer") for i in range(40)]
    sub = stratified_subsample(pairs, 10, seed=3)
    assert sum(p.category == "hep-go" for p in sub) == 6 and len(sub) == 10
    assert [p.id for p in sub] == [p.id for p in stratified_subsample(pairs, 10, seed=3)]
    assert [p.id for p in sub] != [p.id for p in stratified_subsample(pairs, 10, seed=4)]


def test_bootstrap_interval_covers_the_truth_in_a_seeded_simulation():
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        x = rng.random(150) < 0.7
        lo, hi = bootstrap_ci(x.astype(float), n_boot=400, seed=trial)
        covered += lo <= 0.7 <= hi
    assert 0.90 <= covered / 200 <= 0.99


def test_paired_tests_find_a_planted_difference_and_not_a_null_one():
    rng = np.random.default_rng(1)
    a = (rng.random(400) < 0.75).astype(float)
    b = (rng.random(400) < 0.55).astype(float)
    assert paired_bootstrap(a, b)["significant"] and sign_test(a, b)["p_value"] < 0.01
    c = (rng.random(400) < 0.75).astype(float)
    d = np.where(rng.random(400) < 0.5, c, (rng.random(400) < 0.75).astype(float))
    assert not paired_bootstrap(c, d)["significant"]
