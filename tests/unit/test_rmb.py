"""RMB: pairwise and best-of-N accuracy per scenario, per leaderboard column, per goal (hand-computed).

The fixture answers start with their reward ("[5] ..."), which `BracketScorer` reads back, so every
number below can be checked by hand from tests/fixtures/rmb/RMB_dataset.
"""
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from rmkit.data.schema import BestOfN, DataError, PreferencePair
from rmkit.evaluate.rmb import (EXPECTED_FILES, SECTIONS, bon_correct, evaluate_rmb, load_rmb, pair_correct,
                                run_rmb)
from rmkit.score.baselines import BASELINES, final_assistant_text

FIX = Path(__file__).parents[1] / "fixtures" / "rmb"
DATA = FIX / "RMB_dataset"
PRESENT = {"Pairwise_set/Harmlessness/S1.json", "Pairwise_set/Helpfulness/Chat/Discussion.json",
           "Pairwise_set/Helpfulness/Code/Documentation.json", "BoN_set/Harmlessness/S1.json",
           "BoN_set/Helpfulness/Chat/Discussion.json", "BoN_set/Helpfulness/Brainstorming/Idea Development.json"}


class BracketScorer:
    """Reward = the number in brackets at the start of the final answer; records its calls."""

    name = "bracket"

    def __init__(self):
        self.calls = []

    def score(self, conversations):
        self.calls.append(len(conversations))
        return [float(re.match(r"\[(\d+)\]", final_assistant_text(c)).group(1)) for c in conversations]

    def score_pairs(self, pairs):
        r = self.score([p.chosen_conversation for p in pairs] + [p.rejected_conversation for p in pairs])
        return list(zip(r[:len(pairs)], r[len(pairs):]))


def test_rules_by_hand():
    assert pair_correct(2.0, 1.0) == 1 and pair_correct(1.0, 1.0) == 0       # a tie is wrong (strict >)
    assert pair_correct(float("nan"), 1.0) == 0
    assert bon_correct(5.0, [1.0, 2.0, 4.9]) == 1
    assert bon_correct(5.0, [1.0, 6.0, 2.0]) == 0                             # one loser above the best
    assert bon_correct(5.0, [1.0, 5.0]) == 0                                  # a tie with a loser is wrong


def test_the_official_format_loads():
    items = load_rmb(DATA)
    pairs = [it for it in items if isinstance(it, PreferencePair)]
    bons = [it for it in items if isinstance(it, BestOfN)]
    assert len(pairs) == 8 and len(bons) == 6
    p = next(it for it in pairs if it.id == "104")                            # multi-turn conversation_input
    assert [m.role for m in p.prompt] == ["user", "assistant", "user"]
    assert p.category == "Pairwise_set/Helpfulness/Chat/Discussion"
    assert p.meta["goal"] == "helpfulness" and p.meta["kind"] == "pairwise"
    b = next(it for it in bons if it.id == "1680")
    assert b.correct == [True, False, False, False] and b.completions[0][0].content.startswith("[6]")
    assert b.meta["goal"] == "helpfulness" and b.subset == "BoN_set/Helpfulness/Chat/Discussion"
    assert {it.meta["goal"] for it in items} == {"helpfulness", "harmlessness"}
    one = load_rmb(DATA / "BoN_set" / "Helpfulness" / "Brainstorming" / "Idea Development.json")
    assert len(one) == 1 and one[0].meta["scenario"] == "BoN_set/Helpfulness/Brainstorming/Idea Development"


def test_scores_per_scenario_column_goal_and_overall():
    sc = BracketScorer()
    res = evaluate_rmb(sc, load_rmb(DATA), n_boot=200)
    sub = {k: v["score"] for k, v in res["subsets"].items()}
    assert sub == pytest.approx({
        "Pairwise_set/Harmlessness/S1": 1 / 3,                  # (5,1) right, (2,2) tie, (3,4) wrong
        "Pairwise_set/Helpfulness/Chat/Discussion": 3 / 4,      # (1,6) wrong
        "Pairwise_set/Helpfulness/Code/Documentation": 0.0,
        "BoN_set/Harmlessness/S1": 1 / 2,                       # 5 vs [4, 5]: a tie with a loser
        "BoN_set/Helpfulness/Chat/Discussion": 2 / 3,           # 6 vs [2, 7, 1]: one loser beats the best
        "BoN_set/Helpfulness/Brainstorming/Idea Development": 1.0})
    assert res["subsets"]["Pairwise_set/Helpfulness/Chat/Discussion"]["n"] == 4
    # columns are micro over their items: Helpfulness Pairwise = 3/5, not the scenario mean 0.375
    assert res["sections"] == pytest.approx({"Helpfulness BoN": 3 / 4, "Helpfulness Pairwise": 3 / 5,
                                             "Harmlessness BoN": 1 / 2, "Harmlessness Pairwise": 1 / 3})
    assert list(res["sections"]) == list(SECTIONS)
    assert res["score"] == pytest.approx((3 / 4 + 3 / 5 + 1 / 2 + 1 / 3) / 4)
    assert res["goals"] == pytest.approx({"helpfulness": (3 / 4 + 3 / 5) / 2, "harmlessness": (1 / 2 + 1 / 3) / 2})
    for lo_hi, v in ((res["intervals"]["score"], res["score"]), (res["intervals"]["goals"]["helpfulness"],
                                                                res["goals"]["helpfulness"])):
        assert lo_hi[0] <= v <= lo_hi[1]
    assert res["intervals"]["sections"]["Harmlessness Pairwise"][0] < res["intervals"]["sections"]["Harmlessness Pairwise"][1]
    # one score_pairs call (8 pairs → 16 conversations), one score call for every best-of-N answer
    assert sc.calls == [16, 3 + 3 + 4 + 4 + 2 + 4]
    rec = next(r for r in res["items"] if r["kind"] == "bon" and r["id"] == "1680")
    assert rec["best_reward"] == 6.0 and rec["loser_rewards"] == [2.0, 7.0, 1.0] and rec["correct"] == 0
    assert res["n_pairs"] == 8 and res["n_bon"] == 6 and res["model"] == "bracket"
    assert len(res["pair_view"]["chosen_reward"]) == 8 + (2 + 2) + (3 + 3 + 1) + 3  # a pair per loser


def test_missing_files_are_listed_and_the_result_is_partial():
    res = evaluate_rmb(BASELINES["length"](), load_rmb(DATA), n_boot=20)
    assert res["complete"] is False
    assert len(EXPECTED_FILES) == 98 and set(EXPECTED_FILES) >= PRESENT
    assert res["missing_files"] == [f for f in EXPECTED_FILES if f not in PRESENT]
    assert "BoN_set/Harmlessness/S11.json" in res["missing_files"]
    only = evaluate_rmb(BASELINES["length"](), load_rmb(DATA / "Pairwise_set" / "Helpfulness"), n_boot=20)
    assert list(only["sections"]) == ["Helpfulness Pairwise"] and only["complete"] is False
    assert only["missing_subsets"][:3] == ["Helpfulness BoN", "Harmlessness BoN", "Harmlessness Pairwise"]
    assert "Pairwise_set/Helpfulness/Chat/Casual Conversation.json" in only["missing_subsets"]


def test_the_full_layout_is_complete(tmp_path):
    rows = {kind: json.loads((DATA / kind / "Harmlessness" / "S1.json").read_text())[:1]
            for kind in ("Pairwise_set", "BoN_set")}
    for rel in EXPECTED_FILES:
        kind = rel.split("/")[0]
        f = tmp_path / "RMB_dataset" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps([{**rows[kind][0], "category_path": rel.removesuffix(".json")}]))
    (tmp_path / "RMB_dataset" / "README.json").write_text("{}")       # not in the layout: not read
    res = evaluate_rmb(BracketScorer(), load_rmb(tmp_path), n_boot=20)
    assert res["complete"] is True and res["missing_files"] == [] and res["missing_subsets"] == []
    assert len(res["subsets"]) == 98
    assert res["sections"] == pytest.approx({"Helpfulness BoN": 1.0, "Helpfulness Pairwise": 1.0,
                                             "Harmlessness BoN": 1.0, "Harmlessness Pairwise": 1.0})


def test_a_malformed_row_names_file_row_and_field_or_is_counted(tmp_path):
    bad = FIX / "bad" / "Pairwise_set" / "Helpfulness" / "Chat" / "Discussion.json"
    with pytest.raises(DataError) as e:
        load_rmb(bad)
    assert e.value.file == str(bad) and e.value.row == 1 and e.value.field == "reject.answer"
    skipped = Counter()
    items = load_rmb(bad, errors="skip", skipped=skipped)
    assert [it.id for it in items] == ["101", "103"]
    assert skipped == Counter({"reject.answer: 'answer' must be a string, got missing": 1})
    badbon = FIX / "bad" / "BoN_set" / "Harmlessness" / "S2.json"
    with pytest.raises(DataError) as e:
        load_rmb(badbon)
    assert e.value.row == 0 and e.value.field == "loser_list" and "S2.json" in str(e.value)
    row = json.loads((DATA / "Pairwise_set" / "Harmlessness" / "S1.json").read_text())[0]
    f = tmp_path / "x.json"
    f.write_text(json.dumps([{**row, "category_path": "BoN_set/Harmlessness/S1"}]))  # a pair in the BoN set
    with pytest.raises(DataError) as e:
        load_rmb(f)
    assert e.value.field == "bon_best"
    f.write_text(json.dumps([{**row, "category_path": "Pairwise_set/Kindness/S1"}]))
    with pytest.raises(DataError) as e:
        load_rmb(f)
    assert e.value.field == "category_path"


def test_category_path_falls_back_to_the_file_place(tmp_path):
    row = json.loads((DATA / "Pairwise_set" / "Harmlessness" / "S1.json").read_text())[0]
    del row["category_path"]
    f = tmp_path / "Pairwise_set" / "Harmlessness" / "S7.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps([row]))
    assert load_rmb(tmp_path)[0].meta["scenario"] == "Pairwise_set/Harmlessness/S7"


def test_run_rmb_and_the_cli_finish(tmp_path):
    from rmkit.evaluate.cli import finish

    data = tmp_path / "RMB_dataset"
    shutil.copytree(DATA, data)
    shutil.copy(FIX / "bad" / "Pairwise_set" / "Helpfulness" / "Chat" / "Discussion.json",
                data / "Pairwise_set" / "Helpfulness" / "Chat" / "Discussion.json")
    skipped = Counter()
    res = run_rmb(BracketScorer(), data, n_boot=20, seed=0, errors="skip", skipped=skipped)
    assert sum(skipped.values()) == 1
    assert res["subsets"]["Pairwise_set/Helpfulness/Chat/Discussion"] == {"score": 0.5, "n": 2}
    out = tmp_path / "rmb.json"
    finish(res, out, None, "RMB", skipped)
    written = json.loads(out.read_text())
    assert written["benchmark"] == "rmb" and written["complete"] is False
    assert written["skipped_rows"] == {"reject.answer: 'answer' must be a string, got missing": 1}
    assert written["score"] == pytest.approx(res["score"])


def test_no_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RMKIT_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="no hub copy"):
        load_rmb()
    with pytest.raises(DataError, match="no RMB files"):
        load_rmb(tmp_path)
