"""`rmkit eval ...` and `rmkit compare` end to end: real LLMBar / EvalBiasBench data, benchmark fixtures."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rmkit.cli import app
from rmkit.data.schema import DataError

FIX = Path(__file__).parents[1] / "fixtures" / "eval"
runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def expected_length_accuracy(rows, a_key, b_key, a_wins):
    """Independent count: the better response is strictly longer."""
    right = [len(r[a_key] if a_wins(r) else r[b_key]) > len(r[b_key] if a_wins(r) else r[a_key])
             for r in rows]
    return sum(right) / len(right)


def test_pairwise_llmbar_real_data_length_baseline(shared_data, tmp_path):
    out, rep = tmp_path / "llmbar.json", tmp_path / "report"
    run("eval", "pairwise", "--scorer", "length", "--data", shared_data / "llmbar", "--output", out,
        "--report", rep, "--n-boot", 200)
    res = json.loads(out.read_text())
    rows = [r for f in sorted((shared_data / "llmbar").glob("*.json")) for r in json.loads(f.read_text())]
    assert res["n_items"] == len(rows) == 885
    assert res["score"] == pytest.approx(
        expected_length_accuracy(rows, "output_1", "output_2", lambda r: r["label"] == 1))
    natural = json.loads((shared_data / "llmbar" / "LLMBar_Natural.json").read_text())
    assert res["sections"]["LLMBar_Natural"] == pytest.approx(
        expected_length_accuracy(natural, "output_1", "output_2", lambda r: r["label"] == 1))
    lo, hi = res["intervals"]["score"]
    assert lo < res["score"] < hi
    assert res["diagnostics"]["length_baseline"]["agreement"] == 1.0   # the length scorer is the baseline
    assert (rep / "report.html").exists() and (rep / "sections.png").read_bytes()[:4] == b"\x89PNG"


def test_pairwise_evalbiasbench_real_data(shared_data, tmp_path):
    out = tmp_path / "ebb.json"
    run("eval", "pairwise", "--scorer", "length", "--data", shared_data / "evalbiasbench" / "biasbench.json",
        "--output", out, "--n-boot", 200)
    res = json.loads(out.read_text())
    raw = json.loads((shared_data / "evalbiasbench" / "biasbench.json").read_text())
    rows = [r for v in raw.values() for r in v]
    assert res["n_items"] == 80 and set(res["sections"]) == set(raw)
    assert res["score"] == pytest.approx(
        expected_length_accuracy(rows, "response1", "response2", lambda r: r["label"] == 1))
    swapped = sum(it["swapped"] for it in res["items"])
    assert 0 < swapped < 80   # answer order randomised, seeded


@pytest.mark.parametrize("cmd,data,score", [
    ("rewardbench2", "rewardbench2/sample.jsonl", None),
    ("rmbench", "rmbench/sample.json", 1 / 3),
    ("judgebench", "judgebench/sample.jsonl", 0.6),
])
def test_benchmark_commands_on_fixtures(cmd, data, score, tmp_path):
    out, rep = tmp_path / "r.json", tmp_path / "rep"
    result = run("eval", cmd, "--scorer", "length", "--data", FIX / data, "--output", out,
                 "--report", rep, "--n-boot", 100)
    res = json.loads(out.read_text())
    assert res["benchmark"] == cmd and res["model"] == "length"
    if score is not None:
        assert res["score"] == pytest.approx(score)
    assert {p.name for p in rep.iterdir()} >= {"summary.md", "report.html", "sections.png", "rewards.png"}
    assert "score" in result.output


def test_compare_command(tmp_path):
    for scorer in ("length", "random"):
        run("eval", "judgebench", "--scorer", scorer, "--data", FIX / "judgebench" / "sample.jsonl",
            "--output", tmp_path / f"{scorer}.json", "--n-boot", 100)
    out = tmp_path / "cmp.json"
    result = run("compare", tmp_path / "length.json", tmp_path / "random.json", "--output", out,
                 "--n-boot", 200)
    cmp = json.loads(out.read_text())
    assert cmp["n_common_items"] == 5 and cmp["rows"][0]["name"] == "Overall"
    assert cmp["rows"][0]["within_noise"]   # 5 items cannot tell two scorers apart
    assert "within noise" in result.output


def test_malformed_data_raises_a_named_error(tmp_path):
    with pytest.raises(DataError, match="field 'label'"):
        run("eval", "judgebench", "--scorer", "length", "--data", FIX / "judgebench" / "bad_label.jsonl",
            "--output", tmp_path / "x.json")


def test_rewardbench2_with_a_tiny_model(tiny_llama, tmp_path):
    out = tmp_path / "tiny.json"
    run("eval", "rewardbench2", "--model", tiny_llama, "--data", FIX / "rewardbench2" / "sample.jsonl",
        "--output", out, "--n-boot", 50, "--device", "cpu")
    res = json.loads(out.read_text())
    assert len(res["items"]) == 12 and all(len(it["rewards"]) >= 3 for it in res["items"])
    assert all(isinstance(x, float) for it in res["items"] for x in it["rewards"])
    assert 0.0 <= res["score"] <= 1.0


def test_rewardbench_v1_report_and_diagnostics(shared_data, tmp_path):
    out, rep = tmp_path / "rb1.json", tmp_path / "rep"
    run("eval", "rewardbench", "--scorer", "length", "--subsample", 120, "--output", out,
        "--report", rep, "--n-boot", 100)
    res = json.loads(out.read_text())
    assert set(res["intervals"]["subsets"]) == set(res["subsets"])
    assert all("chosen_len" in it for it in res["items"])
    assert res["diagnostics"]["length_baseline"]["agreement"] == 1.0
    assert "Chat Hard" in (rep / "summary.md").read_text()


def test_rewardbench_empty_input_is_an_error_naming_the_file(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.jsonl.*no rows"):
        run("eval", "rewardbench", "--scorer", "length", "--data", empty, "--output", tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_rewardbench_partial_input_is_scored_but_labelled(shared_data, tmp_path):
    import gzip

    rows = [json.loads(x) for x in gzip.open(shared_data / "reward-bench" / "filtered.jsonl.gz", "rt")]
    part = tmp_path / "part.jsonl"
    part.write_text("".join(json.dumps(r) + "\n" for r in [r for r in rows if r["subset"] == "alpacaeval-easy"][:20]))
    out = tmp_path / "p.json"
    result = run("eval", "rewardbench", "--scorer", "length", "--data", part, "--output", out, "--n-boot", 50)
    res = json.loads(out.read_text())
    assert res["complete"] is False and res["short_subsets"] == {"alpacaeval-easy": [20, 100]}
    assert len(res["missing_subsets"]) == 22 and "donotanswer" in res["missing_subsets"]
    assert "PARTIAL" in result.output and "not comparable" in result.output
    whole = tmp_path / "whole.json"
    result = run("eval", "rewardbench", "--scorer", "length", "--output", whole, "--n-boot", 50)
    assert json.loads(whole.read_text())["complete"] is True and "PARTIAL" not in result.output
    sub = tmp_path / "sub.json"
    result = run("eval", "rewardbench", "--scorer", "length", "--subsample", 60, "--output", sub, "--n-boot", 50)
    res = json.loads(sub.read_text())
    assert res["complete"] is False and res["subsample"] is True and "subsample" in result.output
    assert "PARTIAL" not in result.output


def test_rewardbench2_fixture_is_labelled_partial(tmp_path):
    out = tmp_path / "rb2.json"
    result = run("eval", "rewardbench2", "--scorer", "length", "--data", FIX / "rewardbench2" / "sample.jsonl",
                 "--output", out, "--n-boot", 50)
    res = json.loads(out.read_text())
    assert res["complete"] is False and set(res["short_subsets"]) | set(res["missing_subsets"]) >= {"Factuality"}
    assert "PARTIAL" in result.output


def test_rmb_command_scores_the_official_layout_and_says_what_is_missing(tmp_path):
    """`rmkit eval rmb` on RMB-format files: the length baseline's accuracies, counted here independently from
    the files (pairwise: chosen strictly longer; best-of-N: bon_best strictly longer than every loser)."""
    root = Path(__file__).parents[1] / "fixtures" / "rmb" / "RMB_dataset"
    right: dict[str, list[bool]] = {}
    for f in sorted(root.rglob("*.json")):
        kind, goal = f.relative_to(root).parts[:2]
        for row in json.loads(f.read_text()):
            if kind == "Pairwise_set":
                ok = len(row["chosen"]["answer"]) > len(row["reject"]["answer"])
            else:
                best = len(row["bon_best"]["answer"])
                ok = all(best > len(x["answer"]) for x in row["loser_list"])
            right.setdefault(f"{goal} {'BoN' if kind == 'BoN_set' else 'Pairwise'}", []).append(ok)
    out = tmp_path / "rmb.json"
    result = run("eval", "rmb", "--scorer", "length", "--data", root, "--output", out, "--n-boot", 50)
    res = json.loads(out.read_text())
    assert res["benchmark"] == "rmb" and res["model"] == "length"
    for section, oks in right.items():
        assert res["sections"][section] == pytest.approx(sum(oks) / len(oks)), section
    assert res["score"] == pytest.approx(sum(sum(o) / len(o) for o in right.values()) / 4)
    assert res["complete"] is False and len(res["missing_files"]) == 98 - len(list(root.rglob("*.json")))
    assert "partial" in result.output and "more (all in the results' missing_subsets)" in " ".join(result.output.split())
