"""Padding-free (packed) batches give the same rewards, loss and gradients as padded ones, and the
same rewards as rmkit's scorer (tiny Llama / Qwen3 / Gemma-2)."""
import pytest
import torch

from bounds import loss_bound
from tiny import build_model, build_tokenizer
from rmkit.train.collate import collate_packed, collate_padded
from rmkit.train.loss import bradley_terry_loss, split_rewards
from rmkit.train.model import RewardForward

SEQS = [[1, 20, 30, 40, 50, 60], [1, 20, 30, 41], [1, 22], [1, 23, 33, 43, 53, 63, 73, 83, 93],
        [1, 24, 34], [1, 25, 35, 45, 55]]


def _loss_and_grads(model, fwd, batch):
    model.zero_grad()
    rewards = fwd(model, batch)
    loss = bradley_terry_loss(*split_rewards(rewards))
    loss.backward()
    return rewards.detach(), loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("arch,template", [("llama", "llama3"), ("qwen3", "chatml"), ("gemma2", "gemma")])
def test_packed_equals_padded(arch, template):
    tok = build_tokenizer(template)
    model = build_model(arch, tok).train()
    fwd = RewardForward(model)
    ref_r, ref_l, ref_g = _loss_and_grads(model, fwd, collate_padded(SEQS, tok.pad_token_id))
    for row_tokens in (0, 10_000):  # rows as wide as the longest sequence / one flat row
        r, l, g = _loss_and_grads(model, fwd, collate_packed(SEQS, tok.pad_token_id, row_tokens))
        torch.testing.assert_close(r, ref_r, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(l, ref_l, atol=loss_bound(ref_r), rtol=0)  # what the rewards' bound allows
        for name in ref_g:
            torch.testing.assert_close(g[name], ref_g[name], atol=5e-5, rtol=1e-3)
    assert len(set(ref_r.tolist())) == len(SEQS)  # rewards really differ between sequences


def test_packed_rewards_match_scorer():
    from rmkit.score.scorer import RewardScorer

    tok = build_tokenizer("llama3")
    model = build_model("llama", tok)
    scorer = RewardScorer(model, tok)
    with torch.no_grad():
        packed = RewardForward(model)(model, collate_packed(SEQS, tok.pad_token_id, 10_000))
    torch.testing.assert_close(packed, torch.tensor(scorer.score_ids(SEQS)), atol=1e-5, rtol=1e-5)


def test_rewards_fp32_under_bf16_autocast():
    tok = build_tokenizer("llama3")
    model = build_model("llama", tok)
    fwd = RewardForward(model)
    batch = collate_packed(SEQS, tok.pad_token_id)
    with torch.no_grad():
        ref = fwd(model, batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = fwd(model, batch)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, ref, atol=0.1, rtol=0.05)
    assert not torch.equal(mixed, mixed.bfloat16().float())  # not rounded to bf16
