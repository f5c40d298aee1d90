"""What a run trains and evaluates on: `prepare(cfg, tok, processes)` loads the sources, holds out whole
prompts (or reads `eval_data`), encodes under the over-long policy, and plans every optimizer step.

    data = prepare(cfg, tok, processes=1, rank=0)   # data.items, data.plan, data.micro, data.evalset

The plan takes a fixed global batch of items per step from a seeded order (the same for any number of
processes), so the step number alone says where a run is in its data (what `--resume` relies on); `micro[step]`
is this process's share of it, in `grad_accum` micro-batches.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from rmkit.train.collate import batch_plan, shard, steps_per_epoch
from rmkit.train.data import (encode_pairs, encode_ranked, heldout_split, load_ranked, load_sources,
                              merge_by_prompt, oversample_repeats, sample)
from rmkit.train.evaluation import EvalSet


@dataclass(frozen=True)
class TrainData:
    items: list
    """Encoded pairs (or groups, pair_mode "all"), in load order."""
    plan: list
    """Item indices of every optimizer step (a global batch each)."""
    micro: list
    """This process's micro-batches of every step (item indices), `collate.shard` of the plan."""
    evalset: EvalSet
    stats: dict
    """Rows skipped, encoding counts, pairs, the epoch's make-up under `oversample`, steps and global batch."""


def prepare(cfg, tok, processes: int = 1, rank: int = 0) -> TrainData:
    items, evalset, stats = encode(cfg, tok)
    global_batch = cfg.batch_size * cfg.grad_accum * processes
    repeats = oversample_repeats(items, cfg.oversample)
    epoch_pairs = len(items) if repeats is None else sum(repeats)
    num_steps = total_steps(cfg, epoch_pairs, global_batch)
    plan = batch_plan([p.length for p in items], global_batch, num_steps, cfg.seed, cfg.group_by_length, repeats)
    if repeats is not None:
        stats["oversample"] = {"epoch_pairs": epoch_pairs, "by_source": _epoch_sources(items, repeats)}
    stats.update(num_steps=num_steps, global_batch=global_batch)
    micro = [shard(step, rank, processes, cfg.grad_accum) for step in plan]
    return TrainData(items, plan, micro, evalset, stats)


def _read(cfg) -> tuple[list, list, dict, Counter]:
    """(training pairs, held-out pairs, {source: ranked rows or None}, rows skipped)."""
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
    return pairs, held, ranked, skipped


def encode(cfg, tok) -> tuple[list, EvalSet, dict]:
    """(training items, the evaluation set, stats): read, encoded, sampled and (pair_mode "all") grouped."""
    pairs, held, ranked, skipped = _read(cfg)
    train, train_stats = encode_pairs(tok, pairs, max_length=cfg.max_length, policy=cfg.truncation,
                                      margin_key=cfg.margin_key)
    train = sample(train, cfg.max_train_pairs, cfg.seed)
    if cfg.pair_mode == "all":  # one group per prompt; ranked rows give all their ordered pairs
        train = merge_by_prompt(train) + [g for rows in ranked.values() for g in
                                          (encode_ranked(tok, b, cfg.max_length, train_stats) for b in rows or [])
                                          if g is not None]
        train_stats.update(groups=len(train), group_pairs=sum(len(g.edges) for g in train))
    evalset = EvalSet.build(cfg, tok, held)
    stats = {"rows_skipped": dict(skipped), "train": dict(train_stats), "eval": evalset.stats,
             "train_pairs": len(train), "eval_pairs": len(evalset.pairs)}
    return train, evalset, stats


def total_steps(cfg, num_pairs: int, global_batch: int) -> int:
    if cfg.max_steps is not None:
        return cfg.max_steps
    return max(1, math.floor(steps_per_epoch(num_pairs, global_batch) * cfg.num_epochs))


def _epoch_sources(items, repeats) -> dict[str, int]:
    """Pairs of each source in one epoch of the plan."""
    counts: Counter = Counter()
    for it, k in zip(items, repeats):
        counts[getattr(it, "source", "")] += k
    return dict(sorted(counts.items()))
