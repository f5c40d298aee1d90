"""`rmkit curate --config configs/curate/fixture-demo.yaml` end to end, then `rmkit decontaminate`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rmkit.cli import app

ROOT = Path(__file__).parents[2]


def _curate(tmp_path, name, *extra):
    out = tmp_path / name / "pairs.jsonl"
    result = CliRunner().invoke(app, ["curate", "--config", "configs/curate/fixture-demo.yaml",
                                      f"output={out}", *extra])
    assert result.exit_code == 0, result.output
    return out, json.loads(out.with_suffix(".report.json").read_text())


def test_fixture_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out, report = _curate(tmp_path, "a")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_source = {}
    for r in rows:
        by_source.setdefault(r["source"], []).append(r["id"])
    # top-2 per category by average ArmoRM after offsets (air -0.1, pro -0.05): worked out by hand
    assert sorted(by_source["magpie_ultra"]) == ["magpie:0", "magpie:1", "magpie:2"]
    assert by_source["magpie_pro_llama3.1"] == ["p31-code-1", "p31-other-1"]
    assert by_source["magpie_pro"] == ["pro-math-1"] and "magpie_air" not in by_source
    assert by_source["helpsteer2"] == ["helpsteer2:0", "helpsteer2:4", "helpsteer2:6"]
    assert len(rows) == report["kept"] == 14 and report["drop_reasons"] == {"below_top_k": 4}
    assert report["load_skipped"]["wildguard"] == {"prompt_only": 1, "no_counterpart": 1}
    dropped = [json.loads(line) for line in
               (out.parent / "pairs.report.dropped.jsonl").read_text().splitlines()]
    assert {d["id"] for d in dropped} == {"air-math-1", "air-code-1", "air-other-1", "pro-other-1"}
    assert "| magpie_air | 3 | 3 | 3 | 3 | 0 | 0 | 0 |" in (out.parent / "pairs.report.md").read_text()
    again, _ = _curate(tmp_path, "b")
    assert again.read_bytes() == out.read_bytes()  # deterministic for a seed


def test_fixture_demo_parquet_output(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.chdir(ROOT)
    out = tmp_path / "p" / "pairs.parquet"
    result = CliRunner().invoke(app, ["curate", "--config", "configs/curate/fixture-demo.yaml",
                                      f"output={out}"])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 14
    ultra = next(r for r in rows if r["id"] == "magpie:0")
    assert ultra["meta"]["armorm_mean"] == pytest.approx(0.13) and ultra["category"] == "math"


def test_fixture_demo_with_a_tiny_reward_model_and_quota(tmp_path, monkeypatch, tiny_llama):
    pytest.importorskip("torch")
    monkeypatch.chdir(ROOT)
    out, report = _curate(tmp_path, "rm", f"rm_filter.model={tiny_llama}", "sources.1.quota=1",
                          "shuffle=true")
    steps = {s["step"]: s for s in report["steps"]}
    wild = sum(steps["rm_filter"]["counts"].get("wildguard", {}).values())
    inconsistent = steps["rm_filter"]["dropped"].get("wildguard/rm_inconsistent", 0)
    assert wild + inconsistent == 2
    assert sum(steps["quota"]["counts"]["offsetbias"].values()) == 1
    assert steps["quota"]["dropped"] == {"offsetbias/over_quota": 2}


def test_curate_bad_config_and_missing_source(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["curate", "--config", "configs/curate/fixture-demo.yaml",
                                      f"output={tmp_path}/o.jsonl", "sources.0.path=missing.jsonl"])
    assert result.exit_code == 2 and "missing.jsonl" in result.output
    result = CliRunner().invoke(app, ["curate", "--config", "configs/curate/fixture-demo.yaml",
                                      "seed"])
    assert result.exit_code == 2 and "key=value" in result.output


def test_curated_output_decontaminates(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out, _ = _curate(tmp_path, "d")
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "b1", "source": "bench", "meta": {},
                                 "prompt": [{"role": "user", "content": "Rewrite the following "
                                             "sentence, paying attention to spelling and grammar. "
                                             "Distance learning is harder then in-person classes"}],
                                 "chosen": "x", "rejected": "y"}) + "\n")
    result = CliRunner().invoke(app, ["decontaminate", str(out), "--against", str(bench), "-o",
                                      str(tmp_path / "clean.jsonl"), "--removed",
                                      str(tmp_path / "removed.jsonl"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    removed = [json.loads(line) for line in (tmp_path / "removed.jsonl").read_text().splitlines()]
    assert [r["id"] for r in removed] == ["offsetbias:0"]
    kept = [json.loads(line) for line in (tmp_path / "clean.jsonl").read_text().splitlines()]
    assert len(kept) == 13 and any(r["meta"].get("armorm_mean") for r in kept)  # meta survives
