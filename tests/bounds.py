"""Tolerances derived from the bound they rest on, for comparing two computation paths (another batch,
packed or shared rows, another kernel, another process): a test never asks more of a quantity computed
from rewards than the rewards' own bound allows.

    assert_close(loss, ref_loss, atol=loss_bound(ref_rewards), rtol=0)
    flips = same_decisions(ref_pairs, got_pairs, bound=1e-5)   # decisions agree beyond the near ties
"""
from __future__ import annotations

import math
from typing import Sequence


def loss_bound(rewards, atol: float = 1e-5, rtol: float = 1e-5) -> float:
    """What a rewards bound of atol + rtol * |r| allows the Bradley-Terry loss: a mean of softplus(r_rejected
    - r_chosen) (1-Lipschitz) moves by at most |Δr_chosen| + |Δr_rejected|."""
    return 2 * (atol + rtol * float(rewards.detach().abs().max()))


def same_decisions(ref: Sequence[tuple[float, float]], got: Sequence[tuple[float, float]], bound: float) -> int:
    """Checks two paths' (chosen, rejected) rewards agree within `bound` and their chosen > rejected
    decisions agree wherever the margin exceeds 2 * bound (there no noise within the bound can flip it).
    Returns how many pairs are near ties, whose decision either path may make: the most by which a
    count of right decisions may differ."""
    assert len(ref) == len(got)
    near = 0
    for i, ((c, r), (c2, r2)) in enumerate(zip(ref, got)):
        if any(math.isnan(x) for x in (c, r, c2, r2)):
            assert [math.isnan(x) for x in (c, r)] == [math.isnan(x) for x in (c2, r2)], i
            continue
        assert abs(c - c2) <= bound and abs(r - r2) <= bound, (i, (c, r), (c2, r2), bound)
        if abs(c - r) <= 2 * bound:
            near += 1
        else:
            assert (c > r) == (c2 > r2), (i, (c, r), (c2, r2))
    return near
