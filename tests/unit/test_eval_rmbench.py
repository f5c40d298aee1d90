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


def _official_files(folder):
    """The fixture's rows split as the official per-domain files are: no `domain` field, domain in the name."""
    import json

    rows = json.loads((FIX / "sample.json").read_text())
    folder.mkdir()
    for raw in ("chat", "math", "safety-refuse", "safety-response"):
        keep = [{k: v for k, v in r.items() if k != "domain"} for r in rows if r["domain"] == raw]
        (folder / f"{raw}_filtered.json").write_text(json.dumps(keep))
    return rows


def test_official_per_domain_files_score_as_the_total_file(tmp_path):
    import json

    rows = _official_files(tmp_path / "rmb")
    whole = evaluate_rmbench(LengthScorer(), load_rmbench(FIX / "sample.json"), n_boot=50)
    split = evaluate_rmbench(LengthScorer(), load_rmbench(tmp_path / "rmb"), n_boot=50)
    assert split["sections"] == pytest.approx(whole["sections"]) and split["score"] == pytest.approx(whole["score"])
    assert split["complete"] is False and split["missing_subsets"] == ["code"]  # the overall is partial
    one = load_rmbench(tmp_path / "rmb" / "safety-refuse_filtered.json")
    assert {p.category for it in one for p in it} == {"safety"} and one[0][0].meta["raw_domain"] == "safety-refuse"
    code = [{k: v for k, v in rows[0].items() if k != "domain"}]
    (tmp_path / "rmb" / "code_filtered.json").write_text(json.dumps(code))
    full = evaluate_rmbench(LengthScorer(), load_rmbench(tmp_path / "rmb"), n_boot=50)
    assert full["complete"] is True and full["missing_subsets"] == []
    assert full["score"] == pytest.approx(sum(full["sections"].values()) / 4)


def test_a_file_with_no_domain_needs_its_name_or_domain(tmp_path):
    import json

    rows = [{k: v for k, v in r.items() if k != "domain"} for r in json.loads((FIX / "sample.json").read_text())]
    anon = tmp_path / "mine.json"
    anon.write_text(json.dumps(rows))
    with pytest.raises(DataError) as e:
        load_rmbench(anon)
    assert e.value.field == "domain" and e.value.row == 0 and "mine.json" in str(e.value)
    assert {it[0].category for it in load_rmbench(anon, domain="code")} == {"code"}
    with pytest.raises(ValueError, match="--domain"):
        load_rmbench(anon, domain="poetry")
