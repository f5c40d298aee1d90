"""Build a scorer from CLI-style arguments: a model path / hub id / embedded name, or a baseline."""
from __future__ import annotations

from typing import Any

BACKENDS = ("hf", "vllm")


def build_scorer(model: str | None = None, baseline: str | None = None, *, seed: int = 0,
                 backend: str = "hf", engine: str = "local", actors: int = 2, gpus_per_actor: float = 0,
                 address: str | None = None, **options: Any):
    """`model` → RewardScorer.from_pretrained(model, backend=backend, **options); `baseline` → length |
    random (no model, so no backend). engine="ray": the same scorer in each of `actors` Ray actors
    (`RayScorer`; `address` or RAY_ADDRESS joins a cluster, else a local Ray starts)."""
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if engine == "ray" and model is not None:
        from rmkit.score.ray_engine import RayScorer

        return RayScorer(model, {k: v for k, v in options.items() if v is not None}, backend=backend,
                         actors=actors, num_gpus=gpus_per_actor, address=address)
    from rmkit.score.local import local_scorer

    return local_scorer(model, baseline, seed=seed, backend=backend, **options)
