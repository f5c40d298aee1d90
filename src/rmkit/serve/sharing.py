"""Prefix sharing for the server's micro-batches: sequences that start with the same prompt run it once.

    score = shared_score_fn(scorer)          # what the MicroBatcher calls instead of scorer.score_ids
    rewards = score([ids_a, ids_b, ids_c])   # the rewards of scorer.score_ids, in input order

The batcher pools the sequences of concurrent requests: verl's reward loop sends each of a prompt's G
rollouts as its own /classify request, OpenRLHF and rmkit's TRL client send them together. Here the
pool is sorted by ids, neighbours that share at least `min_shared` leading tokens become one group, and
the scorer runs each group's common prefix once (`RewardScorer.score_ids(groups=...)`, exact: the same
rewards as every sequence alone, within fp32 noise). A pool with nothing to share is scored as before.
"""
from __future__ import annotations

from typing import Callable, Sequence

MIN_SHARED = 16
"""Leading tokens two sequences must share to be grouped (a chat template's header alone is shorter)."""


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n, limit = 0, min(len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def prefix_groups(seqs: Sequence[Sequence[int] | None], min_shared: int = MIN_SHARED) -> list[list[int]]:
    """Indices of `seqs` grouped by a shared prefix of ≥ min_shared tokens (None entries left out).
    Sorted by ids, a sequence joins the group of its predecessor when it shares ≥ min_shared tokens
    with the group's first member; every other sequence is a group of its own. Returned in input order
    (members ascending, groups by their first member), as `RewardScorer.score` forms its groups."""
    order = sorted((i for i, s in enumerate(seqs) if s is not None), key=lambda i: tuple(seqs[i]))
    groups: list[list[int]] = []
    for i in order:
        if groups and _common(seqs[groups[-1][0]], seqs[i]) >= min_shared:
            groups[-1].append(i)
        else:
            groups.append([i])
    return sorted((sorted(g) for g in groups), key=lambda g: g[0])


def shared_score_fn(scorer, min_shared: int = MIN_SHARED) -> Callable[[Sequence[list[int]]], list[float]]:
    """A score_fn for the MicroBatcher: `scorer.score_ids` with the pool's shared prefixes grouped."""

    def score(seqs: Sequence[list[int]]) -> list[float]:
        groups = prefix_groups(seqs, min_shared)
        if all(len(g) == 1 for g in groups):
            return scorer.score_ids(seqs)
        return scorer.score_ids(seqs, groups=groups)

    return score
