"""A run's precision and its accelerator: `start(cfg)` is the first thing `train(cfg)` does.

    acc, precision = start(cfg)      # the seeded Accelerator; precision.mode "no" | "bf16" | "fp16"

accelerate does device placement, mixed precision, gradient accumulation and distributed wrapping.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger("rmkit")


@dataclass(frozen=True)
class Precision:
    mode: str
    """The mixed precision accelerate runs ("no" | "bf16" | "fp16")."""
    info: dict
    """What was asked and why this was chosen (results.json's `data.precision`)."""
    compute_dtype: torch.dtype | None
    """bf16 under bf16 mixed precision (autocast over fp32 weights), fp16 under fp16, else None (the weights')."""


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


def make_accelerator(precision: str, grad_accum: int):
    """The run's Accelerator. In a single process, a state left by an earlier run in the same process
    (another precision, say) is reset; under `accelerate launch` the launcher's state is kept."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and AcceleratorState().num_processes == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=precision, gradient_accumulation_steps=grad_accum,
                       cpu=not torch.cuda.is_available())


def start(cfg) -> tuple[object, Precision]:
    """(the Accelerator, the precision) for `cfg.mixed_precision`, with every RNG seeded from `cfg.seed`."""
    from accelerate.utils import set_seed

    mode, info = resolve_precision(cfg.mixed_precision)
    acc = make_accelerator(mode, cfg.grad_accum)
    set_seed(cfg.seed)
    return acc, Precision(mode, info, {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode))
