"""Two CPU processes (torch.distributed gloo, launched with torchrun as `accelerate launch` does for GPUs;
on CPU `accelerate launch --cpu` starts a single process unless given an MPI hostfile) follow the same
loss trajectory and reach the same weights (up to the rounding Adam amplifies: tests/bounds.py) as one process
with the same global batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two training processes: `pytest -m 'not slow'` skips it, `make test` runs it

from rmkit.train.config import TrainConfig
from rmkit.train.trainer import train

sys.path.insert(0, str(Path(__file__).parent))
from test_train_tiny import write_toy  # noqa: E402
from bounds import history, same_training_runs  # noqa: E402
from servers import free_port  # noqa: E402


def losses(out: Path, key: str = "loss") -> list[float]:
    return [h[key] for h in history(out)]


def test_two_processes_equal_one(tiny_llama, tmp_path):
    data = write_toy(tmp_path / "toy.jsonl", 40)
    common = dict(model=str(tiny_llama), data=[str(data)], eval_size=8, max_steps=5, learning_rate=5e-3,
                  lr_scheduler="cosine", warmup_steps=1, seed=0, n_boot=50, grad_accum=1)
    train(TrainConfig(**common, batch_size=4, output_dir=str(tmp_path / "one")))
    recipe = tmp_path / "two.yaml"
    recipe.write_text(json.dumps({**common, "batch_size": 2, "output_dir": str(tmp_path / "two")}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(free_port()), "-m", "rmkit.train.cli", "--config", str(recipe), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 5
    assert two == pytest.approx(one, abs=1e-4)
    assert one[-1] != pytest.approx(one[0], abs=1e-3)  # the trajectory moved
    # the first step's gradient is the global batch's mean, not the sum of the halves (Adam would hide a factor 2)
    assert losses(tmp_path / "two", "grad_norm")[0] == pytest.approx(losses(tmp_path / "one", "grad_norm")[0], rel=1e-4)
    summary = json.loads((tmp_path / "two" / "results.json").read_text())
    assert summary["data"]["processes"] == 2 and summary["data"]["global_batch"] == 4
    # each process sums its half of the batch and gloo adds the halves: another order than one process's sum,
    # whose rounding Adam amplifies in weights with a near-zero gradient (tests/bounds.py)
    same_training_runs(tmp_path / "one", tmp_path / "two", tiny_llama)
