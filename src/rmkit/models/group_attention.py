"""Attention paid per group, not per packed row: prefix-shared groups through causal attention kernels.

    layout = GroupLayout.of(batch, groups)              # batch = pack_groups(groups, pad, row_tokens)
    with group_attention(model):                          # the layers' attention reads `layout` as its mask
        hidden = run_layers(stack, config, hidden, layout, batch["position_ids"], range(k))

A prefix-shared group is `[prefix][response 1]...[response k]`: the prefix and response 1 form one causal
sequence, and response j > 1 attends to the prefix and to itself. A 4D mask over a packed row makes the
attention kernel score every query against every key of the row (width squared, most of it masked away).
Here each group's attention is computed on its own tokens only: `prefix + response 1` through the causal
kernel (`is_causal=True`: the masked half is skipped), and each further response's queries against the
prefix keys and its own (a small `n x (p + n)` mask). The softmax runs over the same keys as under the 4D
mask, so the outputs are the same within float noise (rule 9), in the forward and in the backward; the
matmuls around attention see the same rows, so a batch can be one padding-free row of many groups.

Supported: decoders whose attention is plain scaled dot-product over every earlier key (Llama, Qwen2/3 with
full attention in every layer). Sliding windows (Gemma-2, Mistral), logit soft-capping (Gemma-2) and other
models keep the 4D mask path: `supports(config)` says which, and callers count the fallback. It runs on the
CPU only (`per_group`): its loop of small kernels per group and layer is launch-bound on a GPU (measured on an
H200: the shared scorer at 5.7k tokens/s against 117k for the unshared one), where SDPA's kernels take the
4D mask (rows no wider than the longest group) at full speed.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

NAME = "rmkit_groups"
ONE_ROW = 10 ** 9
"""`pack_groups` row_tokens for one padding-free row."""
TYPES = ("llama", "qwen2", "qwen3")


@dataclass(frozen=True)
class GroupLayout:
    """Where each group sits in the batch: (row, start column, prefix length, response lengths)."""
    spans: tuple[tuple[int, int, int, tuple[int, ...]], ...]
    rows: int
    width: int

    @classmethod
    def of(cls, batch: dict, groups: Sequence) -> "GroupLayout":
        spans = tuple((int(r), int(s), len(g.prefix), tuple(len(x) for x in g.suffixes))
                      for (r, s, _), g in zip(batch["spans"].tolist(), groups))
        return cls(spans, *batch["input_ids"].shape)


def supports(config) -> bool:
    """Whether `config`'s attention is what `attend` computes (else: the 4D mask path)."""
    if getattr(config, "model_type", "") not in TYPES:
        return False
    if getattr(config, "attn_logit_softcapping", None) or getattr(config, "use_sliding_window", False):
        return False
    return all(t == "full_attention" for t in (getattr(config, "layer_types", None) or []))


def per_group(config, device) -> bool:
    """Whether attention runs per group here: a model `supports` allows, on the CPU."""
    return supports(config) and torch.device(device).type == "cpu"


def _sdpa(q, k, v, scale, mask=None, causal=False):
    # grouped-query attention (each kv head serves several query heads) without copying the keys and values
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale,
                                          enable_gqa=k.shape[1] != q.shape[1])


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, layout: GroupLayout,
           scale: float | None = None) -> torch.Tensor:
    """(rows, heads, W, d) queries, (rows, kv heads, W, d) keys / values -> (rows, heads, W, d) outputs,
    group by group; filler columns get zeros (nothing reads them)."""
    pieces: list[list[torch.Tensor]] = [[] for _ in range(layout.rows)]
    ends = [0] * layout.rows
    for row, start, p, suffixes in sorted(layout.spans):
        q, k, v = (t[row:row + 1] for t in (query, key, value))
        first = start + p + suffixes[0]
        pieces[row].append(_sdpa(q[:, :, start:first], k[:, :, start:first], v[:, :, start:first], scale,
                                 causal=True))
        col = first
        for n in suffixes[1:]:
            keys = torch.cat([k[:, :, start:start + p], k[:, :, col:col + n]], dim=2)
            vals = torch.cat([v[:, :, start:start + p], v[:, :, col:col + n]], dim=2)
            mask = torch.ones((n, p + n), dtype=torch.bool, device=q.device)
            mask[:, p:] = mask[:, p:].tril()
            pieces[row].append(_sdpa(q[:, :, col:col + n], keys, vals, scale, mask=mask))
            col += n
        ends[row] = col
    out = []
    for row in range(layout.rows):
        filler = layout.width - ends[row]
        if filler:
            pieces[row].append(query.new_zeros((1, query.shape[1], filler, query.shape[3])))
        out.append(torch.cat(pieces[row], dim=2))
    return torch.cat(out, dim=0)


def attention_function(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' attention-interface signature: `attention_mask` is the batch's `GroupLayout`."""
    if not isinstance(attention_mask, GroupLayout):
        raise TypeError(f"{NAME} attention takes a GroupLayout as its mask, got {type(attention_mask).__name__}")
    out = attend(query, key, value, attention_mask, scaling)
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, attention_function)


@contextlib.contextmanager
def group_attention(*modules):
    """Within the block, the attention of every layer under `modules` is `attention_function` (each
    distinct config object found is switched, then restored)."""
    register()
    configs = {}
    for module in modules:
        for m in module.modules():
            cfg = getattr(m, "config", None)
            if cfg is not None and hasattr(cfg, "_attn_implementation"):
                configs[id(cfg)] = cfg
    saved = {i: c._attn_implementation for i, c in configs.items()}
    try:
        for c in configs.values():
            c._attn_implementation = NAME
        yield
    finally:
        for i, c in configs.items():
            c._attn_implementation = saved[i]


def run_layers(stack, config, hidden: torch.Tensor, masks, position_ids: torch.Tensor,
               layers: Sequence[int]) -> torch.Tensor:
    """Decoder layers `layers` of `stack` on `hidden` (rows, W, H) with a custom mask (or per-type masks)."""
    position_embeddings = stack.rotary_emb(hidden, position_ids)
    types = getattr(config, "layer_types", None)
    for i in layers:
        mask = masks[types[i]] if isinstance(masks, dict) else masks
        hidden = stack.layers[i](hidden, attention_mask=mask, position_embeddings=position_embeddings,
                                 position_ids=position_ids)
    return hidden


def layered(part, config, batch: dict, groups: Sequence, hidden: torch.Tensor, layers) -> torch.Tensor:
    """`layers` of `part` on `hidden` for the groups of `batch`: attention per group (`group_attention`)
    where the model's attention allows it, else through the 4D mask."""
    device = hidden.device
    position_ids = batch["position_ids"].to(device)
    if per_group(config, device):
        with group_attention(*[part.layers[i] for i in layers]):
            return run_layers(part, config, hidden, GroupLayout.of(batch, groups), position_ids, layers)
    from rmkit.models.groups import attention_masks

    masks = attention_masks(config, batch, dtype=hidden.dtype, device=device)
    return run_layers(part, config, hidden, masks, position_ids, layers)


def row_tokens_for(config, device) -> int:
    """Row width for a batch of groups: one padding-free row where attention runs per group, else one group
    per row (a 4D mask costs the row's width squared)."""
    return ONE_ROW if per_group(config, device) else -1
