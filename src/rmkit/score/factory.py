"""The one way to build a scorer: a model path / hub id / embedded name on a backend, or a baseline.

    build_scorer("smollm2-135m-rm")                                  # hf (transformers), this process
    build_scorer(M, backend="vllm", dtype="bfloat16")                # vLLM's engine: the same ids and logits
    build_scorer(M, engine="ray", actors=4, gpus_per_actor=1)        # the same scorer in Ray actors
    build_scorer(baseline="length")                                  # no model

Every CLI (eval, score, serve, calibrate, curate's rm filter) and integration builds through it; the
scorer options are `rmkit.score.config.ScorerConfig`'s (hf) or `VLLMConfig`'s (vllm).
"""
from __future__ import annotations

from typing import Any

from rmkit.score.local import BACKENDS, local_scorer  # noqa: F401 - BACKENDS: the names the CLIs offer


def build_scorer(model: str | None = None, baseline: str | None = None, *, seed: int = 0,
                 backend: str = "hf", engine: str = "local", actors: int = 2, gpus_per_actor: float = 0,
                 address: str | None = None, **options: Any):
    """`model` on `backend` (hf | vllm) with `options`; `baseline` → length | random (no model, so no
    backend). engine="ray": the same scorer in each of `actors` Ray actors (`RayScorer`; `address` or
    RAY_ADDRESS joins a cluster, else a local Ray starts)."""
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if engine == "ray" and model is not None:
        from rmkit.score.ray_engine import RayScorer

        return RayScorer(model, {k: v for k, v in options.items() if v is not None}, backend=backend,
                         actors=actors, num_gpus=gpus_per_actor, address=address)
    return local_scorer(model, baseline, seed=seed, backend=backend, **options)
