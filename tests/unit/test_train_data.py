"""Training follows the scorer's over-long policy; held-out split keeps prompts on one side."""
from collections import Counter

import pytest

from tiny import build_model, build_tokenizer
from rmkit.data import Message, PreferencePair
from rmkit.score.scorer import RewardScorer, ScorerConfig
from rmkit.score import base
from rmkit.train.data import PairTooLongError, encode_pair, heldout_split


def _pair(prompt: str, chosen: str, rejected: str, pid: str = "p") -> PreferencePair:
    return PreferencePair(id=pid, source="t", prompt=[Message("user", prompt)],
                          chosen=[Message("assistant", chosen)], rejected=[Message("assistant", rejected)])


LONG = _pair("The quick brown fox jumps over the lazy dog. " * 6, "Sure, here is a poem.", "No.")


def test_truncate_matches_scorer():
    tok = build_tokenizer("llama3")
    full = len(tok.apply_chat_template(LONG.chosen_conversation, tokenize=True, return_dict=True)["input_ids"])
    limit = full - 10
    scorer = RewardScorer(build_model("llama", tok), tok, ScorerConfig(max_length=limit, truncation="truncate"))
    stats = Counter()
    ours = encode_pair(tok, LONG, limit, "truncate", stats)
    assert list(ours) == [list(x) for x in base.encode_pair(scorer, LONG)]
    assert len(ours[0]) == limit and ours[0][0] == tok.bos_token_id and stats["truncated"] == 1


def test_error_and_skip_policies():
    tok = build_tokenizer("llama3")
    with pytest.raises(PairTooLongError):
        encode_pair(tok, LONG, 20, "error", Counter())
    stats = Counter()
    assert encode_pair(tok, LONG, 20, "skip", stats) is None and stats["skipped_too_long"] == 1


def test_never_truncates_into_a_response():
    tok = build_tokenizer("llama3")
    stats = Counter()
    assert encode_pair(tok, LONG, 8, "truncate", stats) is None  # responses alone exceed the limit
    assert stats["skipped_too_long"] == 1


def test_identical_sides_skipped():
    tok = build_tokenizer("llama3")
    stats = Counter()
    assert encode_pair(tok, _pair("Hi", "Same.", "Same."), 100, "truncate", stats) is None
    assert stats["skipped_identical"] == 1


def test_heldout_split_by_prompt():
    pairs = [_pair(f"q{i % 5}", "a", "b", pid=str(i)) for i in range(20)]
    train, held = heldout_split(pairs, 6, seed=0)
    assert len(train) + len(held) == 20 and len(held) >= 6
    assert not {p.prompt[0].content for p in train} & {p.prompt[0].content for p in held}
    assert heldout_split(pairs, 6, seed=0)[1] == held


def test_pairs_with_an_empty_side_are_dropped_and_counted():
    tok = build_tokenizer("llama3")
    stats = Counter()
    assert encode_pair(tok, _pair("Hi", "Hello there.", "  "), 100, "truncate", stats) is None
    assert encode_pair(tok, _pair("Hi", "", "Hello."), 100, "truncate", stats) is None
    assert stats["skipped_empty"] == 2 and encode_pair(tok, _pair("Hi", "a", "b"), 100, "truncate", stats)
