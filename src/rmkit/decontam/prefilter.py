"""A character-level prefilter that rules out most training texts before they are tokenised.

If a training text shares a benchmark n-gram g = (t1 .. tn), then the text, lowercased and with
whitespace removed (for tokens="words": with every non-word character removed), contains the
concatenation t1 t2 .. tn, because consecutive tokens are only ever separated by characters that
removal deletes. So it contains the first K characters of that concatenation. The prefilter keeps one
such key per benchmark n-gram (K = 24, or the length of the shortest concatenation when shorter)
and passes a text when any of its K-character windows is a key: a necessary condition, checked
with numpy over a whole chunk (a sum of per-character random values over each window, a bitmap,
then the sorted keys). Hash collisions only let extra texts through to the exact matcher.

    pre = Prefilter.build(index)
    maybe = pre.candidates(texts_per_pair)   # positions of pairs that may match
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

LONG_KEY = 24
BITS = 20  # 1 Mi-slot bitmaps (cache-sized): a cheap first test before the exact key lookup
HASH = np.uint64  # window hashes (32-bit ones were barely faster and let more texts through)
_SHIFT = HASH(64 - BITS)
_LOW = HASH((1 << BITS) - 1)
_STRIP = {"words": re.compile(r"\W+")}


_CODE_HASH: np.ndarray | None = None


def _code_hash() -> np.ndarray:
    """A fixed random 64-bit value per Unicode code point (seeded: the same in every process)."""
    global _CODE_HASH
    if _CODE_HASH is None:
        _CODE_HASH = np.random.default_rng(0).integers(0, 2**63, 0x110000, dtype=HASH) * HASH(2) + HASH(1)
    return _CODE_HASH


def _prefix(text: str) -> np.ndarray:
    """Prefix sums (wrapping) of the code points' random values: window [i, i+k) hashes to
    prefix[i+k] - prefix[i]. An order-blind sum: an anagram window also passes, which only lets an
    extra text through to the exact matcher."""
    c = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    prefix = np.zeros(len(c) + 1, dtype=HASH)
    np.cumsum(_code_hash()[c], out=prefix[1:])
    return prefix


def _windows(prefix: np.ndarray, k: int) -> np.ndarray:
    if len(prefix) - 1 < k:
        return np.zeros(0, dtype=HASH)
    return prefix[k:] - prefix[:-k]


def strip(text: str, tokens: str) -> str:
    """Lowercase; drop whitespace ("punct") or every non-word character ("words")."""
    if tokens == "punct":
        return "".join(text.lower().split())  # str.split() splits on exactly what \s matches
    return _STRIP[tokens].sub("", text.lower())


@dataclass
class Prefilter:
    tokens: str
    keys: dict[int, np.ndarray]      # key length → sorted hashes of the keys of that length
    bitmaps: dict[int, np.ndarray]   # key length → presence over the top BITS bits of the hashes
    lows: dict[int, np.ndarray] | None = None  # ... and over the low BITS bits (a second test)

    @classmethod
    def build(cls, index) -> "Prefilter":
        """Keys from the shortest n-gram table (any longer shared n-gram contains one of those):
        the first LONG_KEY characters, or for shorter concatenations the first `short` ones,
        `short` being the shortest concatenation (two key lengths, two passes per chunk)."""
        n = min(index.tables)
        ids, words = index.ids.tolist(), index.words  # Python ints: no numpy scalar per token
        joined = ["".join([words[i] for i in ids[s:s + n]]) for s in index.tables[n].starts.tolist()]
        short = min(map(len, joined))
        cut = [j[:LONG_KEY] if len(j) >= LONG_KEY else j[:short] for j in joined]
        lengths = np.fromiter(map(len, cut), dtype=np.int64, count=len(cut))
        ends = np.cumsum(lengths)
        prefix = _prefix("".join(cut))  # each key's hash: a difference of prefix sums
        hashes = prefix[ends] - prefix[ends - lengths]
        keys = {int(k): np.unique(hashes[lengths == k]) for k in np.unique(lengths)}
        bitmaps, lows = {}, {}
        for k, h in keys.items():
            bitmaps[k] = np.zeros(1 << BITS, dtype=bool)
            bitmaps[k][h >> _SHIFT] = True
            lows[k] = np.zeros(1 << BITS, dtype=bool)
            lows[k][h & _LOW] = True
        return cls(tokens=index.tokens, keys=keys, bitmaps=bitmaps, lows=lows)

    def candidates(self, texts_per_pair: Sequence[Sequence[str]]) -> np.ndarray:
        """Positions of the pairs that may share an n-gram (a superset of those that do)."""
        flat = [t for texts in texts_per_pair for t in texts]
        if not flat:
            return np.zeros(0, dtype=np.int64)
        owner = np.repeat(np.arange(len(texts_per_pair), dtype=np.int64),
                          [len(texts) for texts in texts_per_pair])
        codes, starts = _stripped_codes(flat, self.tokens)
        prefix = np.zeros(len(codes) + 1, dtype=HASH)
        np.cumsum(_code_hash()[codes], out=prefix[1:])
        hits = []
        for k, keys in self.keys.items():
            h = _windows(prefix, k)
            pos = np.nonzero(self.bitmaps[k][h >> _SHIFT])[0]
            if self.lows is not None:
                pos = pos[self.lows[k][h[pos] & _LOW]]
            at = np.minimum(np.searchsorted(keys, h[pos]), len(keys) - 1)
            hits.append(pos[keys[at] == h[pos]])
        # a window spanning two texts is given to the first one: an extra candidate, never a miss
        text_of = np.searchsorted(starts, np.concatenate(hits), side="right") - 1
        return np.unique(owner[text_of])


_SPACE: np.ndarray | None = None


def _space() -> np.ndarray:
    """Per code point: whether `str.split()` (and regex `\\s`) treats it as whitespace."""
    global _SPACE
    if _SPACE is None:
        _SPACE = np.zeros(0x110000, dtype=bool)
        _SPACE[[i for i in range(0x3001) if chr(i).isspace()]] = True  # none above U+3000
    return _SPACE


def _stripped_codes(texts: list[str], tokens: str) -> tuple[np.ndarray, np.ndarray]:
    """(code points of the stripped texts joined by NUL, where each text starts). For "punct" the
    whole chunk is lowercased and stripped at once (the NUL between texts is neither cased nor
    case-ignorable, so lowercasing the join equals joining the lowercased texts); otherwise, or
    when a text holds a NUL itself, text by text."""
    joined = "\x00".join(texts)
    if tokens == "punct" and joined.count("\x00") == len(texts) - 1:
        codes = np.frombuffer(joined.lower().encode("utf-32-le"), dtype=np.uint32)
        codes = codes[~_space()[codes]]
        return codes, np.concatenate([[0], np.nonzero(codes == 0)[0] + 1])
    parts = [strip(t, tokens) for t in texts]
    starts = np.cumsum([0] + [len(p) + 1 for p in parts[:-1]])
    return np.frombuffer("\x00".join(parts).encode("utf-32-le"), dtype=np.uint32), starts
