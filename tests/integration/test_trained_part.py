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


def test_over_the_budget_in_bf16_the_deltas_ship_as_int8_rows(tiny_llama, run_dir, shipped_dir, monkeypatch):
    """A part whose bf16 deltas break the budget ships them as int8 with a float32 scale per row: about half
    the bytes, each weight within half a step (its row's largest change / 127) of the trained one."""
    from rmkit.score.scorer import RewardScorer

    monkeypatch.setattr(trained, "WHOLE_BELOW", 100)  # the tiny model's matrices count as large here
    as_bf16 = trained.export(run_dir, str(tiny_llama), shipped_dir / "bf16")["megabytes"]
    m = trained.export(run_dir, str(tiny_llama), shipped_dir / "tiny-rm", max_mb=0.75 * as_bf16)
    dense = [k for k, v in m["tensors"].items() if v == "delta_int8"]
    assert dense and "delta" not in m["tensors"].values() and m["megabytes"] <= 0.75 * as_bf16
    part = load_file(shipped_dir / "tiny-rm" / trained.WEIGHTS)
    want, base = load_file(run_dir / "model.safetensors"), load_file(tiny_llama / "model.safetensors")
    out = trained.build("tiny-rm", embedded.cache_dir() / "models" / "tiny-rm")
    got = load_file(out / "model.safetensors")
    for k in dense:
        assert part[k + ".int8"].dtype == torch.int8 and part[k + ".scale"].shape == (want[k].shape[0], 1)
        step = (want[k] - base[k]).abs().amax(dim=1, keepdim=True) / 127
        assert ((got[k] - want[k]).abs() <= step / 2 + 1e-6).all()
    assert trained.export(run_dir, str(tiny_llama), shipped_dir / "forced", delta_dtype="int8")["tensors"] == \
        m["tensors"]
    ref = RewardScorer.from_pretrained(str(run_dir), dtype="float32")
    shipped = RewardScorer.from_pretrained("tiny-rm", dtype="float32")
    for (a, b), (c, d) in zip(shipped.score_pairs(_pairs()), ref.score_pairs(_pairs())):
        assert a == pytest.approx(c, abs=1e-2) and b == pytest.approx(d, abs=1e-2)
    with pytest.raises(ValueError, match="delta_dtype"):
        trained.export(run_dir, str(tiny_llama), shipped_dir / "x", delta_dtype="fp8")


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


def test_a_lora_run_ships_as_low_rank_factors(tiny_llama, tmp_path, shipped_dir, monkeypatch):
    """LoRA (r=2) on the top layer: each adapted matrix's merged delta has rank 2, so it ships as two float32
    factors that rebuild it to 0.1% and take less room than its bf16 delta would."""
    from rmkit.score.scorer import RewardScorer

    monkeypatch.setattr(trained, "WHOLE_BELOW", 100)  # the tiny model's matrices count as large here
    toy = write_toy(tmp_path / "toy.jsonl", 24, seed=3)
    train(cfg(tiny_llama, toy, tmp_path / "run", max_steps=4, freeze_layers=1, lora_r=2, lora_alpha=8,
              learning_rate=5e-2, final_eval=False))
    run_model = tmp_path / "run" / "model"
    m = trained.export(run_model, str(tiny_llama), shipped_dir / "tiny-lora")
    lowrank = [k for k, v in m["tensors"].items() if v == "lowrank"]
    assert lowrank and all(".layers.1." in k for k in lowrank)
    part = load_file(shipped_dir / "tiny-lora" / trained.WEIGHTS)
    want, base = load_file(run_model / "model.safetensors"), load_file(tiny_llama / "model.safetensors")
    for k in lowrank:
        a, b = part[k + ".lowrank_a"], part[k + ".lowrank_b"]
        assert k not in part and a.dtype == torch.float32 and a.shape[1] == b.shape[0] <= 2
        assert a.numel() + b.numel() < want[k].numel() / 2
    out = trained.build("tiny-lora", embedded.cache_dir() / "models" / "tiny-lora")
    got = load_file(out / "model.safetensors")
    for k in lowrank:
        change = (want[k] - base[k]).norm().item()
        assert change > 0 and (got[k] - want[k]).norm().item() <= 1e-3 * change
    ref = RewardScorer.from_pretrained(str(run_model), dtype="float32")
    shipped = RewardScorer.from_pretrained("tiny-lora", dtype="float32")
    for (a, b), (c, d) in zip(shipped.score_pairs(_pairs()), ref.score_pairs(_pairs())):
        assert a == pytest.approx(c, abs=1e-4) and b == pytest.approx(d, abs=1e-4)


def test_low_rank_keeps_a_full_rank_delta_dense():
    torch.manual_seed(0)
    u, v = torch.randn(64, 3), torch.randn(3, 48)
    a, b = trained.low_rank(u @ v)
    assert a.shape == (64, 3) and b.shape == (3, 48)
    assert ((a @ b) - u @ v).norm() <= 1e-3 * (u @ v).norm()
    assert trained.low_rank(torch.randn(64, 48)) is None  # full rank: the bf16 delta is smaller
    assert trained.low_rank(torch.zeros(64, 48)) is None
    assert trained.low_rank(torch.randn(64)) is None
