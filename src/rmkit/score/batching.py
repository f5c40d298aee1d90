"""Length-sorted, token-budget batches: few pad tokens, bounded memory, results back in input order.

    >>> token_budget_batches([5, 100, 7, 98], budget=200)
    [[1, 3], [2, 0]]
"""
from __future__ import annotations

from typing import Iterable, Sequence


def token_budget_batches(lengths: Sequence[int], budget: int, max_batch_size: int = 256
                         ) -> list[list[int]]:
    """Group indices, longest first, so that batch_size × longest_in_batch ≤ budget.

    A sequence longer than the budget rides alone. Ties in length keep input order (stable sort).
    """
    if budget <= 0:
        raise ValueError("budget must be positive")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]  # longest first: batch width is fixed
        if current and ((len(current) + 1) * width > budget or len(current) >= max_batch_size):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def padded_tokens(lengths: Sequence[int], batches: list[list[int]]) -> int:
    """Tokens a padded forward computes over for these batches (real + pad)."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def progress(batches: list, show: bool, desc: str) -> Iterable:
    """`batches` as they are, or behind a tqdm bar (one step a batch) when `show`."""
    if not show:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc=desc, unit="batch", total=len(batches))
