"""The scorer's prefix-shared path gives the rewards of scoring every conversation alone: pairs,
best-of-N (RewardBench 2 shape) and multi-turn contexts, on tiny Llama / Qwen3 / Gemma-2 (fp32)."""
import pytest
import torch

from tiny import build_model, build_tokenizer
from rmkit.data.schema import Message, PreferencePair
from rmkit.score.scorer import RewardScorer, ScorerConfig, context_groups

CTX = [{"role": "user", "content": "Jane has 12 apples. She gives 4 apples to her friend Mark."},
       {"role": "assistant", "content": "Sure, here is a poem about the sea."},
       {"role": "user", "content": "How many apples does each get?"}]
REPLIES = ["Each gets 3 apples.", "The quick brown fox jumps over the lazy dog.", "42", "Hello! How can I help?"]


def _pairs():
    out = []
    for i, (a, b) in enumerate([(0, 1), (2, 3), (1, 2)]):
        prompt = [Message(m["role"], m["content"]) for m in (CTX if i != 1 else CTX[-1:])]
        out.append(PreferencePair(str(i), "t", prompt, [Message("assistant", REPLIES[a])],
                                  [Message("assistant", REPLIES[b])]))
    return out


@pytest.mark.parametrize("arch,template", [("llama", "llama3"), ("qwen3", "chatml"), ("gemma2", "gemma")])
def test_shared_scores_equal_alone(arch, template):
    tok = build_tokenizer(template)
    model = build_model(arch, tok, **({"sliding_window": 8} if arch == "gemma2" else {}))
    shared = RewardScorer(model, tok, ScorerConfig(batch_tokens=64))
    alone = RewardScorer(model, tok, ScorerConfig(sharing="off"))
    assert shared.shares and not alone.shares
    pairs = _pairs()
    torch.testing.assert_close(torch.tensor(shared.score_pairs(pairs)), torch.tensor(alone.score_pairs(pairs)),
                               atol=1e-5, rtol=1e-5)
    convs = [CTX + [{"role": "assistant", "content": r}] for r in REPLIES] + [[CTX[0]]]
    got, ref = shared.score(convs), alone.score(convs)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(ref), atol=1e-5, rtol=1e-5)
    assert shared.stats["shared_groups"] >= 4 and shared.stats["tokens_shared"] < shared.stats["tokens_unshared"]
    assert len(set(ref)) == len(ref)


def test_one_at_a_time_equals_grouped():
    tok = build_tokenizer("llama3")
    scorer = RewardScorer(build_model("llama", tok), tok)
    convs = [CTX + [{"role": "assistant", "content": r}] for r in REPLIES]
    grouped = scorer.score(convs)
    single = [scorer.score([c])[0] for c in convs]
    torch.testing.assert_close(torch.tensor(grouped), torch.tensor(single), atol=1e-5, rtol=1e-5)


def test_context_groups():
    a = [Message("user", "q")]
    convs = [a + [Message("assistant", "x")], [Message("user", "p"), Message("assistant", "y")],
             a + [Message("assistant", "z")]]
    assert context_groups(convs) == [[0, 2], [1]]


def test_hf_pooling_does_not_share():
    tok = build_tokenizer("llama3")
    assert not RewardScorer(build_model("llama", tok), tok, ScorerConfig(pooling="hf")).shares
