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
_STRIP = {"words": re.compile(r"\W+")}


_CODE_HASH: np.ndarray | None = None


def _code_hash() -> np.ndarray:
    """A fixed random 64-bit value per Unicode code point (seeded: the same in every process)."""
    global _CODE_HASH
    if _CODE_HASH is None:
        _CODE_HASH = np.random.default_rng(0).integers(0, 2**63, 0x110000, dtype=np.uint64) * 2 + 1
    return _CODE_HASH


def _prefix(text: str) -> np.ndarray:
    """Prefix sums (wrapping) of the code points' random values: window [i, i+k) hashes to
    prefix[i+k] - prefix[i]. An order-blind sum: an anagram window also passes, which only lets an
    extra text through to the exact matcher."""
    c = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    prefix = np.zeros(len(c) + 1, dtype=np.uint64)
    np.cumsum(_code_hash()[c], out=prefix[1:])
    return prefix


def _windows(prefix: np.ndarray, k: int) -> np.ndarray:
    if len(prefix) - 1 < k:
        return np.zeros(0, dtype=np.uint64)
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

    @classmethod
    def build(cls, index) -> "Prefilter":
        """Keys from the shortest n-gram table (any longer shared n-gram contains one of those):
        the first LONG_KEY characters, or for shorter concatenations the first `short` ones,
        `short` being the shortest concatenation (two key lengths, two passes per chunk)."""
        n = min(index.tables)
        joined = ["".join(index.words[i] for i in index.ids[s:s + n])
                  for s in index.tables[n].starts.tolist()]
        short = min(len(j) for j in joined)
        cut = [j[:LONG_KEY] if len(j) >= LONG_KEY else j[:short] for j in joined]
        ends = np.cumsum([len(c) for c in cut])
        prefix = _prefix("".join(cut))  # each key's hash: a difference of prefix sums
        hashes = prefix[ends] - prefix[ends - [len(c) for c in cut]]
        lengths = np.asarray([len(c) for c in cut])
        keys = {int(k): np.unique(hashes[lengths == k]) for k in np.unique(lengths)}
        bitmaps = {}
        for k, h in keys.items():
            bitmaps[k] = np.zeros(1 << BITS, dtype=bool)
            bitmaps[k][h >> np.uint64(64 - BITS)] = True
        return cls(tokens=index.tokens, keys=keys, bitmaps=bitmaps)

    def candidates(self, texts_per_pair: Sequence[Sequence[str]]) -> np.ndarray:
        """Positions of the pairs that may share an n-gram (a superset of those that do)."""
        parts, owner = [], []
        for i, texts in enumerate(texts_per_pair):
            for t in texts:
                parts.append(strip(t, self.tokens))
                owner.append(i)
        if not parts:
            return np.zeros(0, dtype=np.int64)
        starts = np.cumsum([0] + [len(p) + 1 for p in parts[:-1]])
        prefix = _prefix("\x00".join(parts))
        hits = []
        for k, keys in self.keys.items():
            h = _windows(prefix, k)
            pos = np.nonzero(self.bitmaps[k][h >> np.uint64(64 - BITS)])[0]
            at = np.minimum(np.searchsorted(keys, h[pos]), len(keys) - 1)
            hits.append(pos[keys[at] == h[pos]])
        # a window spanning two texts is given to the first one: an extra candidate, never a miss
        text_of = np.searchsorted(starts, np.concatenate(hits), side="right") - 1
        return np.unique(np.asarray(owner, dtype=np.int64)[text_of])
