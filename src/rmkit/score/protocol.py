"""The shape every scorer has (a Protocol, not a base class): conversations in, raw rewards out."""
from __future__ import annotations

from collections import Counter
from typing import Any, Protocol, Sequence, runtime_checkable

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


@runtime_checkable
class IdBackend(Protocol):
    """What a model backend implements (hf, vLLM): token ids in, raw rewards out. The conversation API
    (`Scorer`) comes from `rmkit.score.base.CONVERSATION_API` over it, the same for every backend."""

    tokenizer: Any
    config: Any
    """Carries `truncation`: the over-long policy ("error" | "skip" | "truncate")."""
    max_length: int | None
    stats: Counter
    temperature: float

    def score_ids(self, sequences: Sequence[list[int] | None], groups: Sequence[Sequence[int]] | None = None
                  ) -> list[float]:
        """One raw reward per sequence (None → NaN), in input order; `groups` share a context."""
        ...


def score_pairs_with(scorer: Scorer, pairs: Sequence[PreferencePair]) -> list[tuple[float, float]]:
    """Score chosen and rejected of every pair in one call, so they share batches."""
    convs = [p.chosen_conversation for p in pairs] + [p.rejected_conversation for p in pairs]
    r = scorer.score(convs)
    n = len(pairs)
    return list(zip(r[:n], r[n:]))
