"""Paired batches for reward-model training: padded, or padding-free (packed), plus the batch plan.

    plan = batch_plan(lengths, global_batch=8, num_steps=100, seed=0)      # pair indices per step
    batch = collate_packed([c0, r0, c1, r1], pad_id=0)     # rows of one flat stream, positions per sequence
    batch = collate_padded([c0, r0, c1, r1], pad_id=0)     # right-padded, attention mask

Both layouts hold the sequences in the order given (chosen, rejected, chosen, ...) and say where each
sequence's last real token is (`rows`, `cols`), so rewards are pooled the same way. A packed batch
has no attention mask: its position ids restart at 0 for every sequence, and transformers turns that
into a block-diagonal causal mask (SDPA / eager) or varlen flash-attention, so each sequence sees only
itself. Fillers at the end of a row are their own sequence and are never pooled.
"""
from __future__ import annotations

import random
from typing import Sequence

import torch

from rmkit.models.groups import pack_rows


def collate_padded(seqs: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, :len(s)] = torch.tensor(list(s), dtype=torch.long)
        mask[row, :len(s)] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": positions,
            "rows": torch.arange(len(seqs)), "cols": torch.tensor([len(s) - 1 for s in seqs]),
            "real_tokens": torch.tensor(sum(len(s) for s in seqs))}


def collate_packed(seqs: Sequence[Sequence[int]], pad_id: int, row_tokens: int = 0
                   ) -> dict[str, torch.Tensor]:
    """Pack sequences into rows of a flat stream (row_tokens=0: rows as wide as the longest sequence)."""
    lengths = [len(s) for s in seqs]
    rows = pack_rows(lengths, row_tokens)
    width = max(sum(lengths[i] for i in r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    where_row, where_col = [0] * len(seqs), [0] * len(seqs)
    for r, members in enumerate(rows):
        start = 0
        for i in members:
            n = lengths[i]
            ids[r, start:start + n] = torch.tensor(list(seqs[i]), dtype=torch.long)
            pos[r, start:start + n] = torch.arange(n)
            where_row[i], where_col[i] = r, start + n - 1
            start += n
        pos[r, start:] = torch.arange(width - start)  # filler: a sequence of its own, never pooled
    return {"input_ids": ids, "position_ids": pos, "rows": torch.tensor(where_row),
            "cols": torch.tensor(where_col), "real_tokens": torch.tensor(sum(lengths))}


def pair_sequences(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[Sequence[int]]:
    """[(c0, r0), (c1, r1)] → [c0, r0, c1, r1]: chosen and rejected share one forward pass."""
    return [s for pair in pairs for s in pair]


def _epoch_batches(lengths: Sequence[int], members: Sequence[int], global_batch: int, rng: random.Random,
                   group: bool) -> list[list[int]]:
    order = list(members)
    rng.shuffle(order)
    if group:  # similar lengths together, within chunks of 64 batches; batch order shuffled again
        chunk = global_batch * 64
        order = [i for c in range(0, len(order), chunk)
                 for i in sorted(order[c:c + chunk], key=lambda i: lengths[i])]
    batches = [order[b:b + global_batch] for b in range(0, len(order) - global_batch + 1, global_batch)]
    if group:
        rng.shuffle(batches)
    return batches


def batch_plan(lengths: Sequence[int], global_batch: int, num_steps: int, seed: int = 0,
               group_by_length: bool = True, repeats: Sequence[int] | None = None) -> list[list[int]]:
    """Pair indices of every optimizer step, epoch after epoch (a partial last batch is dropped).

    `repeats[i]` is how many times pair i appears in an epoch (None: once each; 0 leaves it out): an
    oversampled source repeats indices, so the pairs and anything keyed by them (the trunk store) stay as
    they are. The plan depends only on (lengths, repeats, global_batch, seed), so it is the same for any
    number of processes (each takes its slice of a step) and after a resume (the step number is the position).
    """
    if repeats is not None and len(repeats) != len(lengths):
        raise ValueError(f"repeats has {len(repeats)} entries for {len(lengths)} pairs")
    members = [i for i in range(len(lengths)) for _ in range(1 if repeats is None else repeats[i])]
    if len(members) < global_batch:
        raise ValueError(f"{len(members)} training pairs are fewer than one global batch ({global_batch})")
    plan: list[list[int]] = []
    epoch = 0
    while len(plan) < num_steps:
        plan.extend(_epoch_batches(lengths, members, global_batch, random.Random(f"{seed}:{epoch}"),
                                   group_by_length))
        epoch += 1
    return plan[:num_steps]


def steps_per_epoch(num_pairs: int, global_batch: int) -> int:
    return num_pairs // global_batch


def shard(step_pairs: Sequence[int], rank: int, world: int, accum: int) -> list[list[int]]:
    """This process's micro-batches of one step: process-major, so micro-batch k of rank r holds
    pairs [(r * accum + k) * b, ...). The set of pairs per step is independent of world size."""
    per = len(step_pairs) // (world * accum)
    base = rank * accum * per
    return [list(step_pairs[base + k * per: base + (k + 1) * per]) for k in range(accum)]


def edge_index(items) -> dict[str, torch.Tensor]:
    """The batch's preference edges as indices into its responses (winners, losers) and their margins:
    what the Bradley-Terry loss reads, for every collate path (packed, shared, trunk store)."""
    winners, losers, margins, start = [], [], [], 0
    for it in items:
        winners += [start + w for w, _ in it.edges]
        losers += [start + l for _, l in it.edges]
        margins += list(it.margins)
        start += len(it.responses)
    return {"winners": torch.tensor(winners), "losers": torch.tensor(losers),
            "margins": torch.tensor(margins, dtype=torch.float32)}
