"""JudgeBench: both answer orders, a reward tie counts wrong, micro accuracy per category."""
from pathlib import Path

import pytest

from rmkit.data.schema import DataError
from rmkit.evaluate.judgebench import (category_of, evaluate_judgebench, load_judgebench,
                                       two_order_credit)
from rmkit.score.baselines import LengthScorer

FIX = Path(__file__).parents[1] / "fixtures" / "eval" / "judgebench"


def test_two_order_rule():
    assert two_order_credit("A>B", 2.0, 1.0) == (1, "A>B", "A>B")
    assert two_order_credit("B>A", 2.0, 1.0) == (0, "A>B", "A>B")
    assert two_order_credit("A>B", 1.0, 1.0) == (0, "B>A", "A>B")   # orders disagree: a tie
    assert two_order_credit("B>A", 1.0, 1.0)[0] == 0


def test_categories():
    assert category_of("mmlu-pro-computer science") == "Knowledge"
    assert category_of("livebench-reasoning") == "Reasoning"
    assert category_of("livebench-math") == "Math"
    assert category_of("livecodebench") == "Coding"


def test_fixture_scores_by_hand():
    res = evaluate_judgebench(LengthScorer(), load_judgebench(FIX / "sample.jsonl"), n_boot=200)
    assert res["score"] == pytest.approx(3 / 5)     # micro over pairs
    assert res["sections"] == pytest.approx({"Knowledge": 0.5, "Reasoning": 1.0, "Math": 0.0,
                                             "Coding": 1.0})
    assert res["n_ties"] == 1
    item = next(it for it in res["items"] if it["id"] == "jb-2")
    assert (item["reward_A"], item["reward_B"], item["correct"]) == (10.0, 5.0, 0)


def test_bad_label_is_a_named_error():
    with pytest.raises(DataError) as e:
        load_judgebench(FIX / "bad_label.jsonl")
    assert e.value.field == "label" and e.value.row == 1


def test_blank_response_is_data_not_an_error(tmp_path):
    p = tmp_path / "jb.jsonl"
    p.write_text('{"pair_id": "1", "source": "livecodebench", "question": "q", "response_A": "", '
                 '"response_B": "code", "label": "B>A"}\n')
    res = evaluate_judgebench(LengthScorer(), load_judgebench(p), n_boot=50)
    assert res["score"] == 1.0


def test_single_game_is_the_original_order_only(tmp_path):
    import json

    from rmkit.evaluate.judgebench import single_game_credit

    assert single_game_credit("A>B", 2.0, 1.0) == (1, "A>B")
    assert single_game_credit("B>A", 1.0, 1.0) == (1, "B>A")   # a tie reads "B>A" in one game
    assert single_game_credit("A>B", 1.0, 1.0) == (0, "B>A")
    rows = [json.loads(x) for x in (FIX / "sample.jsonl").read_text().splitlines()]
    rows.append({**rows[3], "pair_id": "jb-6", "label": "B>A"})  # equal lengths: a reward tie, label B>A
    path = tmp_path / "jb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = load_judgebench(path)
    two = evaluate_judgebench(LengthScorer(), pairs, n_boot=50)
    one = evaluate_judgebench(LengthScorer(), pairs, n_boot=50, single_game=True)
    assert two["score"] == pytest.approx(3 / 6) and one["score"] == pytest.approx(4 / 6)
    assert (two["mode"], one["mode"]) == ("two orders", "single game") and one["n_ties"] == 2
    assert one["sections"]["Math"] == 0.5 and two["sections"]["Math"] == 0.0
