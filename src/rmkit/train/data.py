"""Training data: load sources, hold out whole prompts, render pairs to ids under the over-long policy.

    pairs, skipped = load_sources(["pairs.jsonl"], format="auto", errors="skip")
    train, held = heldout_split(pairs, n=600, seed=0)
    encoded, stats = encode_pairs(tokenizer, train, max_length=1024, policy="truncate")

The policy is the scorer's (`rmkit.score.ScorerConfig.truncation`): "error" raises, "skip" drops and
counts, "truncate" cuts the shared prompt from the left by the same amount on both sides (keeping a
leading BOS) and never touches a response. A pair whose sides are identical (after any cut) is
skipped and counted: it carries no preference and zero gradient.
"""
from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from rmkit.data import PreferencePair, load_pairs
from rmkit.models.chat import cut_prompt, render_ids


class PairTooLongError(ValueError):
    pass


@dataclass(frozen=True)
class EncodedPair:
    chosen: tuple[int, ...]
    rejected: tuple[int, ...]
    margin: float = 0.0

    @property
    def length(self) -> int:
        return len(self.chosen) + len(self.rejected)


def load_sources(sources: Sequence[str], *, format: str = "auto", errors: str = "skip"
                 ) -> tuple[list[PreferencePair], Counter]:
    skipped: Counter = Counter()
    pairs: list[PreferencePair] = []
    for src in sources:
        pairs.extend(load_pairs(src, format=format, errors=errors, skipped=skipped))
    return pairs, skipped


def prompt_key(pair: PreferencePair) -> str:
    text = "\x1e".join(f"{m.role}\x1f{m.content}" for m in pair.prompt)
    return hashlib.sha256(text.encode()).hexdigest()


def heldout_split(pairs: Sequence[PreferencePair], n: int, seed: int = 0
                  ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Hold out ≥ n pairs as whole prompt groups (no prompt on both sides), chosen with `seed`."""
    if n <= 0:
        return list(pairs), []
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(prompt_key(p), []).append(i)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    held: set[int] = set()
    for k in keys:
        if len(held) >= n:
            break
        held.update(groups[k])
    return ([p for i, p in enumerate(pairs) if i not in held], [p for i, p in enumerate(pairs) if i in held])


def encode_pair(tokenizer, pair: PreferencePair, max_length: int, policy: str, stats: Counter
                ) -> tuple[list[int], list[int]] | None:
    """(chosen ids, rejected ids) that fit `max_length` under `policy`, or None (counted in stats)."""
    convs = (pair.chosen_conversation, pair.rejected_conversation)
    ids = [render_ids(tokenizer, c) for c in convs]
    cut = max(len(x) for x in ids) - max_length
    if cut > 0:
        if policy == "error":
            raise PairTooLongError(f"pair {pair.id}: {max(map(len, ids))} tokens > max_length={max_length}; "
                                   "use truncation=skip or truncation=truncate")
        fitted = [cut_prompt(tokenizer, x, c, cut) for x, c in zip(ids, convs)] if policy == "truncate" \
            else [None, None]
        if fitted[0] is None or fitted[1] is None:
            stats["skipped_too_long"] += 1
            return None
        stats["truncated"] += 1
        ids = fitted
    if ids[0] == ids[1]:
        stats["skipped_identical"] += 1
        return None
    return ids[0], ids[1]


def encode_pairs(tokenizer, pairs: Sequence[PreferencePair], *, max_length: int, policy: str,
                 margin_key: str | None = None) -> tuple[list[EncodedPair], Counter]:
    stats: Counter = Counter()
    out: list[EncodedPair] = []
    for p in pairs:
        got = encode_pair(tokenizer, p, max_length, policy, stats)
        if got is None:
            continue
        margin = float(p.meta.get(margin_key, 0.0)) if margin_key else 0.0
        out.append(EncodedPair(tuple(got[0]), tuple(got[1]), margin))
    stats["encoded"] = len(out)
    return out, stats


def sample(items: Sequence, n: int | None, seed: int) -> list:
    """At most n items, a seeded choice that keeps their original order."""
    if n is None or n >= len(items):
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]
