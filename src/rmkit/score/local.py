"""A scorer in this process: a model on a backend (hf | vllm, imported only when chosen) or a baseline
(length | random).

    local_scorer("path/to/rm", backend="vllm", dtype="bfloat16")
    local_scorer(baseline="length")
    local_scorer("path/to/dpo-policy", ref_model="path/to/reference", beta=0.1)   # a DPO model's implicit reward

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
    options = {k: v for k, v in options.items() if v is not None}
    dpo = {k: options.pop(k) for k in DPO_OPTIONS if k in options}
    if dpo:
        return dpo_scorer(model, backend, **dpo, **options)
    return backend_class(backend).from_pretrained(model, **options)


DPO_OPTIONS = ("ref_model", "ref_free", "beta")
"""The options that make `model` a DPO policy scored by its implicit reward (`rmkit.score.dpo`)."""


def dpo_scorer(model: str, backend: str, ref_model: str | None = None, ref_free: str | None = None,
               beta: float | None = None, **options: Any):
    """β·(log π(y|x) − log π_ref(y|x)) of the policy `model` against `ref_model` (or a reference-free variant)."""
    if backend != "hf":
        raise ValueError(f"DPO implicit rewards (--ref-model / --ref-free) run on backend hf, not {backend!r}")
    from rmkit.score.dpo import DPOScorer

    return DPOScorer.from_pretrained(model, ref_model, beta=1.0 if beta is None else beta, ref_free=ref_free,
                                     **options)
