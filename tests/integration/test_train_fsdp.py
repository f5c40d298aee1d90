"""FSDP through accelerate on CPU: `accelerate launch --config_file configs/accelerate/fsdp.yaml` with 2 gloo
processes (FSDP2 `fully_shard`, full state dict) follows the same loss trajectory as one process with the same
global batch, checkpoints mid-run, and exports a model that `AutoModelForSequenceClassification` loads and that
scores as the never-wrapped model does. (fsdp_on_cpu.py says why the launch goes through a helper script.)"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two training processes: `pytest -m 'not slow'` skips it, `make test` runs it
import torch

from rmkit.train.config import TrainConfig
from rmkit.train.trainer import train

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from test_train_ddp import free_port, losses  # noqa: E402
from test_train_tiny import write_toy  # noqa: E402
from bounds import same_training_runs  # noqa: E402

FSDP_YAML = HERE.parents[1] / "configs" / "accelerate" / "fsdp.yaml"


def test_fsdp_two_processes_equal_one(tiny_llama, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rmkit.score.scorer import RewardScorer

    data = write_toy(tmp_path / "toy.jsonl", 40)
    common = dict(model=str(tiny_llama), data=[str(data)], eval_size=8, max_steps=5, learning_rate=1e-3,
                  lr_scheduler="cosine", warmup_steps=1, seed=0, n_boot=50, grad_accum=1, save_steps=2)
    train(TrainConfig(**common, batch_size=4, output_dir=str(tmp_path / "one")))
    recipe = tmp_path / "two.yaml"
    recipe.write_text(json.dumps({**common, "batch_size": 2, "output_dir": str(tmp_path / "two")}))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP_YAML),
           "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(free_port()),
           str(HERE / "fsdp_on_cpu.py"), "--config", str(recipe), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "two" / "results.json").read_text())
    assert summary["data"]["distributed"] == "FSDP" and summary["data"]["processes"] == 2
    assert summary["data"]["wrapped"].startswith("FSDP")  # fully_shard wrapped it
    assert summary["data"]["global_batch"] == 4
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir())[-1] == "checkpoint-000004"

    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 5
    assert two == pytest.approx(one, abs=1e-4)
    assert one[-1] < one[0] - 0.05  # the trajectory moved
    assert losses(tmp_path / "two", "grad_norm")[0] == pytest.approx(losses(tmp_path / "one", "grad_norm")[0], rel=1e-4)
    # each process sums its half of the batch and gloo adds the halves: another order than one process's sum,
    # whose rounding Adam amplifies in weights with a near-zero gradient (tests/bounds.py)
    same_training_runs(tmp_path / "one", tmp_path / "two", tiny_llama)

    tok = AutoTokenizer.from_pretrained(tmp_path / "two/model")
    texts = ["Sure, here is the answer.", "The quick brown fox jumps."]
    enc = tok(texts, return_tensors="pt", padding=True)
    logits = {}
    for name in ("one", "two"):
        m = AutoModelForSequenceClassification.from_pretrained(tmp_path / name / "model").eval()
        with torch.no_grad():
            logits[name] = m(**enc).logits[:, 0]
    torch.testing.assert_close(logits["two"], logits["one"], atol=1e-5, rtol=1e-4)
    convs = [[{"role": "user", "content": "Write a poem 3"}, {"role": "assistant", "content": t}] for t in texts]
    r1 = RewardScorer.from_pretrained(str(tmp_path / "one/model"), dtype="float32").score(convs)
    r2 = RewardScorer.from_pretrained(str(tmp_path / "two/model"), dtype="float32").score(convs)
    assert r2 == pytest.approx(r1, abs=1e-5, rel=1e-4)  # the bound the logits above rest on
    assert r2[0] > r2[1]  # it learned the toy preference
