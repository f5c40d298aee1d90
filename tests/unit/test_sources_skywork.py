"""The Skywork mixture's source loaders, each on a hand-written fixture in its real format."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from rmkit.data import DataError, detect_format, load_pairs
from rmkit.data.io import read_rows
from rmkit.data.sources import helpsteer2, wildguard

FIX = Path(__file__).parents[1] / "fixtures" / "curate"


def _write(tmp_path, rows, name="rows.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_helpsteer2_pairs_by_helpfulness_ties_dropped_margin_kept():
    pairs = load_pairs(FIX / "helpsteer2.jsonl")
    assert detect_format(next(read_rows(FIX / "helpsteer2.jsonl"))[1]) == "helpsteer2"
    assert [p.id for p in pairs] == ["helpsteer2:0", "helpsteer2:4", "helpsteer2:6"]  # capital: tie
    assert [p.meta["margin"] for p in pairs] == [2.0, 2.0, 1.0]
    assert pairs[0].chosen[0].content.startswith("C# is a high-level")
    assert pairs[0].rejected[0].content == "C# is a musical note."
    multi = pairs[1]
    assert [m.role for m in multi.prompt] == ["user", "assistant", "user"]
    assert multi.prompt[0].content == "Write a haiku about autumn."
    assert multi.prompt[2].content == "Now write one about winter."
    assert multi.chosen[0].content.startswith("Snow on silent roofs")


def test_helpsteer2_counts_ties_and_names_bad_rows(tmp_path):
    dropped = Counter()
    rows = read_rows(FIX / "helpsteer2.jsonl")
    out = list(helpsteer2.iter_rows(rows, file="hs", dropped=dropped))
    assert len(out) == 3 and dropped == {"helpfulness_tie": 1}
    bad = _write(tmp_path, [{"prompt": "q", "response": "a", "helpfulness": 3},
                            {"prompt": "q", "response": "b", "helpfulness": "high"}])
    with pytest.raises(DataError) as e:
        load_pairs(bad)
    assert (e.value.row, e.value.field) == (1, "helpfulness") and str(bad) in str(e.value)


def test_offsetbias_label_picks_chosen():
    pairs = load_pairs(FIX / "offsetbias.jsonl")
    assert [p.chosen[0].content for p in pairs] == [
        "Distance learning is harder than in-person classes.", "Red, yellow and blue.", "Modern."]
    assert pairs[2].rejected[0].content == "Old." and pairs[0].source == "offsetbias"


def test_llmbar_layout_uses_the_offsetbias_loader(tmp_path):
    path = tmp_path / "llmbar.json"
    path.write_text(json.dumps([{"input": "Say hi.", "output_1": "Bye.", "output_2": "Hi!",
                                 "label": "2"}]))
    (pair,) = load_pairs(path)
    assert (pair.source, pair.chosen[0].content, pair.rejected[0].content) == ("llmbar", "Hi!", "Bye.")


def test_offsetbias_bad_label(tmp_path):
    bad = _write(tmp_path, [{"instruction": "q", "output_1": "a", "output_2": "b", "label": 3}])
    with pytest.raises(DataError) as e:
        load_pairs(bad)
    assert e.value.field == "label" and e.value.row == 0


def test_wildguard_prefers_refusal_on_harmful_and_compliance_on_benign():
    dropped = Counter()
    pairs = list(wildguard.iter_rows(read_rows(FIX / "wildguard.jsonl"), file="wg", dropped=dropped))
    assert [p.id for p in pairs] == ["wildguard:0", "wildguard:2"]
    harmful, benign = pairs
    assert harmful.chosen[0].content.startswith("I can't help with instructions")
    assert harmful.rejected[0].content.startswith("Sure! First")
    assert harmful.meta["adversarial"] is True and harmful.meta["chosen_kind"] == "refusal"
    assert benign.chosen[0].content.startswith("Find its PID")
    assert benign.rejected[0].content.startswith("I'm sorry")
    assert dropped == {"prompt_only": 1, "no_counterpart": 1}
    assert [p.id for p in load_pairs(FIX / "wildguard.jsonl")] == ["wildguard:0", "wildguard:2"]


def test_wildguard_bad_label_named(tmp_path):
    bad = _write(tmp_path, [{"prompt": "p", "response": "r", "prompt_harm_label": "harmful",
                             "response_refusal_label": "maybe"}])
    with pytest.raises(DataError) as e:
        load_pairs(bad)
    assert e.value.field == "response_refusal_label"
    skipped = Counter()
    assert load_pairs(bad, errors="skip", skipped=skipped) == []
    assert list(skipped) == [next(iter(skipped))] and next(iter(skipped)).startswith("response_refusal_label: ")


def test_magpie_dpo_rows_highest_vs_lowest_with_average():
    pairs = load_pairs(FIX / "magpie_air.jsonl")
    math = pairs[0]
    assert (math.id, math.category) == ("air-math-1", "math")
    assert math.chosen[0].content == "17 × 23 = 391." and math.rejected[0].content == "It is 381."
    assert math.meta["armorm_mean"] == pytest.approx((0.21 + 0.05 + 0.20) / 3)
    assert [p.category for p in pairs] == ["math", "code", "other"]


def test_magpie_ultra_layout():
    pairs = load_pairs(FIX / "magpie_ultra.jsonl")
    assert [p.category for p in pairs] == ["math", "code", "other"]
    assert pairs[0].chosen[0].content == "The derivative of x^3 is 3x^2."
    assert pairs[0].meta["armorm_mean"] == pytest.approx(0.13)


def test_magpie_on_real_example(shared_data):
    path = shared_data / "magpie-armorm-example" / "example_instructions_5res_armorm.json"
    rows = [r for _, r in read_rows(path)]
    pairs = load_pairs(path)
    assert len(pairs) == 5 and all(p.category == "code" for p in pairs)
    for row, pair in zip(rows, pairs):
        scores = [s["score"] for s in row["rewards_armorm"]]
        assert pair.id == row["uuid"]
        assert pair.chosen[0].content == row["responses"][scores.index(max(scores))]
        assert pair.rejected[0].content == row["responses"][scores.index(min(scores))]
        assert pair.meta["armorm_mean"] == pytest.approx(sum(scores) / 5)
    # the first record: scores .1128 .1074 .1079 .1167 .1147 → chosen #3, rejected #1
    assert pairs[0].chosen[0].content == rows[0]["responses"][3]
    assert pairs[0].rejected[0].content == rows[0]["responses"][1]


def test_magpie_equal_scores_and_count_mismatch(tmp_path):
    bad = _write(tmp_path, [{"instruction": "q", "responses": ["a", "b"],
                             "rewards_armorm": [{"score": 0.1}, {"score": 0.1}]},
                            {"instruction": "q", "responses": ["a", "b"], "rewards_armorm": [0.1]}])
    skipped = Counter()
    assert load_pairs(bad, errors="skip", skipped=skipped) == []
    assert skipped == {"rewards_armorm: 1 scores for 2 responses": 1,
                       "rewards_armorm: all responses have the same ArmoRM score": 1}  # field: reason


def test_skywork_80k_rows():
    pairs = load_pairs(FIX / "skywork80k.jsonl")
    assert [p.source for p in pairs] == ["helpsteer2", "magpie_ultra", "offsetbias"]
    assert pairs[1].prompt[0].content == "What is the derivative of x^3?"
    assert pairs[1].chosen[0].content == "3x^2." and pairs[1].rejected[0].content == "x^2."
    assert [m.content for m in pairs[2].prompt] == ["Hi", "Hello! How can I help?", "What's 2+2?"]
    assert (pairs[2].chosen[0].content, pairs[2].rejected[0].content) == ("4", "5")
