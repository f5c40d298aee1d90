"""What every scorer backend shares, written once: the scorer options (`ScorerConfig`), the over-long policy,
conversations rendered to ids with the chat template (no double BOS), pairs cut together, and the public API
over a backend's `score_ids`.

A backend (hf: `rmkit.score.scorer.RewardScorer`, vLLM: `rmkit.score.vllm_scorer.VLLMScorer`) implements the
`IdBackend` protocol (`rmkit.score.protocol`: tokenizer, config.truncation, max_length, stats, score_ids) and
takes the conversation API from here as plain functions, so no backend subclasses another:

    class MyBackend:
        score, score_pairs, score_texts, encode, encode_texts = CONVERSATION_API
        def score_ids(self, sequences, groups=None): ...

Kept apart from the backends so that neither imports the other.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from rmkit.data.schema import Conversation, PreferencePair, to_conversation
from rmkit.models.chat import cut_prompt, render_ids, render_text_ids

POLICIES = ("error", "skip", "truncate")


class TooLongError(ValueError):
    pass


def option(default: Any, help: str, *, cli: Any = ..., flag: bool = True):
    """A scorer option: its default, the one line of help every CLI shows, and the CLI's default where it
    differs (`cli`). flag=False: an option of the Python API only. `rmkit.score.options` makes the flags."""
    return field(default=default, metadata={"help": help, "cli": default if cli is ... else cli, "flag": flag})


@dataclass
class ScorerConfig:
    """The scorer options, the one list: `build_scorer(**options)` takes them and every CLI's scorer flags
    are generated from them (`rmkit.score.options`). Prefix sharing ("auto") applies wherever the model
    allows it: a decoder with a `score` head, pooling "last", not flash_attention_2."""

    dtype: str = option("float32", "auto (bf16 where this CPU's bf16 matmul is measured faster, else fp32; bf16 "
                        "on CUDA) | float32 (exact reproduction) | bfloat16 | float16", cli="auto")
    attn_implementation: str | None = option(None, "the model's attention (default: its own; Gemma-2 is forced "
                                             "off SDPA to eager or flash_attention_2)")
    max_length: int | None = option(None, "longest sequence scored, in tokens [the model's limit]")
    truncation: str = option("error", "over-long input: error | skip (reward NaN / null, counted) | truncate "
                             "(the prompt cut from the left)")
    batch_tokens: int = option(8192, "padded tokens per forward (vllm: tokens per engine step)")
    max_batch_size: int = option(64, "conversations per forward (vllm: max_num_seqs) [64; vllm: its own]",
                                 cli=None)
    device: str | None = option("auto", "auto | cpu | cuda | cuda:N")
    pooling: str = option("last", "last (the last real token, from the attention mask) | hf (transformers' "
                          "rightmost-non-pad-id rule)")
    padding_side: str = option("right", "right | left", flag=False)
    trust_remote_code: bool = option(False, "run the checkpoint's own modelling code")
    show_progress: bool = option(False, "a progress bar per scoring call", cli=True, flag=False)
    sharing: str = option("auto", "prefix sharing: auto (conversations with the same context run it once; "
                          "exact, padding-free) | off")

    def __post_init__(self):
        if self.truncation not in POLICIES:
            raise ValueError(f"truncation must be one of {POLICIES}, got {self.truncation!r}")
        if self.pooling not in ("last", "hf"):
            raise ValueError("pooling must be 'last' or 'hf'")
        if self.padding_side not in ("left", "right"):
            raise ValueError("padding_side must be 'left' or 'right'")
        if self.sharing not in ("auto", "off"):
            raise ValueError("sharing must be 'auto' or 'off'")
        if self.batch_tokens <= 0 or self.max_batch_size <= 0:
            raise ValueError("batch_tokens and max_batch_size must be positive")


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
