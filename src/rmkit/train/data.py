"""Training data: load sources, hold out whole prompts, render pairs to ids under the over-long policy.

    pairs, skipped = load_sources(["pairs.jsonl"], format="auto", errors="skip")
    train, held = heldout_split(pairs, n=600, seed=0)
    encoded, stats = encode_pairs(tokenizer, train, max_length=1024, policy="truncate")

The policy is the scorer's (`rmkit.score.ScorerConfig.truncation`): "error" raises, "skip" drops and
counts, "truncate" cuts the shared prompt from the left by the same amount on both sides (keeping a
leading BOS) and never touches a response. A pair whose sides are identical (after any cut) is
skipped and counted: it carries no preference and zero gradient; so is a pair with an empty reply
(scorers give an empty reply a reward like any other, but training on one teaches length).
"""
from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
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
    prompt: str = field(default="", compare=False)
    """The prompt's key (`prompt_key`), so that pair_mode "all" can merge the pairs of one prompt."""
    source: str = field(default="", compare=False)
    """The pair's `source` (what `oversample` matches)."""

    @property
    def length(self) -> int:
        return len(self.chosen) + len(self.rejected)

    @property
    def responses(self) -> tuple[tuple[int, ...], ...]:
        return (self.chosen, self.rejected)

    @property
    def edges(self) -> tuple[tuple[int, int], ...]:
        return ((0, 1),)

    @property
    def margins(self) -> tuple[float, ...]:
        return (self.margin,)


@dataclass(frozen=True)
class EncodedGroup:
    """One prompt's k encoded conversations and the preferences among them: `edges` (winner, loser)
    index pairs, one Bradley-Terry term each (pair_mode "all")."""
    responses: tuple[tuple[int, ...], ...]
    edges: tuple[tuple[int, int], ...]
    margins: tuple[float, ...]
    source: str = field(default="", compare=False)

    @property
    def length(self) -> int:
        return sum(len(r) for r in self.responses)


def load_sources(sources: Sequence[str], *, format: str = "auto", errors: str = "skip"
                 ) -> tuple[list[PreferencePair], Counter]:
    skipped: Counter = Counter()
    pairs: list[PreferencePair] = []
    for src in sources:
        pairs.extend(load_pairs(src, format=format, errors=errors, skipped=skipped))
    return pairs, skipped


def load_ranked(source: str, errors: str = "skip", skipped: Counter | None = None) -> list | None:
    """Rows with several scored responses (Magpie `responses` + `rewards_armorm`, or rmkit's BestOfN
    `prompt` + `completions` + `scores`) as BestOfN; None when the source holds plain pairs."""
    from pathlib import Path

    from rmkit.data.io import read_rows
    from rmkit.data.schema import BestOfN, DataError, on_row_error, to_conversation
    from rmkit.data.sources import magpie

    if not Path(source).is_file():
        return None
    out, kind = [], None
    for index, row in read_rows(source):
        if kind is None:
            cols = set(row)
            kind = "magpie" if {"responses", "rewards_armorm"} <= cols else \
                "bestofn" if {"prompt", "completions", "scores"} <= cols else "pairs"
            if kind == "pairs":
                return None
        try:
            if kind == "magpie":
                out.append(magpie.parse_group(row, file=str(source), index=index))
            else:
                out.append(BestOfN(str(row.get("id", index)), str(row.get("source", "")),
                                   to_conversation(row["prompt"]),
                                   [to_conversation(c, default_role="assistant") for c in row["completions"]],
                                   scores=[float(x) for x in row["scores"]]).validate(file=str(source), row=index))
        except (DataError, KeyError, TypeError, ValueError) as e:
            error = DataError(f"{source} row {index}: {e}")
            error.__cause__ = e
            on_row_error(error, errors, skipped, key=f"ranked: {type(e).__name__}")
    return out


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


def has_text(reply) -> bool:
    return any(m.content.strip() for m in reply)


def encode_pair(tokenizer, pair: PreferencePair, max_length: int, policy: str, stats: Counter
                ) -> tuple[list[int], list[int]] | None:
    """(chosen ids, rejected ids) that fit `max_length` under `policy`, or None (counted in stats)."""
    if not (has_text(pair.chosen) and has_text(pair.rejected)):
        stats["skipped_empty"] += 1  # a preference over an empty reply teaches length, not quality
        return None
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
        out.append(EncodedPair(tuple(got[0]), tuple(got[1]), margin, prompt_key(p), p.source))
    stats["encoded"] = len(out)
    return out, stats


def merge_by_prompt(encoded: Sequence[EncodedPair]) -> list[EncodedGroup]:
    """pair_mode "all": the encoded pairs of one prompt become one group of its distinct responses, with
    each pair an edge (a response preferred in one pair and beaten in another is one response, run once)."""
    order: dict[str, list[EncodedPair]] = {}
    for e in encoded:
        order.setdefault(e.prompt or str(id(e)), []).append(e)
    groups = []
    for members in order.values():
        index: dict[tuple[int, ...], int] = {}
        edges: dict[tuple[int, int], float] = {}
        for e in members:
            w, l = (index.setdefault(x, len(index)) for x in (e.chosen, e.rejected))
            edges.setdefault((w, l), e.margin)
        groups.append(EncodedGroup(tuple(index), tuple(edges), tuple(edges.values()), members[0].source))
    return groups


def ranked_edges(scores: Sequence[float]) -> tuple[tuple[int, int], ...]:
    """All ordered pairs (i, j) with scores[i] > scores[j] (ties carry no preference)."""
    return tuple((i, j) for i in range(len(scores)) for j in range(len(scores)) if scores[i] > scores[j])


def encode_ranked(tokenizer, item, max_length: int, stats: Counter) -> EncodedGroup | None:
    """A BestOfN with scores → a group with all its ordered pairs; over-long completions are dropped
    (counted), and a group left with no preference is skipped."""
    keep = []
    for conv, reply, score in zip(item.conversations(), item.completions, item.scores):
        if not has_text(reply):
            stats["completions_empty"] += 1
            continue
        ids = render_ids(tokenizer, conv)
        if len(ids) > max_length:
            stats["completions_too_long"] += 1
            continue
        keep.append((tuple(ids), float(score)))
    edges = ranked_edges([sc for _, sc in keep])
    if not edges:
        stats["skipped_no_preference"] += 1
        return None
    return EncodedGroup(tuple(ids for ids, _ in keep), edges, (0.0,) * len(edges))


def sample(items: Sequence, n: int | None, seed: int) -> list:
    """At most n items, a seeded choice that keeps their original order."""
    if n is None or n >= len(items):
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]


def oversample_repeats(items: Sequence, weights: dict[str, int]) -> list[int] | None:
    """How many times each item appears in an epoch under `oversample` ({source: k}); None when empty.

    A key matches an item's source exactly or as its prefix up to a "/" ("hh-rlhf" matches
    "hh-rlhf/harmless-base"); the longest matching key wins; unmatched items appear once. A key that
    matches no item is an error (a misspelt source would otherwise change nothing, silently)."""
    if not weights:
        return None
    used: set[str] = set()

    def factor(source: str) -> int:
        keys = [k for k in weights if source == k or source.startswith(k.rstrip("/") + "/")]
        if not keys:
            return 1
        key = max(keys, key=len)
        used.add(key)
        return weights[key]

    repeats = [factor(getattr(it, "source", "")) for it in items]
    missing = sorted(set(weights) - used)
    if missing:
        sources = sorted({getattr(it, "source", "") for it in items})
        raise ValueError(f"oversample: {missing} match no training pair's source; the sources are {sources}")
    return repeats
