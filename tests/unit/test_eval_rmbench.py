"""RM-Bench: the 3×3 chosen-vs-rejected matrix and its Easy / Normal / Hard levels (hand-computed)."""
from pathlib import Path

import numpy as np
import pytest

from rmkit.data.schema import DataError
from rmkit.evaluate.rmbench import evaluate_rmbench, item_matrix, levels, load_rmbench
from rmkit.score.baselines import LengthScorer

FIX = Path(__file__).parents[1] / "fixtures" / "eval" / "rmbench"


def test_matrix_and_levels_by_hand():
    m = item_matrix([2, 5, 8], [3, 6, 9])   # chosen styles (rows) vs rejected styles (columns)
    assert m.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert levels(m) == {"hard": 0.0, "normal": 0.0, "easy": 1.0}
    m = np.array([[1, 0, 1], [1, 1, 0], [1, 1, 1]])
    assert levels(m) == pytest.approx({"hard": 1 / 3, "normal": 1.0, "easy": 1.0})
    assert item_matrix([3, 3, 3], [3, 3, 3]).sum() == 0   # a tie is not a win


def test_fixture_levels_per_domain_and_overall():
    items = load_rmbench(FIX / "sample.json")
    assert {it[0].category for it in items} == {"chat", "safety", "math"}  # safety-* pooled
    res = evaluate_rmbench(LengthScorer(), items, n_boot=200)
    lv = res["levels"]
    assert lv["domains"]["chat"] == pytest.approx({"hard": 0.0, "normal": 0.5, "easy": 1.0})
    assert lv["domains"]["safety"] == pytest.approx({"hard": 0.5, "normal": 0.5, "easy": 0.5})
    assert lv["domains"]["math"] == pytest.approx({"hard": 0.0, "normal": 0.0, "easy": 0.0})
    assert lv["overall"] == pytest.approx({"hard": 1 / 6, "normal": 1 / 3, "easy": 0.5})
    assert res["sections"] == pytest.approx({"chat": 0.5, "math": 0.0, "safety": 0.5})
    assert list(res["sections"]) == ["chat", "math", "safety"]
    assert res["score"] == pytest.approx(1 / 3)
    np.testing.assert_allclose(res["matrices"]["chat"], [[0.5, 0, 0], [1, 0.5, 0], [1, 1, 0.5]])
    lo, hi = res["intervals"]["score"]
    assert lo <= res["score"] <= hi
    assert res["intervals"]["matrices"]["chat"][0][0] == [0.0, 1.0]   # cell (0,0): one item of two
    assert res["intervals"]["matrices"]["math"][1][1] == [0.0, 0.0]
    assert len(res["pair_view"]["chosen_reward"]) == 9 * len(items)


def test_row_without_three_styles_is_a_named_error():
    with pytest.raises(DataError) as e:
        load_rmbench(FIX / "bad_two_styles.json")
    assert e.value.field == "rejected" and e.value.row == 0
