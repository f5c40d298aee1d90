"""`train(cfg)`: Bradley-Terry reward-model training on transformers + accelerate.

    rmkit train --config configs/train/smollm2-135m-demo.yaml max_steps=20 [--resume]
    accelerate launch --config_file configs/accelerate/ddp.yaml -m rmkit.train.cli --config X.yaml

accelerate does device placement, mixed precision, gradient accumulation and distributed wrapping;
torch AdamW and transformers' warmup + cosine/constant schedulers do the optimisation. Every optimizer
step takes a fixed global batch of pairs from a seeded plan (the same for any number of processes),
so a run is deterministic on CPU, and a checkpoint (model, optimizer, scheduler, RNG, step) lets
`--resume` reach the same final weights as an uninterrupted run.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from rmkit.data.io import write_json_atomic, write_jsonl_atomic
from rmkit.train import evaluation
from rmkit.train.collate import batch_plan, pair_sequences, shard, steps_per_epoch
from rmkit.train.config import TrainConfig
from rmkit.train.data import encode_pairs, heldout_split, load_sources, sample
from rmkit.train.loss import bradley_terry_loss, pair_metrics, split_rewards
from rmkit.train.model import FLASH, RewardForward, attention_of, export, load_for_training

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


@dataclass
class Run:
    cfg: TrainConfig
    acc: object
    model: object
    tok: object
    fwd: RewardForward
    optimizer: object
    scheduler: object
    train: list
    plan: list
    evalset: evaluation.EvalSet
    state: TrainState
    stats: dict


def make_accelerator(cfg: TrainConfig):
    """The run's Accelerator. In a single process, a state left by an earlier run in the same process
    (another precision, say) is reset; under `accelerate launch` the launcher's state is kept."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and AcceleratorState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                       cpu=not torch.cuda.is_available())


def prepare_data(cfg: TrainConfig, tok) -> tuple[list, evaluation.EvalSet, dict]:
    pairs, skipped = load_sources(cfg.data, format=cfg.data_format, errors=cfg.data_errors)
    if cfg.eval_data:
        held, held_skipped = load_sources(cfg.eval_data, format=cfg.data_format, errors=cfg.data_errors)
        skipped.update({f"eval_{k}": v for k, v in held_skipped.items()})
    else:
        pairs, held = heldout_split(pairs, cfg.eval_size, cfg.seed)
    train, train_stats = encode_pairs(tok, pairs, max_length=cfg.max_length, policy=cfg.truncation,
                                      margin_key=cfg.margin_key)
    train = sample(train, cfg.max_train_pairs, cfg.seed)
    evalset = evaluation.EvalSet.build(cfg, tok, held)
    stats = {"rows_skipped": dict(skipped), "train": dict(train_stats), "eval": evalset.stats,
             "train_pairs": len(train), "eval_pairs": len(evalset.pairs)}
    return train, evalset, stats


def total_steps(cfg: TrainConfig, num_pairs: int, global_batch: int) -> int:
    if cfg.max_steps is not None:
        return cfg.max_steps
    return max(1, math.floor(steps_per_epoch(num_pairs, global_batch) * cfg.num_epochs))


def build_optimization(cfg: TrainConfig, model, num_steps: int):
    from transformers import get_scheduler

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, betas=cfg.adam_betas,
                                  weight_decay=cfg.weight_decay)
    warmup = cfg.warmup_steps or math.ceil(cfg.warmup_ratio * num_steps)
    name = {"constant": "constant_with_warmup"}.get(cfg.lr_scheduler, cfg.lr_scheduler)
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=num_steps)
    return optimizer, scheduler


def setup(cfg: TrainConfig) -> Run:
    from accelerate.utils import set_seed

    acc = make_accelerator(cfg)
    set_seed(cfg.seed)
    model, tok = load_for_training(cfg, device=str(acc.device))
    train, evalset, stats = prepare_data(cfg, tok)
    global_batch = cfg.batch_size * cfg.grad_accum * acc.num_processes
    num_steps = total_steps(cfg, len(train), global_batch)
    plan = batch_plan([p.length for p in train], global_batch, num_steps, cfg.seed, cfg.group_by_length)
    fwd = RewardForward(model)
    attention = attention_of(model)
    optimizer, scheduler = build_optimization(cfg, model, num_steps)
    model, optimizer = acc.prepare(model, optimizer)
    state = TrainState()
    acc.register_for_checkpointing(scheduler, state)
    stats.update(num_steps=num_steps, global_batch=global_batch, processes=acc.num_processes,
                 trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
                 attention=attention)
    return Run(cfg, acc, model, tok, fwd, optimizer, scheduler, train, plan, evalset, state, stats)


def collate_for(run: Run, pairs) -> dict:
    from rmkit.train.collate import collate_packed, collate_padded

    seqs = pair_sequences([(p.chosen, p.rejected) for p in pairs])
    pad = run.tok.pad_token_id if run.tok.pad_token_id is not None else 0
    if run.cfg.packing == "off" or run.fwd.head is None:
        return collate_padded(seqs, pad)
    one_row = run.stats.get("attention") == FLASH
    return collate_packed(seqs, pad, row_tokens=10 ** 9 if one_row else run.cfg.pack_row_tokens)


def train_step(run: Run) -> dict:
    """One optimizer step over this process's micro-batches; returns the step's metrics (all ranks)."""
    acc, cfg = run.acc, run.cfg
    micro = shard(run.plan[run.state.step], acc.process_index, acc.num_processes, cfg.grad_accum)
    chosen, rejected, tokens = [], [], 0
    for idx in micro:
        pairs = [run.train[i] for i in idx]
        batch = collate_for(run, pairs)
        with acc.accumulate(run.model):
            c, r = split_rewards(run.fwd(run.model, batch))
            margin = torch.tensor([p.margin for p in pairs], device=c.device) if cfg.margin_key else None
            loss = bradley_terry_loss(c, r, margin, cfg.center_rewards_coefficient)
            acc.backward(loss)
        chosen.append(c.detach())
        rejected.append(r.detach())
        tokens += int(batch["real_tokens"])
    grad_norm = acc.clip_grad_norm_(run.model.parameters(), cfg.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad()
    c, r = torch.cat(chosen), torch.cat(rejected)
    margins = torch.tensor([run.train[i].margin for i in sum(micro, [])]) if cfg.margin_key else None
    local = torch.tensor([bradley_terry_loss(c, r, margins, cfg.center_rewards_coefficient).item(),
                          *pair_metrics(c, r).values(), float(tokens)], device=c.device)
    return _reduce_metrics(acc, local, grad_norm)


def _reduce_metrics(acc, local: torch.Tensor, grad_norm) -> dict:
    mean = acc.reduce(local.clone(), reduction="mean")
    tokens = acc.reduce(local[-1:].clone(), reduction="sum")
    keys = ("loss", "accuracy", "margin", "reward_chosen", "reward_rejected")
    out = {k: float(v) for k, v in zip(keys, mean[:-1].tolist())}
    out["tokens"] = int(tokens.item())
    out["grad_norm"] = float(grad_norm) if grad_norm is not None else float("nan")
    return out


def save_checkpoint(run: Run) -> None:
    ckdir = Path(run.cfg.output_dir) / "checkpoints"
    final = ckdir / f"checkpoint-{run.state.step:06d}"
    tmp = ckdir / f".tmp-checkpoint-{run.state.step:06d}"
    run.acc.save_state(str(tmp))
    run.acc.wait_for_everyone()
    if run.acc.is_main_process:
        import shutil

        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in sorted(ckdir.glob("checkpoint-*"))[:-run.cfg.save_total_limit]:
            shutil.rmtree(old, ignore_errors=True)
    run.acc.wait_for_everyone()


def latest_checkpoint(output_dir: str) -> Path | None:
    found = sorted((Path(output_dir) / "checkpoints").glob("checkpoint-*"))
    return found[-1] if found else None


def _write_logs(run: Run) -> None:
    if run.acc.is_main_process:
        write_jsonl_atomic(Path(run.cfg.output_dir) / "metrics.jsonl", run.state.history)


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
        _write_logs(run)


def fit(run: Run, on_step: Callable | None = None, progress: Callable | None = None) -> bool:
    """The training loop from `run.state.step`; True when it reached the last step."""
    cfg, n = run.cfg, len(run.plan)
    run.model.train()
    started = invoked = time.monotonic()
    while run.state.step < n:
        t0 = time.monotonic()
        metrics = train_step(run)
        run.state.step += 1
        _log_step(run, metrics, time.monotonic() - t0, progress)
        if cfg.eval_steps and run.state.step % cfg.eval_steps == 0 and run.state.step < n:
            run.state.evals.append({"step": run.state.step, **evaluation.run_eval(run, final=False)})
            run.model.train()
        out_of_time = _out_of_time(run, invoked)
        if (cfg.save_steps and run.state.step % cfg.save_steps == 0) or out_of_time:
            run.state.train_seconds += time.monotonic() - started
            started = time.monotonic()
            save_checkpoint(run)
        if on_step is not None:
            on_step(run)
        if out_of_time and run.state.step < n:
            log.warning("time budget of %s min spent at step %d/%d; `--resume` goes on", cfg.max_minutes,
                        run.state.step, n)
            return False
    run.state.train_seconds += time.monotonic() - started
    return True


def _gathered_state(run: Run) -> dict | None:
    """Full weights of a sharded model (FSDP / DeepSpeed ZeRO-3; a collective call), else None.
    (LoRA under sharding is exported through peft's merge on the main process: not supported yet.)"""
    from accelerate.utils import DistributedType

    if run.acc.distributed_type not in (DistributedType.FSDP, DistributedType.DEEPSPEED) or run.cfg.lora_r:
        return None
    return run.acc.get_state_dict(run.model)


def finish(run: Run, complete: bool) -> dict:
    """Final evaluation, export (safetensors + tokenizer + model card), results.json, loss curve."""
    from rmkit.train.card import model_card, plot_loss

    out = Path(run.cfg.output_dir)
    results = evaluation.run_eval(run, final=True) if run.cfg.final_eval else {}
    summary = {"complete": complete, "steps": run.state.step, "num_steps": len(run.plan),
               "train_seconds": round(run.state.train_seconds, 1), "data": run.stats, "eval": results,
               "config": run.cfg.to_dict()}
    run.acc.wait_for_everyone()
    state_dict = _gathered_state(run)
    if run.acc.is_main_process:
        _write_logs(run)
        plot_loss(run.state.history, out / "loss_curve.png", run.state.evals)
        model = run.acc.unwrap_model(run.model)
        model.eval()
        export(model, run.tok, out / "model", model_card(run.cfg, summary),
               extra_files={"loss_curve.png": out / "loss_curve.png"}, state_dict=state_dict)
        write_json_atomic(out / "results.json", summary)
    run.acc.wait_for_everyone()
    return summary


def train(cfg: TrainConfig, *, resume: bool = False, on_step: Callable | None = None,
          progress: Callable | None = None) -> dict:
    """Train, evaluate and export; returns the summary written to `output_dir/results.json`."""
    run = setup(cfg)
    if resume:
        ck = latest_checkpoint(cfg.output_dir)
        if ck is None:
            log.warning("--resume: no checkpoint under %s/checkpoints; starting from step 0", cfg.output_dir)
        else:
            run.acc.load_state(str(ck))
            log.info("resumed from %s (step %d)", ck, run.state.step)
    if run.acc.is_main_process:
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(cfg.output_dir) / "config.json", cfg.to_dict())
        log.info("training data: %s", json.dumps(run.stats))
    complete = fit(run, on_step=on_step, progress=progress)
    return finish(run, complete)
