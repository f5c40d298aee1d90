"""Filters: identical replies, length limits, exact dedup, and the RM-consistency filter.

Each takes pairs and returns (kept, drops) with a reason and detail per dropped pair. The
RM-consistency filter (Skywork's trick 2) scores pairs with any `Scorer` (rmkit.score.protocol);
a model path is turned into a RewardScorer lazily, so this module never imports torch.

    kept, drops = rm_consistency(pairs, "path/to/reward-model", margin=0.0)
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Iterable, Sequence

from rmkit.data.schema import PreferencePair
from rmkit.curate.select import Drop


def _text(conv) -> str:
    return "\x1e".join(f"{m.role}\x1f{m.content}" for m in conv)


def drop_identical(pairs: Iterable[PreferencePair]) -> tuple[list[PreferencePair], list[Drop]]:
    keep, drops = [], []
    for p in pairs:
        same = _text(p.chosen).strip() == _text(p.rejected).strip()
        (drops.append((p, "identical", "chosen equals rejected")) if same else keep.append(p))
    return keep, drops


def length_limits(pairs: Iterable[PreferencePair], *, max_chars: int | None,
                  min_response_chars: int = 1) -> tuple[list[PreferencePair], list[Drop]]:
    """Drop a pair whose prompt + longer reply exceeds max_chars, or a reply that is too short."""
    keep, drops = [], []
    for p in pairs:
        prompt = sum(len(m.content) for m in p.prompt)
        replies = [sum(len(m.content.strip()) for m in side) for side in (p.chosen, p.rejected)]
        if max_chars is not None and prompt + max(replies) > max_chars:
            drops.append((p, "too_long", f"{prompt + max(replies)} chars > {max_chars}"))
        elif min(replies) < min_response_chars:
            drops.append((p, "too_short", f"reply of {min(replies)} chars < {min_response_chars}"))
        else:
            keep.append(p)
    return keep, drops


def dedup_key(p: PreferencePair) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in (p.prompt, p.chosen, p.rejected):
        h.update(_text(part).encode("utf-8") + b"\x1d")
    return h.digest()


def exact_dedup(pairs: Iterable[PreferencePair]) -> tuple[list[PreferencePair], list[Drop]]:
    """Keep the first pair of each (prompt, chosen, rejected); later copies name the first's id."""
    seen: dict[bytes, str] = {}
    keep, drops = [], []
    for p in pairs:
        key = dedup_key(p)
        if key in seen:
            drops.append((p, "duplicate", f"same as {seen[key]}"))
        else:
            seen[key] = f"{p.source}/{p.id}"
            keep.append(p)
    return keep, drops


def load_scorer(model: Any, options: dict | None = None):
    """A Scorer object as is; "length" / "random" baselines (option `seed` for random); else
    `rmkit.score.factory.build_scorer(model, **options)` (any backend; with `engine: ray`, `actors`,
    `gpus_per_actor`, `address`: a RayScorer over a pool of actors)."""
    if not isinstance(model, str):
        return model
    from rmkit.score.baselines import BASELINES
    from rmkit.score.factory import build_scorer

    options = dict(options or {})
    if model in BASELINES:
        return build_scorer(baseline=model, seed=options.get("seed", 0))
    options.setdefault("dtype", "auto")  # the CPU's fast path where measured faster; `dtype: float32` to pin
    return build_scorer(model, **options)


def rm_consistency(pairs: Sequence[PreferencePair], scorer: Any, *, margin: float = 0.0,
                   options: dict | None = None) -> tuple[list[PreferencePair], list[Drop]]:
    """Keep pairs the reward model agrees with: r(chosen) - r(rejected) > margin.

    The rewards go into `meta["rm_chosen"]` / `meta["rm_rejected"]` of kept pairs; an unscored
    pair (NaN, e.g. skipped as over-long by the scorer) is dropped as "rm_unscored"."""
    if not pairs:
        return [], []
    scorer = load_scorer(scorer, options)
    keep, drops = [], []
    for p, (rc, rr) in zip(pairs, scorer.score_pairs(list(pairs))):
        rc, rr = float(rc), float(rr)
        if math.isnan(rc) or math.isnan(rr):
            drops.append((p, "rm_unscored", "the scorer returned NaN"))
        elif rc - rr > margin:
            p.meta = {**p.meta, "rm_chosen": rc, "rm_rejected": rr}
            keep.append(p)
        else:
            drops.append((p, "rm_inconsistent", f"r(chosen)={rc:.4f} r(rejected)={rr:.4f}"))
    return keep, drops
