"""The shape every scorer has (a Protocol, not a base class): conversations in, raw rewards out."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from rmkit.data.schema import Conversation, PreferencePair


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, conversations: Sequence[Conversation]) -> list[float]:
        """One raw reward (a logit, no sigmoid) per conversation, in input order."""
        ...

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> list[tuple[float, float]]:
        """(chosen reward, rejected reward) per pair, in input order."""
        ...


def score_pairs_with(scorer: Scorer, pairs: Sequence[PreferencePair]) -> list[tuple[float, float]]:
    """Score chosen and rejected of every pair in one call, so they share batches."""
    convs = [p.chosen_conversation for p in pairs] + [p.rejected_conversation for p in pairs]
    r = scorer.score(convs)
    n = len(pairs)
    return list(zip(r[:n], r[n:]))
