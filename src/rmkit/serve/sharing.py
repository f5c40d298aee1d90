"""Prefix sharing for the server's micro-batches: sequences that start with the same prompt run it once.

    score = shared_score_fn(scorer)          # what the MicroBatcher calls instead of scorer.score_ids
    rewards = score([ids_a, ids_b, ids_c])   # the rewards of scorer.score_ids, in input order

The batcher pools the sequences of concurrent requests: verl's reward loop sends each of a prompt's G
rollouts as its own /classify request, OpenRLHF one rollout per /get_reward request. Here the pool is
sorted by ids and cut into the groups of neighbours that save the most shared leading tokens (at least
`min_shared` each), and the scorer runs each group's common prefix once (`RewardScorer.score_ids(groups=
...)`, exact: the same rewards as every sequence alone, within fp32 noise). A pool with nothing to share
is scored as before.
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
    """Indices of `seqs` (None entries left out) cut into groups that save the most prompt tokens.

    Sorted by ids, neighbours share their longest common prefix; a run of neighbours sharing at least
    `min_shared` tokens may become one group, which runs its common prefix (the smallest neighbour
    overlap in the run) once and so saves (size - 1) x that prefix. A dynamic programme over the sorted
    order picks the cut with the largest saving: a chat template's system header common to every request
    no longer pulls two prompts' rollouts into one group that shares only the header. Returned in input
    order (members ascending, groups by their first member), as `RewardScorer.score` forms its groups."""
    order = sorted((i for i, s in enumerate(seqs) if s is not None), key=lambda i: tuple(seqs[i]))
    n = len(order)
    overlap = [_common(seqs[order[k]], seqs[order[k + 1]]) for k in range(n - 1)]
    best, start = [0] * (n + 1), list(range(-1, n))  # best[j]: saving over order[:j]; start[j]: its last group
    for j in range(1, n + 1):
        best[j], start[j] = best[j - 1], j - 1
        shared = None
        for i in range(j - 2, -1, -1):  # the last group is order[i:j]
            shared = overlap[i] if shared is None else min(shared, overlap[i])
            if shared < min_shared:
                break
            if best[i] + (j - 1 - i) * shared > best[j]:
                best[j], start[j] = best[i] + (j - 1 - i) * shared, i
    groups, j = [], n
    while j > 0:
        groups.append(sorted(order[start[j]:j]))
        j = start[j]
    return sorted(groups, key=lambda g: g[0])


def shared_score_fn(scorer, min_shared: int = MIN_SHARED) -> Callable[[Sequence[list[int]]], list[float]]:
    """A score_fn for the MicroBatcher: `scorer.score_ids` with the pool's shared prefixes grouped."""

    def score(seqs: Sequence[list[int]]) -> list[float]:
        groups = prefix_groups(seqs, min_shared)
        if all(len(g) == 1 for g in groups):
            return scorer.score_ids(seqs)
        return scorer.score_ids(seqs, groups=groups)

    return score
