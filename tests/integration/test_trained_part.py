"""A trained model shipped as the part that differs from its backbone: `rmkit models export` keeps only the
changed tensors (deltas in bf16, small tensors whole), and the name loads as a plain checkpoint with the
trained model's rewards and no untrained-head warning."""
import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from test_train_tiny import cfg, write_toy
from rmkit.models import embedded, trained
from rmkit.train.trainer import train




@pytest.fixture(scope="module")
def run_dir(tiny_llama, tmp_path_factory):
    d = tmp_path_factory.mktemp("trained-part")
    toy = write_toy(d / "toy.jsonl", 24, seed=2)
    train(cfg(tiny_llama, toy, d / "run", max_steps=4, freeze_layers=1, learning_rate=5e-3))
    return d / "run" / "model"


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(trained, "PACKAGE_DIR", tmp_path / "pkg")
    monkeypatch.setenv("RMKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "pkg"


def _pairs():
    from rmkit.data import PreferencePair

    return [PreferencePair.from_dict({"prompt": f"q {i} {'x' * i}", "chosen": "a b c" * (i + 1),
                                      "rejected": "d"}) for i in range(5)]


def test_export_keeps_only_what_changed_and_loads_by_name(tiny_llama, run_dir, shipped_dir, caplog):
    from rmkit.score.scorer import RewardScorer

    card = shipped_dir.parent / "card.md"
    card.write_text("# tiny-rm\n")
    m = trained.export(run_dir, str(tiny_llama), shipped_dir / "tiny-rm", card=str(card))
    keys = set(m["tensors"])
    assert keys and all(".layers.1." in k or k in ("model.norm.weight", "score.weight") for k in keys)
    assert "score.weight" in keys and m["tensors"]["score.weight"] == "whole"

    assert "tiny-rm" in embedded.known()
    with caplog.at_level(logging.WARNING, logger="rmkit"):
        got = RewardScorer.from_pretrained("tiny-rm", dtype="float32")
    assert not [r for r in caplog.records if "UNTRAINED" in r.getMessage()]
    ref = RewardScorer.from_pretrained(str(run_dir), dtype="float32")
    pairs = _pairs()
    for (a, b), (c, d) in zip(got.score_pairs(pairs), ref.score_pairs(pairs)):
        assert a == pytest.approx(c, abs=1e-6) and b == pytest.approx(d, abs=1e-6)
    built = embedded.cache_dir() / "models" / "tiny-rm"
    assert (built / "README.md").read_text() == "# tiny-rm\n"
    assert json.loads((built / "config.json").read_text())["rmkit_untrained_head"] is False


def test_large_tensors_ship_as_bf16_deltas_close_to_the_trained_weights(tiny_llama, run_dir, shipped_dir,
                                                                        monkeypatch):
    monkeypatch.setattr(trained, "WHOLE_BELOW", 100)  # the tiny model's matrices count as large here
    m = trained.export(run_dir, str(tiny_llama), shipped_dir / "tiny-rm")
    assert {v for v in m["tensors"].values()} == {"delta", "whole"}
    part = load_file(shipped_dir / "tiny-rm" / trained.WEIGHTS)
    assert all(part[k].dtype == torch.bfloat16 for k, v in m["tensors"].items() if v == "delta")
    out = trained.build("tiny-rm", embedded.cache_dir() / "models" / "tiny-rm")
    got, want = load_file(out / "model.safetensors"), load_file(run_dir / "model.safetensors")
    base = load_file(tiny_llama / "model.safetensors")
    for k, mode in m["tensors"].items():
        change = (want[k] - base[k]).abs().max().item()
        assert (got[k] - want[k]).abs().max().item() <= max(1e-7, change / 100)  # bf16: ~0.4% of the change
    untouched = [k for k in base if k not in m["tensors"]]
    assert untouched and all(torch.equal(got[k], base[k]) for k in untouched)


def test_rebuilds_on_a_new_export_and_refuses_damage_or_size(tiny_llama, run_dir, shipped_dir):
    folder = shipped_dir / "tiny-rm"
    trained.export(run_dir, str(tiny_llama), folder)
    out = embedded.prepare("tiny-rm")
    stamp = json.loads((out / "rmkit_source.json").read_text())
    assert stamp["sha256"] == json.loads((folder / trained.MANIFEST).read_text())["sha256"]
    with open(folder / trained.WEIGHTS, "r+b") as f:  # damage the shipped file: the old cache is stale
        f.seek(-4, 2)
        f.write(b"\0\0\0\1")
    with pytest.raises(ValueError, match="damaged"):
        embedded.prepare("tiny-rm")
    with pytest.raises(ValueError, match="budget"):
        trained.export(run_dir, str(tiny_llama), shipped_dir / "big", max_mb=1e-4)
    assert not (shipped_dir / "big" / trained.WEIGHTS).exists()
    with pytest.raises(ValueError, match="nothing was trained"):
        trained.export(tiny_llama, str(tiny_llama), shipped_dir / "same")
