"""A scorer in this process: a model on a backend (hf | vllm, imported only when chosen) or a baseline
(length | random).

    local_scorer("path/to/rm", backend="vllm", dtype="bfloat16")
    local_scorer(baseline="length")

`rmkit.score.factory.build_scorer` is the one entry point (it adds the Ray engine over this); the Ray
actors call this directly, so that the factory and the engine do not import each other.
"""
from __future__ import annotations

import importlib
from typing import Any

from rmkit.score.baselines import BASELINES

BACKENDS = {"hf": ("rmkit.score.scorer", "RewardScorer"),
            "vllm": ("rmkit.score.vllm_scorer", "VLLMScorer")}
"""Backend name → (module, class): each class implements `rmkit.score.protocol.IdBackend` and has
`from_pretrained(name_or_path, **options)`. The only place a backend is chosen."""


def backend_class(backend: str):
    """The scorer class of a backend, imported now (vLLM only when asked for)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    module, name = BACKENDS[backend]
    return getattr(importlib.import_module(module), name)


def local_scorer(model: str | None = None, baseline: str | None = None, *, seed: int = 0, backend: str = "hf",
                 **options: Any):
    if (model is None) == (baseline is None):
        raise ValueError("give exactly one of a model (--model) or a baseline scorer (--scorer length|random)")
    if baseline is not None:
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline {baseline!r}; known: {', '.join(BASELINES)}")
        return BASELINES[baseline](seed=seed) if baseline == "random" else BASELINES[baseline]()
    return backend_class(backend).from_pretrained(model, **{k: v for k, v in options.items() if v is not None})
