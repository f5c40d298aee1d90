"""FlexAttention vs SDPA with rmkit's boolean prefix-shared mask, attention alone, on this CPU (torch 2.13).

    .venv/bin/python bench/flex_attention.py

Rows as the trainer and scorer build them (`pack_groups`): one pair group per row (the default, rows as wide
as the longest group) and three groups packed in one row. SmolLM2-135M's attention shape (9 heads of 64),
fp32, forward only; flex_attention compiled with torch.compile and a block mask from the same rule. Checks
the two agree, then times 20 calls each. Prints `name: value` lines.
"""
from __future__ import annotations

import time

import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from rmkit.models.groups import pack_groups, shared_mask, split_group

LAYOUTS = {"one group per row": [(300, 150, 120)],
           "three groups in one row": [(300, 150, 120), (200, 200, 90), (400, 60, 80)]}


def timed(fn, reps: int = 20) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps * 1000


def main() -> None:
    torch.manual_seed(0)
    compiled = torch.compile(flex_attention)
    for name, shape in LAYOUTS.items():
        groups = [split_group([[1] * p + list(range(2, 2 + c)), [1] * p + list(range(3, 3 + r))]) for p, c, r in shape]
        b = pack_groups(groups, 0, row_tokens=10 ** 6)
        seg, br, width = b["segment"][0], b["branch"][0], b["input_ids"].shape[1]

        def rule(bi, h, q, k):
            return (seg[q] == seg[k]) & (k <= q) & ((br[k] == 0) | (br[k] == br[q]))

        q, k, v = (torch.randn(1, 9, width, 64) for _ in range(3))
        mask = shared_mask(b["segment"], b["branch"])
        block = create_block_mask(rule, 1, 1, width, width, device="cpu")
        sdpa = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # noqa: E731
        flex = lambda: compiled(q, k, v, block_mask=block)  # noqa: E731
        diff = (flex() - sdpa()).abs().max().item()
        ms_sdpa, ms_flex = timed(sdpa), timed(flex)
        print(f"{name}: width {width}, max |diff| {diff:.1e}, sdpa {ms_sdpa:.1f} ms, flex {ms_flex:.1f} ms, "
              f"flex speedup {ms_sdpa / ms_flex:.2f}x")


if __name__ == "__main__":
    main()
