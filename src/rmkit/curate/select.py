"""Selection: per-category top-k by score after per-source offsets, and per-source quotas.

    keep, drop = top_k_per_category(pairs, {"math": 0.3, "code": 0.3, "other": 0.1},
                                    offsets={"magpie_air": -0.1, "magpie_pro": -0.05})

Pure functions over PreferencePairs; ties in score are broken by a seeded hash of the pair id, so
the result depends on the seed and the data, never on input order.
"""
from __future__ import annotations

import hashlib
import math
import random
from typing import Mapping, Sequence

from rmkit.data.schema import PreferencePair

Drop = tuple[PreferencePair, str, str]  # (pair, reason, detail)


def tie_break(pair_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}\x00{pair_id}".encode(), digest_size=8).digest(),
                          "big")


def quota_count(k: float, n: int) -> int:
    """k >= 1: a count; 0 < k < 1: a fraction of n (rounded half up)."""
    return min(n, int(k)) if k >= 1 else min(n, math.floor(k * n + 0.5))


def ranking_score(pair: PreferencePair, key: str, offsets: Mapping[str, float]) -> float | None:
    value = pair.meta.get(key)
    if value is None:
        return None
    return float(value) + offsets.get(pair.source, 0.0)


def top_k_per_category(pairs: Sequence[PreferencePair], per_category: Mapping[str, float], *,
                       offsets: Mapping[str, float] | None = None, key: str = "armorm_mean",
                       seed: int = 0) -> tuple[list[PreferencePair], list[Drop]]:
    """Keep the best `per_category[c]` pairs of each category c by meta[key] + offset[source].

    A category not named in `per_category` falls under "other" when that is named; a pair without
    the score, or in a category with no quota, is dropped with its reason. Kept pairs stay in
    input order."""
    offsets = offsets or {}
    groups: dict[str, list[tuple[float, int, int]]] = {}
    drops: list[Drop] = []
    for i, p in enumerate(pairs):
        cat = p.category if p.category in per_category else "other"
        score = ranking_score(p, key, offsets)
        if score is None:
            drops.append((p, "no_score", f"meta[{key!r}] missing"))
        elif cat not in per_category:
            drops.append((p, "no_category_quota", f"category {p.category!r}"))
        else:
            groups.setdefault(cat, []).append((score, tie_break(p.id, seed), i))
    keep: set[int] = set()
    for cat, items in groups.items():
        items.sort(key=lambda t: (-t[0], t[1]))
        n = quota_count(per_category[cat], len(items))
        keep.update(i for _, _, i in items[:n])
        floor = f"kept minimum {items[n - 1][0]:.4f}" if n else "quota 0"
        drops.extend((pairs[i], "below_top_k", f"{cat}: score {s:.4f} below {floor}")
                     for s, _, i in items[n:])
    return [p for i, p in enumerate(pairs) if i in keep], drops


def apply_quota(pairs: Sequence[PreferencePair], quota: int | None, seed: int
                ) -> tuple[list[PreferencePair], list[Drop]]:
    """A seeded sample of `quota` pairs (input order kept); the rest dropped as over quota."""
    if quota is None or len(pairs) <= quota:
        return list(pairs), []
    chosen = set(random.Random(seed).sample(range(len(pairs)), quota))
    keep = [p for i, p in enumerate(pairs) if i in chosen]
    drops = [(p, "over_quota", f"quota {quota} of {len(pairs)}")
             for i, p in enumerate(pairs) if i not in chosen]
    return keep, drops
