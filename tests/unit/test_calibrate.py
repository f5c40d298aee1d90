"""rmkit calibrate: a temperature fitted on labelled pairs recovers the one that generated them, and is used."""
import json
import math
import shutil
import sys

import numpy as np
import pytest

from rmkit import cli
from rmkit.evaluate.calibrate import calibrate, fit_temperature, metrics
from rmkit.score.calibration import read_temperature


def synthetic(t0: float, n: int = 20000, seed: int = 0):
    """Reward differences d; the first reply is preferred with probability sigmoid(d / t0)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(0, 3, n)
    first = rng.random(n) < 1 / (1 + np.exp(-d / t0))
    return [(float(x), 0.0) if f else (0.0, float(x)) for x, f in zip(d, first)]  # (chosen, rejected)


@pytest.mark.parametrize("t0", [0.5, 2.5])
def test_recovers_a_known_temperature(t0):
    res = calibrate(synthetic(t0))
    assert res["temperature"] == pytest.approx(t0, rel=0.05)
    assert res["after"]["log_loss"] < res["before"]["log_loss"]
    assert res["after"]["ece"] < 0.02 and res["after"]["ece"] < res["before"]["ece"]


def test_metrics_by_hand_and_no_signal():
    m = metrics([0.0, 0.0])
    assert m["log_loss"] == pytest.approx(math.log(2)) and m["brier"] == pytest.approx(0.25) and m["ece"] == 0
    assert fit_temperature([1.0, -1.0]) == math.inf  # each side wins once by the same margin: no signal
    assert metrics([1.0, -1.0], math.inf)["log_loss"] == pytest.approx(math.log(2))
    m = metrics([2.0], 1.0)  # P = sigmoid(2) for the preferred reply first, 1 - that for it second
    p = 1 / (1 + math.exp(-2))
    assert m["brier"] == pytest.approx((1 - p) ** 2) and m["ece"] == pytest.approx(1 - p)
    with pytest.raises(ValueError):
        fit_temperature([float("nan")])


def test_cli_fits_saves_and_serve_uses_it(tiny_llama, tmp_path, monkeypatch, capsys):
    from fastapi.testclient import TestClient

    from rmkit.score.scorer import RewardScorer
    from rmkit.serve.app import create_app
    from rmkit.serve.config import ServeConfig

    model = tmp_path / "model"
    shutil.copytree(tiny_llama, model)
    data = tmp_path / "pairs.jsonl"
    words = "the quick brown fox jumps over a lazy dog".split()
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": " ".join(words[: 1 + i % 9]),
                                        "rejected": " ".join(words[: 1 + (i * 7) % 9])}) + "\n"
                            for i in range(40) if i % 9 != (i * 7) % 9))
    out = tmp_path / "calib.json"
    monkeypatch.setattr(sys, "argv", ["rmkit", "calibrate", "--model", str(model), "--data", str(data),
                                      "--output", str(out), "--report", str(tmp_path / "rep"), "--save",
                                      "--device", "cpu", "--dtype", "float32"])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    assert (tmp_path / "rep" / "reliability.png").stat().st_size > 1000
    t = res["temperature"]
    assert t is None or t > 0
    assert read_temperature(model) == (math.inf if t is None else pytest.approx(t))
    scorer = RewardScorer.from_pretrained(str(model), device="cpu")
    assert scorer.temperature == read_temperature(model)
    with TestClient(create_app(scorer, ServeConfig())) as api:
        got = api.post("/v1/compare", json={"prompt": "hi", "responses": ["a b c", "d"]}).json()
    r1, r2 = got["rewards"]
    want = 0.5 if t is None else 1 / (1 + math.exp(-(r1 - r2) / t))
    assert got["prob_first_better"] == pytest.approx(want, abs=1e-6)
    assert RewardScorer.from_pretrained(str(tiny_llama), device="cpu").temperature == 1.0
