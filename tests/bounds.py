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


def adam_step_bound(lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> float:
    """The most one AdamW step can move one weight (weight decay 0): lr * |m_hat / sqrt(v_hat)|, which is at
    most lr * (1 - beta1) / sqrt(1 - beta2) (a lone spike after a long quiet run), and at least lr."""
    b1, b2 = betas
    return lr * max(1.0, (1 - b1) / math.sqrt(1 - b2))


def same_training(a: dict, b: dict, start: dict, *, lr: float, steps: int, rel: float = 1e-2) -> None:
    """Final weights `a`, `b` of two runs that took the same `steps` AdamW steps from the same weights
    `start`, with gradients equal up to rounding (callers compare the losses step by step first, tightly).
    Adam scales each weight's step by that weight's own gradient history, so a weight whose gradient sits at
    the rounding noise can be pushed either way at every step: elementwise, all such runs share is
    2 * steps * adam_step_bound. The bulk must agree: per tensor, |a - b| <= rel * |a - start| (Frobenius:
    the two runs' updates agree to `rel`; frozen tensors stay equal). Measured on tiny 2-3 layer Llamas: up
    to 6.9e-5 with AVX-512 kernels and 6.1e-4 on an emulated AVX2-only CPU (QEMU Haswell), where a single
    weight moved 2.2e-4 apart; a run on another data order differs by 0.85 of its update."""
    import torch

    assert a.keys() == b.keys() and a.keys() <= start.keys()
    cap = 2 * steps * adam_step_bound(lr)
    for name in a:
        x, y = a[name].float(), b[name].float()
        gap = (x - y).abs().max().item()
        assert gap <= cap, (name, gap, cap)
        apart, update = torch.linalg.vector_norm(x - y).item(), torch.linalg.vector_norm(x - start[name].float()).item()
        assert apart <= rel * update + 1e-7, (name, apart, update)


def history(run) -> list[dict]:
    """The per-step metrics (loss, grad_norm, lr, step, ...) an rmkit training run wrote to its output folder."""
    import json
    from pathlib import Path

    return [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def same_training_runs(a, b, start) -> None:
    """`same_training` for two rmkit training output folders `a`, `b` that started from the checkpoint folder
    `start`: the step count and the largest learning rate come from `a`'s metrics.jsonl."""
    from pathlib import Path

    from safetensors.torch import load_file

    a, b, start = Path(a), Path(b), Path(start)
    hist = history(a)
    same_training(load_file(a / "model" / "model.safetensors"), load_file(b / "model" / "model.safetensors"),
                  load_file(start / "model.safetensors"), lr=max(h["lr"] for h in hist), steps=hist[-1]["step"])
