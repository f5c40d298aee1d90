"""Prefix-shared and trunk-cache training: the same losses, step by step, and the same weights as the
plain paths; the store resumes after a kill, is reused when nothing changed, and refuses a full disk."""
import json

import pytest
import torch
from safetensors.torch import load_file

from bounds import history, same_decisions, same_training_runs
from test_train_tiny import cfg, write_toy
from rmkit.models.groups import split_group
from rmkit.train import trunk
from rmkit.train.trainer import train


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy(tmp_path_factory.mktemp("toy-trunk") / "toy.jsonl", 40, seed=1)


def _close_runs(a, b, start, atol=1e-5):
    """The same trajectory from the model at `start`: losses and gradient norms step by step, then the final
    weights (`same_training`: Adam amplifies rounding noise in weights whose gradient is near zero)."""
    ha, hb = history(a), history(b)
    assert len(ha) == len(hb) > 2
    for x, y in zip(ha, hb):
        assert x["loss"] == pytest.approx(y["loss"], abs=atol)
        assert x["grad_norm"] == pytest.approx(y["grad_norm"], abs=1e-4, rel=1e-4)
    same_training_runs(a, b, start)


def test_shared_training_equals_padded(tiny_llama, toy, tmp_path):
    kw = dict(num_epochs=2, lr_scheduler="constant")
    train(cfg(tiny_llama, toy, tmp_path / "off", packing="off", **kw))
    s = train(cfg(tiny_llama, toy, tmp_path / "shared", packing="shared", **kw))
    assert s["data"]["packing"] == "shared"
    sharing = s["data"]["sharing"]
    assert sharing["unshared_groups"] == 0 and sharing["tokens_shared"] < sharing["tokens_alone"]
    _close_runs(tmp_path / "off", tmp_path / "shared", tiny_llama)


@pytest.mark.parametrize("lora_r", [0, 4])
def test_trunk_cache_equals_frozen_recomputed(tiny_llama, toy, tmp_path, lora_r):
    kw = dict(num_epochs=2, freeze_layers=1, lora_r=lora_r, eval_steps=3)
    ref = train(cfg(tiny_llama, toy, tmp_path / "recompute", trunk_cache="off", **kw))
    got = train(cfg(tiny_llama, toy, tmp_path / "store", trunk_cache="auto", trunk_dtype="model", **kw))
    assert "trunk" not in ref["data"] and got["data"]["trunk"]["tokens"] > 0
    _close_runs(tmp_path / "recompute", tmp_path / "store", tiny_llama)
    # two paths' held-out decisions agree except where a margin is within the rewards' bound of a tie:
    # 1e-4 between the runs' models (checked), and fp32 noise (1e-5) between each evaluation and the scorer
    held = _heldout(cfg(tiny_llama, toy, tmp_path, **kw))
    near = same_decisions(_rewards(tmp_path / "recompute", held), _rewards(tmp_path / "store", held), bound=1e-4)
    a, b = got["eval"]["heldout"], ref["eval"]["heldout"]
    assert a["n"] == b["n"] == len(held) and abs(a["accuracy"] - b["accuracy"]) * len(held) <= near + 1e-6
    assert got["data"]["trainable_params"] == ref["data"]["trainable_params"]


def _heldout(c):
    from rmkit.data import load_pairs
    from rmkit.train.data import heldout_split

    return heldout_split([p for d in c.data for p in load_pairs(d)], c.eval_size, c.seed)[1]


def _rewards(run, pairs):
    from rmkit.score.scorer import RewardScorer

    return RewardScorer.from_pretrained(str(run / "model"), dtype="float32").score_pairs(pairs)


def test_frozen_layers_do_not_move(tiny_llama, toy, tmp_path):
    from safetensors.torch import load_file as lf

    before = lf(str(tiny_llama / "model.safetensors"))
    train(cfg(tiny_llama, toy, tmp_path, max_steps=3, freeze_layers=1))
    after = lf(str(tmp_path / "model" / "model.safetensors"))
    frozen = [n for n in before if "layers.0." in n or "embed_tokens" in n]
    moved = [n for n in before if "layers.1." in n]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)
    assert any(not torch.equal(before[n], after[n]) for n in moved)


def _groups():
    return [split_group([[1, 5 + i, 6, 7, 8 + i % 3], [1, 5 + i, 6, 9]]) for i in range(7)]


def test_store_resumes_after_a_kill_and_is_reused(tiny_llama, tmp_path, monkeypatch):
    from rmkit.models.load import load_reward_model

    model, _ = load_reward_model(str(tiny_llama))
    groups = _groups()
    fresh = trunk.build_store(model, model.config, groups, 1, tmp_path / "a", {}, torch.float32, 0)
    ref = torch.cat([fresh.read(i) for i in range(len(groups))])
    monkeypatch.setattr(trunk, "CHUNK_GROUPS", 2)
    calls = {"n": 0}
    real = trunk.TrunkStore.write_index

    def dying(self, key, done, total):
        real(self, key, done, total)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed after its second chunk

    monkeypatch.setattr(trunk.TrunkStore, "write_index", dying)
    with pytest.raises(KeyboardInterrupt):
        trunk.build_store(model, model.config, groups, 1, tmp_path / "b", {}, torch.float32, 0)
    monkeypatch.setattr(trunk.TrunkStore, "write_index", real)
    folder = next((tmp_path / "b").iterdir())
    assert json.loads((folder / "index.json").read_text())["done_chunks"] == 2
    seen = []
    real_forward = trunk.forward_groups
    monkeypatch.setattr(trunk, "forward_groups", lambda *a, **k: seen.append(1) or real_forward(*a, **k))
    resumed = trunk.build_store(model, model.config, groups, 1, tmp_path / "b", {}, torch.float32, 0)
    assert len(seen) == 2  # chunks 3 and 4 of 4
    torch.testing.assert_close(torch.cat([resumed.read(i) for i in range(len(groups))]), ref)
    seen.clear()
    trunk.build_store(model, model.config, groups, 1, tmp_path / "b", {}, torch.float32, 0)
    assert not seen  # complete and unchanged: reused as it is



def test_store_matches_the_model_and_bf16_is_close(tiny_llama, tmp_path):
    from rmkit.models.load import load_reward_model

    model, _ = load_reward_model(str(tiny_llama))
    g = _groups()[:2]
    exact = trunk.build_store(model, model.config, g, 1, tmp_path, {}, torch.float32, 0)
    half = trunk.build_store(model, model.config, g, 1, tmp_path, {}, torch.bfloat16, 0)
    assert exact.folder != half.folder  # keyed by dtype
    with torch.no_grad():
        out = model.model(input_ids=torch.tensor([list(g[0].sequences[0])]), output_hidden_states=True)
    n = len(g[0].sequences[0])
    torch.testing.assert_close(exact.read(0)[:n], out.hidden_states[1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(half.read(0).float(), exact.read(0), atol=0.05, rtol=0.02)


def test_store_refuses_without_room(tiny_llama, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from rmkit.models.load import load_reward_model

    model, _ = load_reward_model(str(tiny_llama))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("u", "total used free")(10, 10, 10))
    with pytest.raises(OSError, match="needs"):
        trunk.build_store(model, model.config, _groups(), 1, tmp_path, {}, torch.float32, 0)


def _ranked_file(path, n=12):
    import random

    rng = random.Random(3)
    with open(path, "w") as f:
        for i in range(n):
            replies = ["Sure, here is a poem.", "Sure, here is the answer.", "The quick brown fox.", "The lazy dog."]
            f.write(json.dumps({"id": f"r{i}", "prompt": f"Jane has {rng.randint(1, 99)} apples.",
                                "completions": replies, "scores": [4, 3, 2, rng.choice([1, 2])]}) + "\n")
    return path


def test_pair_mode_all_shared_equals_padded(tiny_llama, toy, tmp_path):
    ranked = _ranked_file(tmp_path / "ranked.jsonl")
    kw = dict(pair_mode="all", max_steps=6, batch_size=3)
    data = [str(toy), str(ranked)]
    off = train(cfg(tiny_llama, data, tmp_path / "off", packing="off", **kw))
    shared = train(cfg(tiny_llama, data, tmp_path / "shared", packing="shared", **kw))
    stats = shared["data"]["train"]
    assert stats["groups"] == off["data"]["train"]["groups"]
    # 12 ranked rows: 6 ordered pairs each, or 5 where the last two tie; plus one edge per toy pair
    assert stats["group_pairs"] > stats["groups"]
    _close_runs(tmp_path / "off", tmp_path / "shared", tiny_llama)


@pytest.mark.parametrize("arch,template", [("llama", "llama3"), ("qwen3", "chatml"), ("gemma2", "gemma"),
                                           ("qwen2", "chatml")])
def test_store_then_top_layers_give_the_models_rewards(arch, template, tmp_path):
    """Layers < 1 into the store, layers >= 1 + norm + head from it: the rewards of the model run alone."""
    from tiny import build_model, build_tokenizer
    from rmkit.models.groups import attention_masks, pack_groups
    from rmkit.train.collate import collate_padded
    from rmkit.train.model import RewardForward, decoder

    tok = build_tokenizer(template)
    model = build_model(arch, tok, **({"sliding_window": 3} if arch == "gemma2" else {}))
    groups = _groups()
    store = trunk.build_store(model, model.config, groups, 1, tmp_path, {}, torch.float32, 0)
    batch = pack_groups(groups, 0)
    hidden = torch.zeros((*batch["input_ids"].shape, store.hidden))
    for j, (r, start, end) in enumerate(batch["spans"].tolist()):
        hidden[r, start:end] = store.read(j)
    stack = decoder(model)
    with torch.no_grad():
        out = trunk.run_layers(stack, model.config, hidden, attention_masks(model.config, batch),
                               batch["position_ids"], range(1, 2))
        got = model.score(stack.norm(out)[batch["rows"], batch["cols"]])[:, 0]
        fwd = RewardForward(model)
        ref = torch.cat([fwd(model, collate_padded([s], 0)) for g in groups for s in g.sequences])
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_store_below_the_frozen_layers_equals_recomputing(tmp_path, toy):
    """trunk_layer < freeze_layers: one store at layer 1 serves a run that trains only layer 2 (layer 1 runs
    forward-only from the store): the same trajectory as recomputing layers 0-1 every step."""
    from tiny import save_tiny_model

    three = save_tiny_model(tmp_path / "three", "llama", num_hidden_layers=3)
    kw = dict(num_epochs=2, freeze_layers=2)
    train(cfg(three, toy, tmp_path / "recompute", trunk_cache="off", **kw))
    got = train(cfg(three, toy, tmp_path / "store", trunk_cache="auto", trunk_layer=1, trunk_dtype="model", **kw))
    assert got["data"]["trunk"]["layer"] == 1
    _close_runs(tmp_path / "recompute", tmp_path / "store", three)
    w = load_file(tmp_path / "store" / "model" / "model.safetensors")
    base = load_file(three / "model.safetensors")
    assert all(torch.equal(w[n], base[n]) for n in w if ".layers.1." in n)  # ran, frozen


def test_trunk_layer_is_checked():
    from rmkit.train.config import TrainConfig

    with pytest.raises(ValueError, match="trunk_layer"):
        TrainConfig(freeze_layers=2, trunk_layer=3)


def test_trunk_cache_auto_falls_back_and_on_refuses(tiny_llama, toy, tmp_path):
    got = train(cfg(tiny_llama, toy, tmp_path / "auto", freeze_layers=1, packing="off", max_steps=2))
    assert got["data"]["trunk"] == {"used": False, "why": got["data"]["trunk"]["why"]}
    assert "packing=shared" in got["data"]["trunk"]["why"]
    with pytest.raises(ValueError, match="packing=shared"):
        train(cfg(tiny_llama, toy, tmp_path / "on", freeze_layers=1, packing="off", trunk_cache="on", max_steps=2))


def test_bf16_compute_from_a_bf16_store_tracks_the_fp32_losses(tiny_llama, toy, tmp_path):
    """mixed_precision bf16: the store is built in bf16 compute and the top layers run under bf16 autocast
    (fp32 weights, head and loss). Each step's loss stays within a bf16 bound of the fp32 run's: bf16 keeps 8
    bits of mantissa (relative error 2^-9 per rounding), a few roundings deep, on losses of order 1."""
    kw = dict(freeze_layers=1, packing="shared", trunk_dtype="bfloat16", num_epochs=2, lr_scheduler="constant",
              learning_rate=1e-4)
    ref = train(cfg(tiny_llama, toy, tmp_path / "fp32", mixed_precision="no", **kw))
    got = train(cfg(tiny_llama, toy, tmp_path / "bf16", mixed_precision="bf16", **kw))
    assert ref["data"]["trunk"]["compute"] == "float32" and got["data"]["trunk"]["compute"] == "bfloat16"
    assert ref["data"]["trunk"]["folder"] != got["data"]["trunk"]["folder"]  # another compute, another store
    bound = 8 * 2 ** -8
    for x, y in zip(history(tmp_path / "fp32"), history(tmp_path / "bf16")):
        assert abs(x["loss"] - y["loss"]) <= bound * max(1.0, abs(x["loss"])), (x["step"], x["loss"], y["loss"])


def test_a_second_checkout_reuses_the_cached_store_and_checkpoint(tiny_llama, toy, tmp_path, monkeypatch):
    """Runs under ${RMKIT_CACHE} outlive the checkout: a second checkout (another working folder) finds the
    first one's store (no layer runs) and resumes its checkpoint."""
    from rmkit.train.config import load_config

    monkeypatch.setenv("RMKIT_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model: {tiny_llama}\ndata: [{toy}]\neval_size: 8\nbatch_size: 4\nfreeze_layers: 1\n"
                      "packing: shared\ntrunk_cache: on\ntrunk_dir: ${RMKIT_CACHE}/runs/r/trunk\n"
                      "output_dir: ${RMKIT_CACHE}/runs/r/out\nmax_steps: 6\nsave_steps: 2\nn_boot: 50\n")
    first = tmp_path / "checkout-1"
    first.mkdir()
    monkeypatch.chdir(first)
    c = load_config(str(recipe), ["max_minutes=0.000001"])  # stops after its first step, with a checkpoint
    assert c.output_dir == str(tmp_path / "cache" / "runs" / "r" / "out")
    train(c)
    second = tmp_path / "checkout-2"
    second.mkdir()
    monkeypatch.chdir(second)
    built = []
    real_forward = trunk.forward_groups
    monkeypatch.setattr(trunk, "forward_groups", lambda *a, **k: built.append(1) or real_forward(*a, **k))
    summary = train(load_config(str(recipe), []), resume=True)
    assert not built  # the store was reused as it was
    assert summary["complete"] and summary["steps"] == 6
    hist = history(tmp_path / "cache" / "runs" / "r" / "out")
    assert [h["step"] for h in hist] == list(range(1, 7))  # steps 2-6 resumed after step 1
    assert not list(second.iterdir()) and not list(first.iterdir())  # nothing written into either checkout
