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
from rmkit.train.checkpoints import averaged_eval, export_model, keep_if_best, latest_checkpoint, save_checkpoint
from rmkit.train.collate import batch_plan, edge_index, shard, steps_per_epoch
from rmkit.train.config import TrainConfig
from rmkit.train.data import encode_pairs, heldout_split, load_sources, oversample_repeats, sample
from rmkit.train.loss import bradley_terry_loss, pair_metrics
from rmkit.train.model import FLASH, RewardForward, attention_of, load_for_training

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
    trunk: object = None
    """A `rmkit.train.trunk.TrunkRunner` when layers below freeze_layers run from the store, else None."""
    compute_dtype: torch.dtype | None = None
    """bf16 under bf16 mixed precision (autocast over fp32 weights), else None (the weights' dtype)."""

    def collate(self, items) -> dict:
        return self.trunk.collate(self, items) if self.trunk is not None else collate_for(self, items)

    def forward(self, batch: dict) -> torch.Tensor:
        """fp32 rewards of the batch's responses, in order."""
        return self.trunk.forward(self, batch) if self.trunk is not None else self.fwd(self.model, batch)


def resolve_precision(requested: str) -> tuple[str, dict]:
    """The mixed precision a run uses ("no" | "bf16" | "fp16") and why: "auto" is bf16 where this machine's
    bf16 matmul is measured faster than its fp32 (or on CUDA), else "no"."""
    if requested != "auto":
        return requested, {"requested": requested, "chosen": requested}
    if torch.cuda.is_available():
        return "bf16", {"requested": "auto", "chosen": "bf16", "why": "CUDA"}
    from rmkit.models.precision import probe

    found = probe()
    chosen = "bf16" if found["chosen"] == "bfloat16" else "no"
    log.warning("mixed_precision auto -> %s (%s)", chosen, found["why"])
    return chosen, {"requested": "auto", "chosen": chosen, "probe": found}


def make_accelerator(cfg: TrainConfig, precision: str):
    """The run's Accelerator. In a single process, a state left by an earlier run in the same process
    (another precision, say) is reset; under `accelerate launch` the launcher's state is kept."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and AcceleratorState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=precision, gradient_accumulation_steps=cfg.grad_accum,
                       cpu=not torch.cuda.is_available())


def prepare_data(cfg: TrainConfig, tok) -> tuple[list, evaluation.EvalSet, dict]:
    from collections import Counter

    from rmkit.train.data import encode_ranked, load_ranked, merge_by_prompt

    ranked, sources, ranked_skipped = {}, list(cfg.data), Counter()
    if cfg.pair_mode == "all":  # sources of k scored responses are read as such, not as pairs
        ranked = {s: load_ranked(s, errors=cfg.data_errors, skipped=ranked_skipped) for s in cfg.data}
        sources = [s for s in cfg.data if ranked[s] is None]
    pairs, skipped = load_sources(sources, format=cfg.data_format, errors=cfg.data_errors)
    skipped.update(ranked_skipped)
    if cfg.eval_data:
        held, held_skipped = load_sources(cfg.eval_data, format=cfg.data_format, errors=cfg.data_errors)
        skipped.update({f"eval_{k}": v for k, v in held_skipped.items()})
    else:
        pairs, held = heldout_split(pairs, cfg.eval_size, cfg.seed)
    train, train_stats = encode_pairs(tok, pairs, max_length=cfg.max_length, policy=cfg.truncation,
                                      margin_key=cfg.margin_key)
    train = sample(train, cfg.max_train_pairs, cfg.seed)
    if cfg.pair_mode == "all":  # one group per prompt; ranked rows give all their ordered pairs
        train = merge_by_prompt(train) + [g for rows in ranked.values() for g in
                                          (encode_ranked(tok, b, cfg.max_length, train_stats) for b in rows or [])
                                          if g is not None]
        train_stats.update(groups=len(train), group_pairs=sum(len(g.edges) for g in train))
    evalset = evaluation.EvalSet.build(cfg, tok, held)
    stats = {"rows_skipped": dict(skipped), "train": dict(train_stats), "eval": evalset.stats,
             "train_pairs": len(train), "eval_pairs": len(evalset.pairs)}
    return train, evalset, stats


def packing_mode(cfg: TrainConfig, attention: str | None, fwd) -> str:
    """The layout this run uses: "shared" where exact (a score head, a mask-taking attention), else packed."""
    from rmkit.models.groups import takes_custom_mask

    can_share = fwd.head is not None and takes_custom_mask(attention)
    if cfg.packing == "shared" and not can_share:
        raise ValueError(f"packing=shared needs a `score` head and SDPA or eager attention (got {attention}); "
                         "use packing=on")
    if cfg.packing == "auto":
        return "shared" if can_share else ("on" if fwd.head is not None else "off")
    return cfg.packing


def sharing_stats(items) -> dict:
    """What prefix sharing does to the training items: groups, those with no common prefix (they run
    unshared: a chat template that rewrote the prompt), and tokens alone vs shared."""
    from rmkit.models.groups import split_group

    groups = [split_group(it.responses) for it in items]
    alone, shared = sum(g.unshared_length for g in groups), sum(g.length for g in groups)
    return {"groups": len(groups), "unshared_groups": sum(1 for g in groups if not g.prefix),
            "tokens_alone": alone, "tokens_shared": shared,
            "tokens_removed": round(1 - shared / alone, 4) if alone else 0.0}


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

    precision, precision_info = resolve_precision(cfg.mixed_precision)
    acc = make_accelerator(cfg, precision)
    set_seed(cfg.seed)
    model, tok = load_for_training(cfg, device=str(acc.device))
    train, evalset, stats = prepare_data(cfg, tok)
    global_batch = cfg.batch_size * cfg.grad_accum * acc.num_processes
    repeats = oversample_repeats(train, cfg.oversample)
    epoch_pairs = len(train) if repeats is None else sum(repeats)
    num_steps = total_steps(cfg, epoch_pairs, global_batch)
    plan = batch_plan([p.length for p in train], global_batch, num_steps, cfg.seed, cfg.group_by_length,
                      repeats)
    if repeats is not None:
        stats["oversample"] = {"epoch_pairs": epoch_pairs, "by_source": _epoch_sources(train, repeats)}
    fwd = RewardForward(model)
    attention = attention_of(model)
    optimizer, scheduler = build_optimization(cfg, model, num_steps)
    model, optimizer = acc.prepare(model, optimizer)
    state = TrainState()
    acc.register_for_checkpointing(scheduler, state)
    stats.update(num_steps=num_steps, global_batch=global_batch, processes=acc.num_processes,
                 distributed=acc.distributed_type.value, wrapped=type(model).__name__,
                 trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
                 attention=attention, packing=packing_mode(cfg, attention, fwd), precision=precision_info)
    if stats["packing"] == "shared":
        stats["sharing"] = sharing_stats(train)
    run = Run(cfg, acc, model, tok, fwd, optimizer, scheduler, train, plan, evalset, state, stats)
    run.compute_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if cfg.freeze_layers and cfg.trunk_cache != "off":
        from rmkit.train.trunk import TrunkRunner

        run.trunk = TrunkRunner.build(run, strict=cfg.trunk_cache == "on")
    return run


def _epoch_sources(items, repeats) -> dict[str, int]:
    """Pairs of each source in one epoch of the plan."""
    from collections import Counter

    counts: Counter = Counter()
    for it, k in zip(items, repeats):
        counts[getattr(it, "source", "")] += k
    return dict(sorted(counts.items()))


def collate_for(run: Run, items) -> dict:
    """A micro-batch of pairs / groups in this run's layout, plus its edges: `winners[e]`, `losers[e]` index
    the flat rewards (responses in item order), `margins[e]` the edge's margin."""
    from rmkit.models.groups import pack_groups, split_group
    from rmkit.train.collate import collate_packed, collate_padded

    pad = run.tok.pad_token_id if run.tok.pad_token_id is not None else 0
    seqs = [r for it in items for r in it.responses]
    mode = run.stats.get("packing", "on")
    one_row = run.stats.get("attention") == FLASH
    row_tokens = 10 ** 9 if one_row else run.cfg.pack_row_tokens
    if mode == "shared":
        batch = pack_groups([split_group(it.responses) for it in items], pad, row_tokens)
    elif mode == "off" or run.fwd.head is None:
        batch = collate_padded(seqs, pad)
    else:
        batch = collate_packed(seqs, pad, row_tokens=row_tokens)
    batch.update(edge_index(items))
    return batch


def step_loss(run: Run, rewards: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bradley-Terry over the batch's edges: (loss, chosen rewards, rejected rewards)."""
    c, r = rewards[batch["winners"].to(rewards.device)], rewards[batch["losers"].to(rewards.device)]
    margin = batch["margins"].to(c.device) if run.cfg.margin_key else None
    return bradley_terry_loss(c, r, margin, run.cfg.center_rewards_coefficient), c, r


def train_step(run: Run) -> dict:
    """One optimizer step over this process's micro-batches; returns the step's metrics (all ranks)."""
    acc, cfg = run.acc, run.cfg
    micro = shard(run.plan[run.state.step], acc.process_index, acc.num_processes, cfg.grad_accum)
    chosen, rejected, margins, tokens = [], [], [], 0
    for idx in micro:
        batch = run.collate([run.train[i] for i in idx])
        with acc.accumulate(run.model):
            loss, c, r = step_loss(run, run.forward(batch), batch)
            acc.backward(loss)
        chosen.append(c.detach())
        rejected.append(r.detach())
        margins.append(batch["margins"])
        tokens += int(batch.get("unshared_tokens", batch["real_tokens"]))
    grad_norm = acc.clip_grad_norm_(run.model.parameters(), cfg.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad()
    c, r = torch.cat(chosen), torch.cat(rejected)
    m = torch.cat(margins).to(c.device) if cfg.margin_key else None
    local = torch.tensor([bradley_terry_loss(c, r, m, cfg.center_rewards_coefficient).item(),
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
            keep_if_best(run, run.state.evals[-1])
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


def finish(run: Run, complete: bool) -> dict:
    """Final evaluation, export (safetensors + tokenizer + model card), results.json, loss curve."""
    from rmkit.train.card import plot_loss

    out = Path(run.cfg.output_dir)
    results = evaluation.run_eval(run, final=True) if run.cfg.final_eval else {}
    summary = {"complete": complete, "steps": run.state.step, "num_steps": len(run.plan),
               "train_seconds": round(run.state.train_seconds, 1), "data": run.stats, "eval": results,
               "evals": run.state.evals,
               "config": run.cfg.to_dict()}
    if run.acc.is_main_process:
        _write_logs(run)
        plot_loss(run.state.history, out / "loss_curve.png", run.state.evals)
    export_model(run, out / "model", summary, extra_files={"loss_curve.png": out / "loss_curve.png"})
    if run.acc.is_main_process:
        write_json_atomic(out / "results.json", summary)
    run.acc.wait_for_everyone()
    if results:
        keep_if_best(run, {"step": run.state.step, **results}, exported=out / "model")
    if run.cfg.average_last >= 2 and results:
        summary["averaged"] = averaged_eval(run, [*run.state.evals, {"step": run.state.step, **results}])
        if run.acc.is_main_process:
            write_json_atomic(out / "results.json", summary)
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
