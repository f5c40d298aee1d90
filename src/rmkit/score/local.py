"""A scorer in this process: a model on a backend (hf | vllm, loaded lazily) or a baseline (length | random).

    local_scorer("path/to/rm", backend="vllm", dtype="bfloat16")
    local_scorer(baseline="length")

`rmkit.score.factory.build_scorer` is the one entry point (it adds the Ray engine over this); the Ray
actors call this directly, so that the factory and the engine do not import each other.
"""
from __future__ import annotations

from typing import Any

from rmkit.score.baselines import BASELINES


def local_scorer(model: str | None = None, baseline: str | None = None, *, seed: int = 0, backend: str = "hf",
                 **options: Any):
    if (model is None) == (baseline is None):
        raise ValueError("give exactly one of a model (--model) or a baseline scorer (--scorer length|random)")
    if baseline is not None:
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline {baseline!r}; known: {', '.join(BASELINES)}")
        return BASELINES[baseline](seed=seed) if baseline == "random" else BASELINES[baseline]()
    from rmkit.score.scorer import RewardScorer

    return RewardScorer.from_pretrained(model, backend=backend,
                                        **{k: v for k, v in options.items() if v is not None})
