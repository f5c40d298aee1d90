"""Model-free scorers: the length baseline and a seeded random one (no torch).

    >>> from rmkit.data import Message
    >>> LengthScorer().score([[Message("user", "hi"), Message("assistant", "hello")]])
    [5.0]
"""
from __future__ import annotations

import hashlib
import random
from typing import Sequence

from rmkit.data.schema import Conversation, PreferencePair
from rmkit.score.protocol import score_pairs_with


def final_assistant_text(conv: Conversation) -> str:
    for m in reversed(conv):
        if m.role == "assistant":
            return m.content
    return ""


class LengthScorer:
    """Reward = number of characters of the final assistant message."""

    name = "length"

    def score(self, conversations: Sequence[Conversation]) -> list[float]:
        return [float(len(final_assistant_text(c))) for c in conversations]

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> list[tuple[float, float]]:
        return score_pairs_with(self, pairs)


class RandomScorer:
    """Reward = a uniform draw seeded by (seed, conversation text): the same input, the same reward,
    whatever the batch or order."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _one(self, conv: Conversation) -> float:
        h = hashlib.sha256(str(self.seed).encode())
        for m in conv:
            h.update(b"\x00" + m.role.encode() + b"\x01" + m.content.encode())
        return random.Random(h.digest()).random()

    def score(self, conversations: Sequence[Conversation]) -> list[float]:
        return [self._one(c) for c in conversations]

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> list[tuple[float, float]]:
        return score_pairs_with(self, pairs)


BASELINES = {"length": LengthScorer, "random": RandomScorer}
