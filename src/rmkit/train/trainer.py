"""`train(cfg)`: Bradley-Terry reward-model training on transformers + accelerate.

    rmkit train --config configs/train/smollm2-135m-demo.yaml max_steps=20 [--resume]
    accelerate launch --config_file configs/accelerate/ddp.yaml -m rmkit.train.cli --config X.yaml

`train` reads top to bottom: the precision and the accelerator (`precision`), the model (`model`), the data
and its step plan (`dataset`), the optimizer, the rewards path (`forward`: the batch layout, or the frozen-trunk
store), the evaluation (`evaluation`), the run's folder (`checkpoints`: resume, checkpoints, the best model,
the averaged weights, the final export), and between them the loop, `fit` and `train_step`, which is here.

accelerate does device placement, mixed precision, gradient accumulation and distributed wrapping;
torch AdamW and transformers' warmup + cosine/constant schedulers do the optimisation. Every optimizer
step takes a fixed global batch of pairs from a seeded plan (the same for any number of processes),
so a run is deterministic on CPU, and a checkpoint (model, optimizer, scheduler, RNG, step) lets
`--resume` reach the same final weights as an uninterrupted run.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from rmkit.train import forward
from rmkit.train.checkpoints import RunFolder
from rmkit.train.config import TrainConfig
from rmkit.train.dataset import TrainData, prepare
from rmkit.train.evaluation import Evaluator
from rmkit.train.loss import edge_loss, step_totals
from rmkit.train.model import RewardForward, load_for_training
from rmkit.train.precision import resolve_precision, start  # noqa: F401 (resolve_precision: bench/gpu_check.py)

log = logging.getLogger("rmkit")


@dataclass
class TrainState:
    """What a checkpoint adds to model/optimizer/scheduler/RNG: the step (= data position) and logs."""
    step: int = 0
    history: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    train_seconds: float = 0.0

    def state_dict(self) -> dict:
        return {"step": self.step, "history": self.history, "evals": self.evals,
                "train_seconds": self.train_seconds}

    def load_state_dict(self, d: dict) -> None:
        self.step, self.history, self.evals = d["step"], list(d["history"]), list(d["evals"])
        self.train_seconds = d.get("train_seconds", 0.0)


@dataclass(frozen=True)
class Run:
    """What the loop works with, and what `on_step(run)` / `progress(metrics, run)` are given. Only `state`
    changes (the step, the logs), and the weights, optimizer and scheduler as they train."""
    cfg: TrainConfig
    acc: object
    model: object
    """The prepared (possibly wrapped) model."""
    tok: object
    fwd: RewardForward
    optimizer: object
    scheduler: object
    data: TrainData
    rewards: forward.Rewards
    folder: RunFolder
    state: TrainState

    @property
    def plan(self) -> list:
        return self.data.plan


def build_optimization(cfg: TrainConfig, model, num_steps: int):
    from transformers import get_scheduler

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, betas=cfg.adam_betas,
                                  weight_decay=cfg.weight_decay)
    warmup = cfg.warmup_steps or math.ceil(cfg.warmup_ratio * num_steps)
    name = {"constant": "constant_with_warmup"}.get(cfg.lr_scheduler, cfg.lr_scheduler)
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=num_steps)
    return optimizer, scheduler


def train(cfg: TrainConfig, *, resume: bool = False, on_step: Callable | None = None,
          progress: Callable | None = None) -> dict:
    """Train, evaluate and export; returns the summary written to `output_dir/results.json`."""
    acc, precision = start(cfg)
    model, tok = load_for_training(cfg, device=str(acc.device))
    data = prepare(cfg, tok, acc.num_processes, acc.process_index)
    fwd = RewardForward(model)  # its hook goes on the head before accelerate wraps the model
    optimizer, scheduler = build_optimization(cfg, model, len(data.plan))
    model, optimizer = acc.prepare(model, optimizer)
    state = TrainState()
    acc.register_for_checkpointing(scheduler, state)
    rewards, stats = forward.build(cfg, acc, model, fwd, tok, data, precision)
    evaluate = Evaluator(acc, model, rewards, data.evalset, cfg.eval_batch_size, cfg.n_boot, cfg.seed)
    folder = RunFolder(cfg, acc, model, tok, {**data.stats, **stats}, len(data.plan), evaluate)
    folder.begin(resume, state)
    run = Run(cfg, acc, model, tok, fwd, optimizer, scheduler, data, rewards, folder, state)
    complete = fit(run, on_step=on_step, progress=progress)
    return folder.finish(state, complete)


def fit(run: Run, on_step: Callable | None = None, progress: Callable | None = None) -> bool:
    """The training loop from `run.state.step`; True when it reached the last step."""
    cfg, state, n = run.cfg, run.state, len(run.plan)
    run.model.train()
    started = invoked = time.monotonic()
    while state.step < n:
        t0 = time.monotonic()
        metrics = train_step(run)
        state.step += 1
        _log_step(run, metrics, time.monotonic() - t0, progress)
        if cfg.eval_steps and state.step % cfg.eval_steps == 0 and state.step < n:
            state.evals.append(run.folder.evaluated(state.step, state.evals))
            run.model.train()
        out_of_time = _out_of_time(run, invoked)
        if (cfg.save_steps and state.step % cfg.save_steps == 0) or out_of_time:
            state.train_seconds += time.monotonic() - started
            started = time.monotonic()
            run.folder.save(state.step)
        if on_step is not None:
            on_step(run)
        if out_of_time and state.step < n:
            log.warning("time budget of %s min spent at step %d/%d; `--resume` goes on", cfg.max_minutes,
                        state.step, n)
            return False
    state.train_seconds += time.monotonic() - started
    return True


def train_step(run: Run) -> dict:
    """One optimizer step over this process's micro-batches; returns the step's metrics (all ranks)."""
    acc, cfg, use_margin = run.acc, run.cfg, bool(run.cfg.margin_key)
    chosen, rejected, margins, tokens = [], [], [], 0
    for idx in run.data.micro[run.state.step]:
        with acc.accumulate(run.model):
            rewards, batch = run.rewards.of([run.data.items[i] for i in idx])
            loss, c, r = edge_loss(rewards, batch, use_margin, cfg.center_rewards_coefficient)
            acc.backward(loss)
        chosen.append(c.detach())
        rejected.append(r.detach())
        margins.append(batch["margins"])
        tokens += int(batch.get("unshared_tokens", batch["real_tokens"]))
    grad_norm = acc.clip_grad_norm_(run.model.parameters(), cfg.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad()
    local = step_totals(chosen, rejected, margins, tokens, use_margin, cfg.center_rewards_coefficient)
    return _reduce_metrics(acc, local, grad_norm)


def _reduce_metrics(acc, local: torch.Tensor, grad_norm) -> dict:
    mean = acc.reduce(local.clone(), reduction="mean")
    tokens = acc.reduce(local[-1:].clone(), reduction="sum")
    keys = ("loss", "accuracy", "margin", "reward_chosen", "reward_rejected")
    out = {k: float(v) for k, v in zip(keys, mean[:-1].tolist())}
    out["tokens"] = int(tokens.item())
    out["grad_norm"] = float(grad_norm) if grad_norm is not None else float("nan")
    return out


def _out_of_time(run: Run, started: float) -> bool:
    """The budget counts this invocation's training loop (a resumed run gets a fresh budget)."""
    if run.cfg.max_minutes is None:
        return False
    spent = time.monotonic() - started
    flag = torch.tensor([float(spent > run.cfg.max_minutes * 60)], device=run.acc.device)
    return bool(run.acc.reduce(flag, reduction="sum").item() > 0)


def _log_step(run: Run, metrics: dict, seconds: float, progress: Callable | None) -> None:
    metrics.update(step=run.state.step, lr=run.scheduler.get_last_lr()[0], seconds=round(seconds, 3),
                   tokens_per_s=metrics["tokens"] / max(seconds, 1e-9))
    run.state.history.append(metrics)
    if progress is not None and run.acc.is_main_process:
        progress(metrics, run)
    if run.state.step % run.cfg.logging_steps == 0:
        run.folder.write_logs(run.state.history)
