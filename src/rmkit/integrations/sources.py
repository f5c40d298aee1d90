"""A reward source from what the user gives: the URL of an `rmkit serve` server (a `RemoteSource`), a
checkpoint path / hub id / embedded name, or a scorer already built (a `LocalSource`).

    source, folder = open_source("path/to/rm", dtype="bfloat16")       # (LocalSource, the model folder)
    source, _ = open_source("http://rm-host:8000", api_key="...")      # (RemoteSource, None)

Kept apart from `rewards` (the local source) and `client` (the remote one) so that neither imports the other.
"""
from __future__ import annotations

import os
from typing import Any

from rmkit.integrations.rewards import LocalSource, RewardSource

REMOTE_OPTIONS = ("api_key", "timeout", "retries", "backoff_s", "max_backoff_s", "batch_size", "transport")


def is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def open_source(model_or_url: Any, *, text: str = "chat", **options: Any) -> tuple[RewardSource, str | None]:
    """(source, local model folder or None). `model_or_url`: an rmkit server URL (options: api_key,
    timeout, retries, backoff_s, max_backoff_s, batch_size), a checkpoint path / hub id / embedded name
    (options: the scorer's, e.g. dtype, device, max_length, truncation), or a scorer already built."""
    remote = {k: options.pop(k) for k in REMOTE_OPTIONS if k in options}
    if is_url(model_or_url):
        from rmkit.integrations.client import RemoteSource  # httpx: only for a server URL

        if options:
            raise TypeError(f"scorer options {sorted(options)} do not apply to a server URL")
        return RemoteSource(model_or_url, text=text, **remote), None
    if remote:
        raise TypeError(f"{sorted(remote)} only apply to a server URL (http://...)")
    if isinstance(model_or_url, (str, os.PathLike)):
        from rmkit.score.scorer import RewardScorer

        scorer = RewardScorer.from_pretrained(str(model_or_url), **options)
    elif options:
        raise TypeError(f"scorer options {sorted(options)} cannot apply to a scorer already built")
    else:
        scorer = model_or_url
    folder = getattr(getattr(getattr(scorer, "model", None), "config", None), "_name_or_path", None)
    return LocalSource(scorer, text=text), folder if folder and os.path.isdir(folder) else None
