"""Training a tiny model end to end: loss falls on a learnable toy preference, the LoRA head survives
export, `--resume` after a kill equals an uninterrupted run, and the CLI writes a full output folder."""
import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bounds import history
from rmkit.train.config import TrainConfig
from rmkit.train.trainer import train

QUESTIONS = ["How many apples does each get?", "Hello! How can I help you today?", "def main(): return 42",
             "Jane has 12 apples.", "Here is a poem about the sea and the sky."]


def write_toy(path: Path, n: int, seed: int = 0) -> Path:
    """Chosen replies say 'Sure, here is ...', rejected ones 'The quick brown fox ...': learnable."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            q = f"{rng.choice(QUESTIONS)} {rng.randint(0, 999)}"
            good = f"Sure, here is {rng.choice(['a poem', 'the answer', 'some help'])}."
            bad = f"The quick brown fox {rng.choice(['jumps', 'dog', 'lazy'])}."
            f.write(json.dumps({"id": str(i), "source": "toy", "prompt": q, "chosen": good, "rejected": bad,
                                "meta": {}}) + "\n")
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return write_toy(tmp_path_factory.mktemp("toy") / "toy.jsonl", 48)


def cfg(model, data, out, **kw) -> TrainConfig:
    base = dict(model=str(model), data=[str(d) for d in data] if isinstance(data, list) else [str(data)], eval_size=8, output_dir=str(out), batch_size=4,
                learning_rate=1e-3, lr_scheduler="constant", seed=0, n_boot=100)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls_on_learnable_preference(tiny_llama, toy, tmp_path):
    summary = train(cfg(tiny_llama, toy, tmp_path, num_epochs=3))
    hist = history(tmp_path)
    first, last = sum(h["loss"] for h in hist[:3]) / 3, sum(h["loss"] for h in hist[-3:]) / 3
    assert last < 0.5 * first
    assert summary["eval"]["heldout"]["accuracy"] == 1.0 and summary["eval"]["heldout"]["n"] >= 8
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000


def _lora_rewards_before_export(model_path, data, out, convs):
    seen = {}

    def grab(run):  # the in-memory model at the last step, before export merges LoRA
        if run.state.step == len(run.plan):

            run.model.eval()
            from rmkit.train.collate import collate_padded
            from rmkit.models.chat import render_ids
            seqs = [render_ids(run.tok, c) for c in convs]
            with torch.no_grad():
                seen["rewards"] = run.fwd(run.model, collate_padded(seqs, run.tok.pad_token_id)).tolist()

    train(cfg(model_path, data, out, lora_r=4, lora_alpha=8, learning_rate=5e-2, max_steps=6,
              final_eval=False), on_step=grab)
    return seen["rewards"]


def test_lora_head_saved_and_reloaded(tiny_llama, toy, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from rmkit.data import load_pairs
    from rmkit.score.scorer import RewardScorer

    convs = [p.chosen_conversation for p in load_pairs(toy)[:3]] + [p.rejected_conversation for p in load_pairs(toy)[:3]]
    in_memory = _lora_rewards_before_export(tiny_llama, toy, tmp_path, convs)
    merged = RewardScorer.from_pretrained(tmp_path / "model").score(convs)
    base_only = RewardScorer.from_pretrained(tiny_llama).score(convs)
    assert merged == pytest.approx(in_memory, abs=1e-4)
    assert max(abs(a - b) for a, b in zip(merged, base_only)) > 1e-2  # training changed the rewards
    base = AutoModelForSequenceClassification.from_pretrained(tiny_llama, num_labels=1)
    adapter = PeftModel.from_pretrained(base, tmp_path / "model" / "adapter").merge_and_unload()
    from transformers import AutoTokenizer
    again = RewardScorer(adapter.eval(), AutoTokenizer.from_pretrained(tmp_path / "model" / "adapter")).score(convs)
    assert again == pytest.approx(in_memory, abs=1e-4)
    card = (tmp_path / "model" / "README.md").read_text()
    assert str(tiny_llama) in card and "LoRA r=4" in card


class Killed(Exception):
    pass


def test_resume_equals_uninterrupted(tiny_llama, toy, tmp_path):
    kw = dict(lora_r=4, lora_alpha=8, lora_dropout=0.2, max_steps=8, save_steps=3, learning_rate=1e-2,
              lr_scheduler="cosine", warmup_steps=2, final_eval=False)
    train(cfg(tiny_llama, toy, tmp_path / "a", **kw))

    def kill(run):
        if run.state.step == 5:
            raise Killed

    with pytest.raises(Killed):
        train(cfg(tiny_llama, toy, tmp_path / "b", **kw), on_step=kill)
    assert not (tmp_path / "b" / "model").exists()
    train(cfg(tiny_llama, toy, tmp_path / "b", **kw), resume=True)
    a, b = load_file(tmp_path / "a/model/model.safetensors"), load_file(tmp_path / "b/model/model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
    hist = history(tmp_path / "b")
    assert [h["step"] for h in hist] == list(range(1, 9))
    base = load_file(Path(tiny_llama) / "model.safetensors")
    assert any(not torch.equal(base[k], a[k]) for k in base)  # training moved the weights


def test_cli_end_to_end(tiny_llama, toy, tmp_path):
    from typer.testing import CliRunner

    from rmkit.cli import app

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"# rmkit train --config r.yaml\nmodel: {tiny_llama}\ndata: [{toy}]\neval_size: 8\n"
                      f"batch_size: 4\nmax_steps: 3\nlearning_rate: 1e-3\n")
    res = CliRunner().invoke(app, ["train", "--config", str(recipe), f"output_dir={tmp_path / 'out'}",
                                   "packing=off", "n_boot=50"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "out" / "model"
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= {p.name for p in out.iterdir()}
    assert (out / "chat_template.jinja").exists() or "chat_template" in (out / "tokenizer_config.json").read_text()
    summary = json.loads((tmp_path / "out" / "results.json").read_text())
    assert summary["steps"] == 3 and summary["config"]["packing"] == "off"
    assert '"steps": 3' in res.output


def test_time_budget_stops_then_resume_finishes(tiny_llama, toy, tmp_path):
    kw = dict(max_steps=4, max_minutes=1e-6, final_eval=False)
    first = train(cfg(tiny_llama, toy, tmp_path, **kw))
    assert not first["complete"] and first["steps"] == 1
    assert "STOPPED EARLY at step 1 of 4" in (tmp_path / "model" / "README.md").read_text()
    assert (tmp_path / "checkpoints" / "checkpoint-000001").is_dir()
    done = train(cfg(tiny_llama, toy, tmp_path, max_steps=4, final_eval=False), resume=True)
    assert done["complete"] and done["steps"] == 4


@pytest.mark.parametrize("lora_r", [0, 4])
def test_gradient_checkpointing_same_trajectory(tiny_llama, toy, tmp_path, lora_r):
    def losses(out, gc):
        train(cfg(tiny_llama, toy, out, max_steps=3, gradient_checkpointing=gc, lora_r=lora_r, final_eval=False))
        return [h["loss"] for h in history(out)]

    plain, checkpointed = losses(tmp_path / "a", False), losses(tmp_path / "b", True)
    assert checkpointed == pytest.approx(plain, abs=1e-5)
    assert plain[-1] != pytest.approx(plain[0], abs=1e-4)


def test_save_best_keeps_the_best_evaluation(tiny_llama, toy, tmp_path, caplog):
    """save_best: output_dir/best is the model of the first evaluation with the top held-out accuracy (the
    periodic ones and the final one), and it scores the held-out pairs as that evaluation recorded."""
    import logging

    from rmkit.data import load_pairs
    from rmkit.evaluate.metrics import pairwise_correct
    from rmkit.score.scorer import RewardScorer

    held = write_toy(tmp_path / "held.jsonl", 24, seed=7)
    with caplog.at_level(logging.INFO, logger="rmkit"):
        summary = train(cfg(tiny_llama, toy, tmp_path, eval_data=[str(held)], learning_rate=2e-4, max_steps=6,
                            eval_steps=1, save_best=True))
    evals = summary["evals"] + [{"step": summary["steps"], **summary["eval"]}]
    accs = [e["heldout"]["accuracy"] for e in evals]
    assert len(evals) == 6 and len(set(accs)) > 1, accs  # the accuracy moved: the choice means something
    for e in evals:  # every evaluation is in the log as it happens, not only in results.json at the end
        assert f"held-out {100 * e['heldout']['accuracy']:.1f}% [" in caplog.text
    assert "step 6 (final): held-out" in caplog.text
    best = json.loads((tmp_path / "best" / "eval.json").read_text())
    assert best["step"] == evals[accs.index(max(accs))]["step"]
    pairs = load_pairs(str(held))
    rewards = RewardScorer.from_pretrained(str(tmp_path / "best"), dtype="float32").score_pairs(pairs)
    got = sum(pairwise_correct([c for c, _ in rewards], [r for _, r in rewards]))
    # the scorer and the trainer's evaluation forward agree within fp32 noise (1e-5, DESIGN rule 9): only
    # a pair whose margin is within twice that may be decided either way
    near = sum(abs(c - r) <= 2e-5 for c, r in rewards)
    assert abs(got - best["heldout"]["accuracy"] * len(pairs)) <= near + 1e-6
    # only the final evaluation: best/ is the final export itself, copied rather than written twice
    only = train(cfg(tiny_llama, toy, tmp_path / "final", eval_data=[str(held)], max_steps=2, save_best=True))
    final, best_dir = tmp_path / "final" / "model", tmp_path / "final" / "best"
    assert json.loads((best_dir / "eval.json").read_text())["step"] == only["steps"] == 2
    assert (best_dir / "model.safetensors").read_bytes() == (final / "model.safetensors").read_bytes()
    assert sorted(p.name for p in best_dir.iterdir()) == sorted([p.name for p in final.iterdir()] + ["eval.json"])


def test_oversample_repeats_a_source_in_the_plan(tiny_llama, tmp_path):
    """oversample: {source: k} puts that source's pairs k times in every epoch of the plan (0: never),
    records the epoch's make-up, and sizes the epochs (num_epochs) by it."""
    from rmkit.models.load import load_tokenizer
    from rmkit.train.dataset import prepare

    tok = load_tokenizer(str(tiny_llama))
    a, b = write_toy(tmp_path / "a.jsonl", 24, seed=1), write_toy(tmp_path / "b.jsonl", 16, seed=2)
    rows = [json.loads(x) for x in b.read_text().splitlines()]
    b.write_text("".join(json.dumps({**r, "id": f"b{r['id']}", "source": "toy/b"}) + "\n" for r in rows))
    data = prepare(cfg(tiny_llama, [a, b], tmp_path, eval_size=0, eval_data=[str(a)], num_epochs=1,
                       oversample={"toy/b": 3}), tok)
    sources = [p.source for p in data.items]
    assert sorted(set(sources)) == ["toy", "toy/b"]
    assert data.stats["oversample"] == {"epoch_pairs": 24 + 3 * 16, "by_source": {"toy": 24, "toy/b": 48}}
    assert data.stats["num_steps"] == (24 + 48) // 4 == len(data.plan)
    drawn = [sources[i] for step in data.plan for i in step]
    assert drawn.count("toy/b") == 48 and drawn.count("toy") == 24
    left_out = prepare(cfg(tiny_llama, [a, b], tmp_path / "o", eval_size=0, eval_data=[str(a)],
                           oversample={"toy": 0, "toy/b": 1}), tok)  # "toy" covers "toy/b"; the longer key wins
    assert {left_out.items[i].source for step in left_out.plan for i in step} == {"toy/b"}
    with pytest.raises(ValueError, match="match no training pair's source"):
        prepare(cfg(tiny_llama, [a, b], tmp_path / "x", eval_size=0, eval_data=[str(a)], oversample={"uf": 2}), tok)


def test_average_last_evaluates_the_mean_of_the_last_weights(tiny_llama, toy, tmp_path):
    """average_last: 3 evaluates the mean of the trained weights at the final step and the two checkpoints
    before it; the recorded held-out accuracy is that of the mean weights scored on their own."""
    from transformers import AutoModelForSequenceClassification

    from rmkit.data import load_pairs
    from rmkit.evaluate.metrics import pairwise_correct
    from rmkit.score.scorer import RewardScorer

    held = write_toy(tmp_path / "held.jsonl", 24, seed=7)
    out = tmp_path / "run"
    summary = train(cfg(tiny_llama, toy, out, eval_data=[str(held)], learning_rate=2e-4, max_steps=5,
                        save_steps=1, save_total_limit=5, average_last=3, eval_steps=1))
    avg = summary["averaged"]
    assert avg["steps"] == [3, 4, 5]
    final = load_file(out / "model" / "model.safetensors")
    ck = [load_file(out / "checkpoints" / f"checkpoint-{s:06d}" / "model.safetensors") for s in (3, 4)]
    moved = [k for k in final if not torch.equal(final[k], ck[0][k])]
    assert moved  # the weights moved between the steps: the mean is not any one of them
    mean = {k: ((final[k].double() + ck[0][k].double() + ck[1][k].double()) / 3).float() for k in final}
    model = AutoModelForSequenceClassification.from_pretrained(str(out / "model"))
    model.load_state_dict(mean, strict=False)
    folder = tmp_path / "mean"
    model.save_pretrained(str(folder))
    for f in (out / "model").iterdir():
        if f.name.startswith("tokenizer") or f.name.endswith(".jinja"):
            (folder / f.name).write_bytes(f.read_bytes())
    pairs = load_pairs(str(held))
    rewards = RewardScorer.from_pretrained(str(folder), dtype="float32").score_pairs(pairs)
    got = sum(pairwise_correct([c for c, _ in rewards], [r for _, r in rewards]))
    near = sum(abs(c - r) <= 2e-5 for c, r in rewards)
    assert abs(got - avg["heldout"]["accuracy"] * len(pairs)) <= near + 1e-6
    # the mean's rewards differ from the final model's: the evaluation did not score the final weights
    final_rewards = RewardScorer.from_pretrained(str(out / "model"), dtype="float32").score_pairs(pairs)
    assert max(abs(a[0] - b[0]) for a, b in zip(rewards, final_rewards)) > 1e-4
