"""Word n-grams over normalised text, and the hashes rmkit's decontamination index is built from.

    >>> tokenize("Hello, World! It's 2+2.")
    ['hello', ',', 'world', '!', 'it', "'", 's', '2', '+', '2', '.']
    >>> parse_ngram_range("7-13"), parse_ngram_range(13)
    ((7, 13), (13, 13))

Normalisation: lowercase; a token is a run of word characters (`\\w+`, Unicode-aware) or one
punctuation / symbol character; whitespace separates and is dropped. The same `tokenize` is given
to sklearn's `CountVectorizer(tokenizer=tokenize)` when the benchmark compares against it.

Hashes are 64-bit polynomial hashes over token ids (numpy, wrapping arithmetic). They only find
candidates: every candidate is checked token by token against the benchmark (index.py), so a hash
collision can cost time but never flags a pair that does not share the n-gram.
"""
from __future__ import annotations

import re
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

TOKENIZERS = {"punct": re.compile(r"\w+|[^\w\s]"), "words": re.compile(r"\w+")}
""""punct": word runs and each punctuation character as its own token (default);
"words": word runs only (punctuation dropped, so symbol-heavy text such as code or lists of
literals makes fewer spurious n-grams)."""
TURNS = ("first", "user", "all")
"""Which text of a pair counts: the first user turn, every user turn, or every message
(prompt, chosen and rejected)."""
HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier (golden ratio)


def tokenize(text: str, tokens: str = "punct") -> list[str]:
    """Lowercase, then split into word runs (and single punctuation characters for "punct")."""
    return TOKENIZERS[tokens].findall(text.lower())


def tokenizer(tokens: str = "punct"):
    """A one-argument tokenize for `tokens` (what sklearn's CountVectorizer(tokenizer=) takes)."""
    if tokens not in TOKENIZERS:
        raise ValueError(f"tokens must be one of {tuple(TOKENIZERS)}, got {tokens!r}")
    return TokenizeFn(tokens)


class TokenizeFn:
    """Picklable tokenize bound to one mode."""

    def __init__(self, tokens: str):
        self.findall = TOKENIZERS[tokens].findall

    def __call__(self, text: str) -> list[str]:
        return self.findall(text.lower())


def parse_ngram_range(value: Any) -> tuple[int, int]:
    """`13` / `"13"` → (13, 13); `"7-13"` / `(7, 13)` → (7, 13)."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        lo, hi = int(value[0]), int(value[1])
    else:
        text = str(value).strip()
        parts = text.split("-") if "-" in text else [text, text]
        try:
            lo, hi = int(parts[0]), int(parts[1])
        except ValueError as e:
            raise ValueError(f"n-gram size must be N or LO-HI (e.g. 13 or 7-13), got {value!r}") from e
    if not 1 <= lo <= hi:
        raise ValueError(f"n-gram range must satisfy 1 <= lo <= hi, got {lo}-{hi}")
    return lo, hi


def _messages(pair: Any, part: str) -> Sequence[Any]:
    if type(pair) is dict or isinstance(pair, Mapping):  # type() first: typing's check is slow
        return pair[part]
    return getattr(pair, part)


def _role_content(m: Any) -> tuple[str, str]:
    if type(m) is dict or isinstance(m, Mapping):
        return m["role"], m["content"]
    return m.role, m.content


def pair_texts(pair: Any, turns: str = "first") -> list[str]:
    """The texts of a pair (a PreferencePair or its dict) that decontamination looks at."""
    if turns not in TURNS:
        raise ValueError(f"turns must be one of {TURNS}, got {turns!r}")
    if turns == "first":  # the common case, once per training row: no list of the whole prompt
        for m in _messages(pair, "prompt"):
            role, content = _role_content(m)
            if role == "user":
                return [content]
        return [""]
    prompt = [_role_content(m) for m in _messages(pair, "prompt")]
    if turns == "user":
        return [c for r, c in prompt if r == "user"]
    replies = [_role_content(m) for part in ("chosen", "rejected") for m in _messages(pair, part)]
    return [c for _, c in prompt + replies]


def invalid_prefix(ids: np.ndarray) -> np.ndarray:
    """Prefix counts of unknown / separator tokens (id < 0): window [i, i+n) is valid when
    out[i+n] - out[i] == 0."""
    out = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(ids < 0, out=out[1:])
    return out


def window_hashes(ids: np.ndarray, lo: int, hi: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (n, hashes, valid) for every n in lo..hi: the hash of each window ids[i:i+n] and
    whether it holds no negative id. Windows never span a negative id when valid is honoured."""
    x = (ids.astype(np.int64) + 1).astype(np.uint64)  # -1 → 0
    bad = invalid_prefix(ids)
    h = x.copy()
    for n in range(1, hi + 1):
        if n > len(x):
            return
        if n > 1:
            h = h[:-1] * HASH_BASE + x[n - 1:]
        if n >= lo:
            yield n, h, (bad[n:] - bad[:-n]) == 0
