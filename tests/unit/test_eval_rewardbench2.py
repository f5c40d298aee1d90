"""RewardBench 2: best-of-N credit with shared ties, the Ties formula, the loader (hand-computed numbers)."""
import math
from pathlib import Path

import numpy as np
import pytest

from rmkit.data.schema import DataError
from rmkit.evaluate.rewardbench2 import (bon_credit, evaluate_rewardbench2, load_rewardbench2,
                                         ties_arrays, ties_components)
from rmkit.score.baselines import LengthScorer

FIX = Path(__file__).parents[1] / "fixtures" / "eval" / "rewardbench2"


def test_bon_credit_shares_ties_at_the_top():
    assert bon_credit([4, 2, 2, 1], [True, False, False, False]) == 1.0
    assert bon_credit([3, 3, 1, 2], [True, False, False, False]) == 0.5
    assert bon_credit([2, 2, 2, 2], [True, False, False, False]) == 0.25
    assert bon_credit([1, 2, 3, 4], [True, False, False, False]) == 0.0
    assert bon_credit([float("nan"), 1, 0, 0], [True, False, False, False]) == 0.0  # skipped input


def test_ties_formula_hand_case_with_an_unpaired_prompt():
    rows = [("ref", "1", [6, 2, 3], [True, False, False]),            # accurate, margin 3
            ("tied", "1", [5, 6, 2, 3], [True, True, False, False]),  # accurate, spread 1, margin 2
            ("ref", "2", [2, 4, 1], [True, False, False]),            # inaccurate, margin -2
            ("tied", "2", [1, 3, 2, 0], [True, True, False, False]),  # inaccurate, spread 2, margin -1
            ("ref", "3", [9, 1], [True, False])]                       # no tied partner
    out = ties_components(ties_arrays(rows))
    assert out["ref_accuracy"] == pytest.approx(2 / 3)
    assert out["tied_accuracy"] == pytest.approx(1 / 2)
    assert out["correctness_preferred"] == pytest.approx(1 / 2)       # 2 > 1; -1 < 2
    assert out["correctness_preferred_hard"] == pytest.approx(1 / 2)  # min(3,2)=2 > 1; min(-2,-1) < 2
    margin = (math.tanh(2 / 1 - 1) + math.tanh(-2 / 2 - 1)) / 2
    assert out["correctness_margin_score"] == pytest.approx(margin)
    expected = 0.3 * 0.5 + 0.3 * (2 / 3) + 0.2 * 0.5 + 0.2 * 0.5 + 0.01 * margin
    assert out["score"] == pytest.approx(expected)


def test_ties_bootstrap_weights_of_one_give_the_observed_score():
    a = ties_arrays([("ref", "1", [3, 1], [True, False]), ("tied", "1", [3, 2, 1], [True, True, False])])
    assert ties_components(a, np.ones(1))["score"] == ties_components(a)["score"]


def test_fixture_scores_by_hand():
    items = load_rewardbench2(FIX / "sample.jsonl")
    res = evaluate_rewardbench2(LengthScorer(), items, n_boot=200)
    subsets = {k: v["score"] for k, v in res["subsets"].items()}
    ties = 0.3 * 1.0 + 0.3 * 0.5 + 0.2 * 1.0 + 0.2 * 0.5 + 0.01 * (math.tanh(1.0) - 1.0) / 2
    assert subsets == pytest.approx({"Factuality": 0.5, "Precise IF": 0.25, "Math": 1.0,
                                     "Safety": 0.0, "Focus": 0.5, "Ties": ties})
    assert list(res["sections"]) == ["Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties"]
    assert res["score"] == pytest.approx((0.5 + 0.25 + 1.0 + 0.0 + 0.5 + ties) / 6)
    f2 = next(it for it in res["items"] if it["id"] == "f2")
    assert f2["rewards"] == [3.0, 3.0, 1.0, 2.0] and f2["credit"] == 0.5
    lo, hi = res["intervals"]["score"]
    assert lo <= res["score"] <= hi
    assert res["ties_components"]["tied_accuracy"] == 1.0
    # every prompt has both rows, so the per-prompt credits average to the official Ties score
    assert np.mean(list(res["units"]["Ties"].values())) == pytest.approx(ties)


def test_malformed_ties_id_is_a_named_error():
    with pytest.raises(DataError) as e:
        load_rewardbench2(FIX / "bad_ties_id.jsonl")
    assert e.value.field == "id" and e.value.row == 1 and "bad_ties_id.jsonl" in str(e.value)


def test_num_correct_out_of_range(tmp_path):
    p = tmp_path / "rb2.jsonl"
    p.write_text('{"id": "1", "subset": "Math", "prompt": "q", "chosen": ["a"], "rejected": ["b"], '
                 '"num_correct": 2}\n')
    with pytest.raises(DataError, match="num_correct"):
        load_rewardbench2(p)


def test_subsample_keeps_ties_prompts_whole():
    items = load_rewardbench2(FIX / "sample.jsonl", subsample=1, seed=3)
    ties = [it for it in items if it.subset == "Ties"]
    assert len(ties) == 2 and ties[0].meta["ties_prompt"] == ties[1].meta["ties_prompt"]
    assert len([it for it in items if it.subset == "Factuality"]) == 1


def test_ties_component_intervals_bracket_the_terms():
    res = evaluate_rewardbench2(LengthScorer(), load_rewardbench2(FIX / "sample.jsonl"), n_boot=200)
    ivs = res["intervals"]["ties_components"]
    for k, v in res["ties_components"].items():
        assert ivs[k][0] - 1e-12 <= v <= ivs[k][1] + 1e-12
