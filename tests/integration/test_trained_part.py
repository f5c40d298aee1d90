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


def test_an_exported_folder_loads_by_path_before_it_ships(tiny_llama, run_dir, tmp_path, monkeypatch, caplog):
    """A run's export, still outside the package, loads by its folder path: built once onto its backbone under
    the cache (keyed by the part's sha256), with the trained run's rewards and no untrained-head warning."""
    from rmkit.models.load import resolve_name
    from rmkit.score.scorer import RewardScorer

    monkeypatch.setenv("RMKIT_CACHE", str(tmp_path / "cache"))
    part = tmp_path / "export" / "tiny-rm"
    m = trained.export(run_dir, str(tiny_llama), part)
    assert trained.is_part(part) and not trained.is_part(run_dir) and "tiny-rm" not in embedded.known()
    with caplog.at_level(logging.WARNING, logger="rmkit"):
        got = RewardScorer.from_pretrained(str(part), dtype="float32")
    assert not [r for r in caplog.records if "UNTRAINED" in r.getMessage()]
    built = resolve_name(str(part))
    assert built.startswith(str(tmp_path / "cache" / "models" / "parts" / m["sha256"][:16]))
    ref = RewardScorer.from_pretrained(str(run_dir), dtype="float32")
    for (a, b), (c, d) in zip(got.score_pairs(_pairs()), ref.score_pairs(_pairs())):
        assert a == pytest.approx(c, abs=1e-6) and b == pytest.approx(d, abs=1e-6)


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


def group_step(delta, bits):
    """Each weight's quantisation step, computed here from the format's definition: its group of 64 (the
    flattened delta, zero-padded at the end)'s largest |change| / (2^(bits-1) - 1)."""
    flat = delta.reshape(-1)
    groups = torch.nn.functional.pad(flat, (0, (-flat.numel()) % 64)).reshape(-1, 64)
    return (groups.abs().amax(dim=1) / (2 ** (bits - 1) - 1)).repeat_interleave(64)[:flat.numel()]


def test_quantize_packs_bit_planes_and_rebuilds_within_half_a_step():
    """Integers in [-3, 3] with a 3 in every group of 64 are exact at 3 bits (scale 1); the ragged tail of a
    7 x 13 tensor is padded to a whole group and cut off again; every weight is within half its group's step."""
    torch.manual_seed(0)
    exact = torch.randint(-3, 4, (7, 13)).float()
    exact.view(-1)[::64] = 3.0
    planes, scale = trained.quantize(exact, 3)
    assert planes.dtype == torch.uint8 and planes.shape == (3, 128 // 8) and scale.tolist() == [1.0, 1.0]
    assert torch.equal(trained.dequantize(planes, scale, exact.shape), exact)
    assert planes.numel() + 4 * scale.numel() == trained.quantized_bytes(exact.numel(), 3)
    delta = torch.randn(5, 200) * 1e-3
    delta[2] = 0.0  # a group that did not change stays exactly zero
    for bits in (8, 5, 4):
        planes, scale = trained.quantize(delta, bits)
        back = trained.dequantize(planes, scale, delta.shape)
        assert ((back - delta).abs().reshape(-1) <= group_step(delta, bits) / 2 * (1 + 1e-6)).all()
        assert torch.equal(back[2], delta[2])


def test_over_the_budget_in_bf16_the_deltas_ship_quantised_at_the_widest_width_that_fits(
        tiny_llama, run_dir, shipped_dir, monkeypatch):
    """A part whose bf16 deltas break the budget ships them quantised: with a budget between the 5-bit and the
    6-bit sizes, `auto` takes 5 bits, each weight within half a step of the trained one, and the rewards stay
    close to the trained run's."""
    from rmkit.score.scorer import RewardScorer

    monkeypatch.setattr(trained, "WHOLE_BELOW", 100)  # the tiny model's matrices count as large here
    def exported_bytes(name, **options):
        trained.export(run_dir, str(tiny_llama), shipped_dir / name, **options)
        return (shipped_dir / name / trained.WEIGHTS).stat().st_size

    size = {b: exported_bytes(f"q{b}", delta_dtype=f"int{b}") for b in (6, 5)}
    assert size[5] < size[6] < exported_bytes("bf16")
    budget = (size[5] + size[6]) / 2 + 65536  # + the header allowance export keeps (64 KiB)
    m = trained.export(run_dir, str(tiny_llama), shipped_dir / "tiny-rm", max_mb=budget / 1e6)
    dense = [k for k, v in m["tensors"].items() if v == "delta_q5"]
    assert dense and set(m["tensors"].values()) == {"delta_q5", "whole"}
    assert (shipped_dir / "tiny-rm" / trained.WEIGHTS).stat().st_size == size[5]
    part = load_file(shipped_dir / "tiny-rm" / trained.WEIGHTS)
    want, base = load_file(run_dir / "model.safetensors"), load_file(tiny_llama / "model.safetensors")
    assert m["parameters"] == sum(want[k].numel() for k in m["tensors"])
    out = trained.build("tiny-rm", embedded.cache_dir() / "models" / "tiny-rm")
    got = load_file(out / "model.safetensors")
    for k in dense:
        assert part[k + ".q"].dtype == torch.uint8 and part[k + ".q"].shape[0] == 5
        assert ((got[k] - want[k]).abs().reshape(-1) <= group_step(want[k] - base[k], 5) / 2 + 1e-6).all()
    ref = RewardScorer.from_pretrained(str(run_dir), dtype="float32")
    shipped = RewardScorer.from_pretrained("tiny-rm", dtype="float32")
    for (a, b), (c, d) in zip(shipped.score_pairs(_pairs()), ref.score_pairs(_pairs())):
        assert a == pytest.approx(c, abs=5e-2) and b == pytest.approx(d, abs=5e-2)
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
