"""Prefix-shared groups: one prompt and its k responses in one row, run once for the prompt.

    g = split_group([chosen_ids, rejected_ids])        # Group(prefix, suffixes): the shared ids, once
    batch = pack_groups([g0, g1, g2], pad_id=0)        # rows, position ids, segments, pooling indices
    mask = shared_mask(batch["segment"], batch["branch"], batch["position_ids"])  # (rows, 1, W, W) bool
    masks = attention_masks(model.config, batch, dtype=torch.float32)  # what the model's forward takes

A row holds `[prefix][response 1]...[response k]` for several groups (block-diagonal). The prefix is
causal; each response sees the prefix and its own earlier tokens, never another response; its position
ids continue from the end of the prefix; its reward is read at its own last token. For a causal model
this is the computation of running each conversation alone, token for token, so the rewards (and losses
and gradients) are those of the unshared path within float noise.

The shared prefix is the longest common prefix of the rendered ids of all k conversations (so a chat
template that merges a token across the prompt/reply boundary or rewrites an earlier turn just shares
less: sharing is exact by construction), capped so that every response keeps at least one token of its
own. A group with nothing in common runs as k separate (packed) sequences, and is counted.

Pure tensor functions, no model and no I/O: used by `rmkit.score` and `rmkit.train` alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class Group:
    """Ids shared by every response (`prefix`) and each response's own ids (`suffixes`, ≥ 1 token each)."""
    prefix: tuple[int, ...]
    suffixes: tuple[tuple[int, ...], ...]

    @property
    def length(self) -> int:
        """Tokens this group takes in a shared row."""
        return len(self.prefix) + sum(len(s) for s in self.suffixes)

    @property
    def unshared_length(self) -> int:
        """Tokens its k conversations take when each runs alone."""
        return sum(len(self.prefix) + len(s) for s in self.suffixes)

    @property
    def sequences(self) -> list[tuple[int, ...]]:
        return [self.prefix + s for s in self.suffixes]


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix all sequences share, at most (shortest - 1) tokens."""
    if not seqs:
        return 0
    limit = min(len(s) for s in seqs) - 1
    n = 0
    first = seqs[0]
    while n < limit and all(s[n] == first[n] for s in seqs[1:]):
        n += 1
    return max(n, 0)


def split_group(seqs: Sequence[Sequence[int]], share: bool = True) -> Group:
    """The group of these k sequences (k ≥ 1, each non-empty); share=False keeps them whole."""
    if not seqs or any(len(s) == 0 for s in seqs):
        raise ValueError("a group needs at least one sequence, and no empty sequence")
    n = common_prefix_length(seqs) if share and len(seqs) > 1 else 0
    return Group(tuple(seqs[0][:n]), tuple(tuple(s[n:]) for s in seqs))


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: item indices per row, each row ≤ max(capacity, longest) tokens."""
    capacity = max(capacity, max(lengths))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def pack_groups(groups: Sequence[Group], pad_id: int, row_tokens: int = 0) -> dict[str, torch.Tensor]:
    """Groups packed into rows (row_tokens=0: rows as wide as the longest group; row_tokens=-1: one group
    per row, padded to the longest, so that attention costs each group's own length squared, not the
    row's: the layout for groups already sorted by length).

    Returns input_ids, position_ids, segment (which group each token belongs to; fillers get a segment
    of their own per token), branch (0 = prefix, j = response j, from 1), rows / cols: where each
    response's last token is, in group order then response order, and spans: (row, start, end) of each
    group's contiguous tokens. Also real_tokens (tokens in the rows that are not filler) and
    unshared_tokens (what the same conversations take run alone).
    """
    rows = [[i] for i in range(len(groups))] if row_tokens < 0 else pack_rows([g.length for g in groups], row_tokens)
    width = max(sum(groups[i].length for i in r) for r in rows)
    shape = (len(rows), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    pos, seg, br = torch.zeros(shape, dtype=torch.long), torch.empty(shape, dtype=torch.long), \
        torch.zeros(shape, dtype=torch.long)
    where: dict[int, list[tuple[int, int]]] = {}
    spans = [(0, 0, 0)] * len(groups)
    for r, members in enumerate(rows):
        start = 0
        for gi in members:
            end, cols = _place(groups[gi], ids[r], pos[r], seg[r], br[r], start, gi)
            where[gi], spans[gi], start = [(r, c) for c in cols], (r, start, end), end
        filler = width - start  # each filler token is its own segment: it attends to itself only
        seg[r, start:] = -1 - torch.arange(filler) - r * width
    order = [rc for gi in range(len(groups)) for rc in where[gi]]
    return {"input_ids": ids, "position_ids": pos, "segment": seg, "branch": br,
            "rows": torch.tensor([r for r, _ in order]), "cols": torch.tensor([c for _, c in order]),
            "spans": torch.tensor(spans, dtype=torch.long).reshape(-1, 3), "real_tokens": torch.tensor(sum(g.length for g in groups)),
            "unshared_tokens": torch.tensor(sum(g.unshared_length for g in groups))}


def _place(g: Group, ids, pos, seg, br, start: int, gi: int) -> tuple[int, list[int]]:
    """Write group g into one row from `start`; returns the next free column and its pooling columns."""
    p = len(g.prefix)
    ids[start:start + p] = torch.tensor(g.prefix, dtype=torch.long)
    pos[start:start + p] = torch.arange(p)
    seg[start:start + p] = gi
    br[start:start + p] = 0
    col, cells = start + p, []
    for j, s in enumerate(g.suffixes, start=1):
        n = len(s)
        ids[col:col + n] = torch.tensor(s, dtype=torch.long)
        pos[col:col + n] = torch.arange(p, p + n)
        seg[col:col + n] = gi
        br[col:col + n] = j
        cells.append(col + n - 1)
        col += n
    return col, cells


def shared_mask(segment: torch.Tensor, branch: torch.Tensor, position_ids: torch.Tensor | None = None,
                window: int | None = None) -> torch.Tensor:
    """(rows, 1, W, W) boolean: query i may attend key j. Same group, j ≤ i, and j in the prefix or in
    i's own response; with `window`, also position(i) − position(j) < window (a sliding window counted
    in each conversation's own positions, as when it runs alone)."""
    w = segment.shape[1]
    causal = torch.ones((w, w), dtype=torch.bool, device=segment.device).tril()
    same = segment[:, :, None] == segment[:, None, :]
    key_branch = branch[:, None, :]
    visible = (key_branch == 0) | (key_branch == branch[:, :, None])
    mask = same & visible & causal
    if window is not None:
        if position_ids is None:
            raise ValueError("a sliding window needs the position ids")
        mask &= (position_ids[:, :, None] - position_ids[:, None, :]) < window
    return mask[:, None]


def takes_custom_mask(attn_implementation: str | None) -> bool:
    """Whether this attention implementation can take a custom 4D mask (flash_attention_* cannot)."""
    return not (attn_implementation or "").startswith("flash")


def additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask as the additive float mask eager attention adds to its scores (0 / dtype min)."""
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return out.masked_fill_(~mask, torch.finfo(dtype).min)


def attention_masks(config, batch: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None):
    """The custom mask the model's forward takes: a 4D tensor, or {layer type: 4D tensor} for models
    with sliding-window layers (Gemma-2, Qwen2/3 `layer_types`), whose window is kept in the mask.
    Boolean for SDPA (and flex), additive float in `dtype` for eager."""
    seg, br, pos = (batch[k].to(device) if device is not None else batch[k]
                    for k in ("segment", "branch", "position_ids"))
    impl = getattr(config, "_attn_implementation", None) or "eager"
    if not takes_custom_mask(impl):
        raise ValueError(f"{impl} cannot take a custom 4D mask; use the packed path")
    as_kind = (lambda m: m) if impl == "sdpa" else (lambda m: additive(m, dtype))
    types = list(dict.fromkeys(getattr(config, "layer_types", None) or []))
    full = shared_mask(seg, br)
    if not types:
        return as_kind(full)
    out = {}
    for t in types:
        window = getattr(config, "sliding_window", None) if t == "sliding_attention" else None
        out[t] = as_kind(full if window is None else shared_mask(seg, br, pos, window))
    return out
