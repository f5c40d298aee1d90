"""Labelled pairwise sets: LLMBar, Auto-J (agreement over all rows), EvalBiasBench (seeded shuffle), generic labels."""
from pathlib import Path

import pytest

from rmkit.data.schema import DataError
from rmkit.evaluate.pairwise import evaluate_pairwise, load_labelled_pairs, parse_label
from rmkit.score.baselines import LengthScorer

FIX = Path(__file__).parents[1] / "fixtures" / "eval" / "pairwise"


@pytest.mark.parametrize("value,expected", [(1, "A"), (2, "B"), ("1", "A"), ("A", "A"), ("b", "B"),
                                            ("A>B", "A"), ("B>A", "B"), ("A = B", "tie"), (2.0, "B"),
                                            ("model_b", "B"), ("tie (bothbad)", "tie")])
def test_parse_label(value, expected):
    assert parse_label(value) == expected


def test_parse_label_autoj_is_zero_based():
    assert [parse_label(v, autoj=True) for v in (0, 1, 2)] == ["A", "B", "tie"]
    with pytest.raises(DataError):
        parse_label(0)
    with pytest.raises(DataError):
        parse_label(True)


def _score(name, **kw):
    return evaluate_pairwise(LengthScorer(), load_labelled_pairs(FIX / name, **kw), n_boot=200)


def test_llmbar_layout():
    res = _score("llmbar_style.json")
    assert res["score"] == pytest.approx(2 / 3)
    assert [it["correct"] for it in res["items"]] == [1, 0, 1]


def test_autoj_headline_is_the_official_agreement_over_all_rows():
    res = _score("autoj_style.jsonl")
    # rows: right, wrong, tie missed (lengths differ), tie matched, tie matched (equal lengths: equal rewards)
    assert res["score"] == pytest.approx(3 / 5) and res["metric"].startswith("agreement over all rows")
    assert res["sections"] == {"Summarization": 1.0, "Code": pytest.approx(1 / 3), "General Communication": 1.0}
    assert res["ties"]["n"] == 3 and res["ties"]["agreement_all_pairs"] == pytest.approx(3 / 5)
    nt = res["non_tie_accuracy"]  # the non-tie rows only: kept, under its own name
    assert nt["score"] == 0.5 and nt["sections"] == {"Summarization": 1.0, "Code": 0.0}


def test_generic_csv_with_mixed_labels():
    assert _score("generic.csv")["score"] == pytest.approx(4 / 5)


def test_evalbiasbench_order_is_shuffled_with_a_seed():
    a = load_labelled_pairs(FIX / "evalbiasbench_style.json", seed=0)
    b = load_labelled_pairs(FIX / "evalbiasbench_style.json", seed=0)
    c = load_labelled_pairs(FIX / "evalbiasbench_style.json", seed=1)
    swaps = [p.meta["swapped"] for p in a]
    assert swaps == [p.meta["swapped"] for p in b]
    assert 0 < sum(swaps) < len(swaps) and swaps != [p.meta["swapped"] for p in c]
    assert {p.meta["label"] for p in a if p.meta["swapped"]} == {"B"}
    # the better answer stays the better answer whatever the order
    res = evaluate_pairwise(LengthScorer(), a, n_boot=200)
    assert res["score"] == pytest.approx(0.4)
    assert res["sections"] == {"concreteness": 1.0, "length bias": 0.0}
    assert not any(p.meta["swapped"] for p in load_labelled_pairs(FIX / "evalbiasbench_style.json",
                                                                   shuffle=False))


def test_bad_label_names_row_and_field():
    with pytest.raises(DataError) as e:
        load_labelled_pairs(FIX / "bad_label.jsonl")
    assert e.value.row == 1 and e.value.field == "label" and "bad_label.jsonl" in str(e.value)


def test_missing_columns_are_named(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"prompt": "p", "answer": "a", "label": 1}\n')
    with pytest.raises(DataError, match="two responses"):
        load_labelled_pairs(p)


def test_winner_column_arena_style(tmp_path):
    p = tmp_path / "arena.jsonl"
    p.write_text('{"question": "q", "response_a": "long answer", "response_b": "short", "winner": "model_a"}\n'
                 '{"question": "q", "response_a": "long answer", "response_b": "short", "winner": "tie"}\n')
    res = evaluate_pairwise(LengthScorer(), load_labelled_pairs(p), n_boot=50)
    assert res["ties"]["n"] == 1 and res["non_tie_accuracy"]["score"] == 1.0
    assert res["score"] == 0.5  # agreement over all rows: the tie is missed (the rewards differ)
