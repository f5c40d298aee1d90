"""How a run turns items into rewards: the batch layout (padded, packed, prefix-shared) and the forward, or,
with layers below `freeze_layers` in the activation store, `rmkit.train.trunk.TrunkRunner` for both.

    rewards, stats = build(cfg, acc, model, fwd, tok, data, precision)
    r, batch = rewards.of(items)         # fp32 rewards of the items' responses (in order), and their batch

`stats` says which attention and layout the run uses (and, prefix-shared, what sharing saves; with a store,
what it holds). The training loop and the evaluation both ask `rewards.of`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from rmkit.models.groups import pack_groups, split_group, takes_custom_mask
from rmkit.train.collate import collate_packed, collate_padded, edge_index
from rmkit.train.model import FLASH, attention_of


@dataclass(frozen=True)
class Layout:
    mode: str
    """"shared" (prefix-shared rows), "on" (packed) or "off" (padded)."""
    pad_id: int
    row_tokens: int

    def collate(self, items) -> dict:
        """A micro-batch of pairs / groups in this layout, plus its edges: `winners[e]`, `losers[e]` index the
        flat rewards (responses in item order), `margins[e]` the edge's margin."""
        if self.mode == "shared":
            batch = pack_groups([split_group(it.responses) for it in items], self.pad_id, self.row_tokens)
        elif self.mode == "off":
            batch = collate_padded([r for it in items for r in it.responses], self.pad_id)
        else:
            batch = collate_packed([r for it in items for r in it.responses], self.pad_id,
                                   row_tokens=self.row_tokens)
        batch.update(edge_index(items))
        return batch


@dataclass(frozen=True)
class Rewards:
    collate: Callable[[list], dict]
    forward: Callable[[dict], torch.Tensor]
    """fp32 rewards of a collated batch's responses, in order."""

    def of(self, items) -> tuple[torch.Tensor, dict]:
        batch = self.collate(items)
        return self.forward(batch), batch


def packing_mode(packing: str, attention: str | None, has_head: bool) -> str:
    """The layout this run uses: "shared" where exact (a score head, a mask-taking attention), else packed."""
    can_share = has_head and takes_custom_mask(attention)
    if packing == "shared" and not can_share:
        raise ValueError(f"packing=shared needs a `score` head and SDPA or eager attention (got {attention}); "
                         "use packing=on")
    if packing == "auto":
        return "shared" if can_share else ("on" if has_head else "off")
    return packing


def sharing_stats(items) -> dict:
    """What prefix sharing does to the training items: groups, those with no common prefix (they run
    unshared: a chat template that rewrote the prompt), and tokens alone vs shared."""
    groups = [split_group(it.responses) for it in items]
    alone, shared = sum(g.unshared_length for g in groups), sum(g.length for g in groups)
    return {"groups": len(groups), "unshared_groups": sum(1 for g in groups if not g.prefix),
            "tokens_alone": alone, "tokens_shared": shared,
            "tokens_removed": round(1 - shared / alone, 4) if alone else 0.0}


def build(cfg, acc, model, fwd, tok, data, precision) -> tuple[Rewards, dict]:
    """The run's rewards path and what it says about itself (results.json's `data`, after the data's own)."""
    unwrapped = acc.unwrap_model(model)
    attention = attention_of(unwrapped)
    packing = packing_mode(cfg.packing, attention, fwd.head is not None)
    stats = {"processes": acc.num_processes, "distributed": acc.distributed_type.value,
             "wrapped": type(model).__name__,
             "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
             "attention": attention, "packing": packing, "precision": precision.info}
    if packing == "shared":
        stats["sharing"] = sharing_stats(data.items)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    layout = Layout(packing if fwd.head is not None else "off", pad,
                    10 ** 9 if attention == FLASH else cfg.pack_row_tokens)
    rewards = Rewards(layout.collate, lambda batch: fwd(model, batch))
    if cfg.freeze_layers and cfg.trunk_cache != "off":
        from rmkit.train.trunk import TrunkRunner

        items = list(data.items) + [e for e in (*data.evalset.encoded, *data.evalset.rb_encoded) if e is not None]
        runner, stats["trunk"] = TrunkRunner.build(cfg, unwrapped, tok, items, processes=acc.num_processes,
                                                   packing=packing, has_head=fwd.head is not None,
                                                   compute=precision.compute_dtype, strict=cfg.trunk_cache == "on")
        if runner is not None:
            rewards = Rewards(runner.collate, runner.forward)
    return rewards, stats
