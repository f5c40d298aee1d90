"""What every scorer backend shares, written once: the over-long policy, conversations rendered to ids with
the chat template (no double BOS), pairs cut together, and the public API over a backend's `score_ids`.

A backend (hf: `rmkit.score.scorer.RewardScorer`, vLLM: `rmkit.score.vllm_scorer.VLLMScorer`) implements the
`IdBackend` protocol (`rmkit.score.protocol`: tokenizer, config.truncation, max_length, stats, score_ids) and
takes the conversation API from here as plain functions, so no backend subclasses another:

    class MyBackend:
        score, score_pairs, score_texts, encode, encode_texts = CONVERSATION_API
        def score_ids(self, sequences, groups=None): ...

Kept apart from the backends so that neither imports the other.
"""
from __future__ import annotations

from typing import Any, Sequence

from rmkit.data.schema import Conversation, PreferencePair, to_conversation
from rmkit.models.chat import cut_prompt, render_ids, render_text_ids


class TooLongError(ValueError):
    pass


def fit(backend, ids: list[int], conv: Conversation | None, cut: int | None = None) -> list[int] | None:
    """The over-long policy: ids that fit `backend.max_length`, or None for a skipped input (counted in
    `backend.stats`); "error" raises TooLongError; "truncate" cuts the prompt from the left."""
    limit = backend.max_length
    if limit is None or (len(ids) <= limit and not cut):
        return ids
    policy = backend.config.truncation
    if policy == "error":
        raise TooLongError(f"input of {len(ids)} tokens exceeds max_length={limit}; "
                           "use truncation='skip' or 'truncate'")
    if policy == "truncate" and conv is not None:
        fitted = cut_prompt(backend.tokenizer, ids, conv, max(len(ids) - limit, cut or 0))
        if fitted is not None:
            backend.stats["truncated"] += 1
            return fitted
    backend.stats["skipped"] += 1
    return None


def encode(backend, conversations: Sequence[Any]) -> list[list[int] | None]:
    """Ids of conversations (dicts or Messages) with the chat template, over-long policy applied."""
    return _encode_convs(backend, [to_conversation(c) for c in conversations])


def _encode_convs(backend, convs: Sequence[Conversation]) -> list[list[int] | None]:
    return [fit(backend, render_ids(backend.tokenizer, c), c) for c in convs]


def encode_texts(backend, texts: Sequence[str]) -> list[list[int] | None]:
    """Ids of fully formatted texts, tokenized as given (no chat template), over-long policy applied."""
    return [fit(backend, render_text_ids(backend.tokenizer, t), None) for t in texts]


def encode_pair(backend, pair: PreferencePair) -> tuple[list[int] | None, list[int] | None]:
    """Both sides' ids; under "truncate" the shared prompt is cut by the same amount on both sides, and a
    side skipped skips the pair."""
    convs = (pair.chosen_conversation, pair.rejected_conversation)
    ids = [render_ids(backend.tokenizer, c) for c in convs]
    limit = backend.max_length
    if limit is None or max(map(len, ids)) <= limit or backend.config.truncation != "truncate":
        fitted = [fit(backend, x, c) for x, c in zip(ids, convs)]
    else:
        cut = max(len(x) - limit for x in ids)
        fitted = [fit(backend, x, c, cut=cut) for x, c in zip(ids, convs)]
    if fitted[0] is None or fitted[1] is None:
        return None, None
    return fitted[0], fitted[1]


def score(backend, conversations: Sequence[Any]) -> list[float]:
    """One raw reward (a logit, no sigmoid) per conversation, in input order. Conversations with the same
    context (every message before the last) share its forward where the backend shares."""
    convs = [to_conversation(c) for c in conversations]
    return backend.score_ids(_encode_convs(backend, convs), groups=context_groups(convs))


def score_texts(backend, texts: Sequence[str]) -> list[float]:
    """Rewards for fully formatted texts, tokenized as given (no chat template applied)."""
    return backend.score_ids(encode_texts(backend, texts))


def score_pairs(backend, pairs: Sequence[PreferencePair]) -> list[tuple[float, float]]:
    """(chosen, rejected) rewards; both sides of a pair share batches and any prompt truncation."""
    seqs: list[list[int] | None] = []
    for p in pairs:
        seqs.extend(encode_pair(backend, p))
    r = backend.score_ids(seqs, groups=[[2 * i, 2 * i + 1] for i in range(len(pairs))])
    return list(zip(r[0::2], r[1::2]))


CONVERSATION_API = (score, score_pairs, score_texts, encode, encode_texts)
"""What a backend's class body takes: `score, score_pairs, score_texts, encode, encode_texts =
CONVERSATION_API` (functions of the backend, so they become its methods)."""


def context_groups(convs: Sequence[Conversation]) -> list[list[int]]:
    """Indices of conversations with the same context (all messages but the last), in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(convs):
        groups.setdefault(tuple(m.key() for m in c[:-1]), []).append(i)
    return list(groups.values())
