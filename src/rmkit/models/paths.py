"""Where rmkit keeps what it builds, and how a built folder appears: whole or not at all.

    cache_dir()                      # $RMKIT_CACHE, default ~/.cache/rmkit
    build_folder(out, fill)          # fill(tmp) beside `out`, then `out` replaced by it in one rename
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("RMKIT_CACHE", Path.home() / ".cache" / "rmkit"))



def build_folder(out: Path, fill) -> Path:
    """fill(tmp) in a fresh folder beside `out`, which then replaces `out` whole (never half-written)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fill(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
