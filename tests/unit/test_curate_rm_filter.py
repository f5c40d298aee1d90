"""The RM-consistency filter with a real (tiny, randomly initialised) reward model, no stubs."""
from __future__ import annotations

import pytest

from rmkit.curate.filters import rm_consistency
from rmkit.data import Message, PreferencePair

TEXTS = ["Jane has 12 apples.", "The quick brown fox jumps over the lazy dog.",
         "Hello! How can I help you today?", "Sure, here is a poem about the sea and the sky.",
         "def main(): return 42", "She gives 4 apples to her friend Mark.", "0123456789 + - * / ="]


def pairs_and_swaps():
    out = []
    for i in range(len(TEXTS) - 1):
        a, b = TEXTS[i], TEXTS[i + 1]
        q = [Message("user", "Say something.")]
        out.append(PreferencePair(f"p{i}", "wildguard", q, [Message("assistant", a)],
                                  [Message("assistant", b)]))
        out.append(PreferencePair(f"s{i}", "wildguard", q, [Message("assistant", b)],
                                  [Message("assistant", a)]))
    return out


def test_rm_filter_keeps_exactly_the_pairs_the_model_prefers(tiny_llama):
    pytest.importorskip("torch")
    from rmkit.score.scorer import RewardScorer

    pairs = pairs_and_swaps()
    rewards = RewardScorer.from_pretrained(str(tiny_llama)).score_pairs(pairs)
    kept, drops = rm_consistency(pairs, str(tiny_llama))  # a path: RewardScorer built inside
    assert [p.id for p in kept] == [p.id for p, (c, r) in zip(pairs, rewards) if c > r]
    # a pair and its swap: the model agrees with exactly one of them
    for i in range(len(TEXTS) - 1):
        assert (f"p{i}" in {p.id for p in kept}) != (f"s{i}" in {p.id for p in kept})
    assert {r for _, r, _ in drops} == {"rm_inconsistent"} and len(drops) == len(kept)
    for p in kept:
        assert p.meta["rm_chosen"] > p.meta["rm_rejected"]


def test_rm_filter_margin_and_scorer_object(tiny_llama):
    pytest.importorskip("torch")
    from rmkit.score.scorer import RewardScorer

    scorer = RewardScorer.from_pretrained(str(tiny_llama))
    pairs = pairs_and_swaps()
    gaps = sorted(c - r for c, r in scorer.score_pairs(pairs) if c > r)
    kept, _ = rm_consistency(pairs, scorer, margin=gaps[len(gaps) // 2])
    assert len(kept) == len(gaps) - len(gaps) // 2 - 1


def test_load_scorer_routes_options_through_build_scorer(tiny_llama):
    pytest.importorskip("torch")
    from rmkit.curate.filters import load_scorer
    from rmkit.score.baselines import RandomScorer
    from rmkit.score.scorer import RewardScorer

    # local engine: the Ray-only keys are not passed to the scorer, None means "the default"
    scorer = load_scorer(str(tiny_llama), {"engine": "local", "actors": 3, "address": None, "max_length": 40,
                                           "truncation": "skip", "batch_tokens": None})
    assert isinstance(scorer, RewardScorer)
    assert scorer.config.max_length == 40 and scorer.config.truncation == "skip"
    assert scorer.config.batch_tokens == 8192
    pairs = pairs_and_swaps()
    random7 = load_scorer("random", {"seed": 7})
    assert random7.score_pairs(pairs) == RandomScorer(seed=7).score_pairs(pairs)
    assert random7.score_pairs(pairs) != load_scorer("random").score_pairs(pairs)
    with pytest.raises(ValueError, match="engine"):
        load_scorer(str(tiny_llama), {"engine": "spark"})
