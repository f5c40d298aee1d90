"""Prefix-shared groups give the rewards, loss and gradients of running every conversation alone
(tiny Llama / Qwen2 / Qwen3 / Gemma-2, fp32), including a prompt longer than Gemma-2's sliding window."""
import pytest
import torch

from bounds import loss_bound
from tiny import build_model, build_tokenizer
from rmkit.models.groups import (Group, additive, attention_masks, common_prefix_length, pack_groups,
                                 shared_mask, split_group)
from rmkit.train.collate import collate_padded
from rmkit.train.loss import bradley_terry_loss, split_rewards
from rmkit.train.model import RewardForward

PROMPT = [1, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140]  # 14 tokens
GROUPS = [[PROMPT + [5, 6, 7], PROMPT + [8, 9]],            # a pair
          [[1, 21, 31] + [5], [1, 21, 31] + [9, 10, 11]],    # a short pair
          [[1, 22, 32, 42, 6, 7], [1, 22, 32, 42, 8], [1, 22, 32, 42, 9, 9, 9], [1, 22, 32, 42, 10]],  # k = 4
          [[3, 4, 5], [7, 8]]]                               # nothing shared: runs unshared


def test_split_group_shares_the_common_prefix_and_keeps_a_token_each():
    g = split_group([[1, 2, 3, 4], [1, 2, 3, 5, 6]])
    assert g == Group((1, 2, 3), ((4,), (5, 6)))
    assert g.length == 6 and g.unshared_length == 9
    assert split_group([[1, 2], [1, 2, 3]]).prefix == (1,)  # the shorter one keeps its last token
    assert common_prefix_length([[7, 8], [9]]) == 0
    assert split_group([[1, 2], [1, 3]], share=False).prefix == ()
    with pytest.raises(ValueError):
        split_group([[1], []])


def test_mask_and_positions_by_hand():
    b = pack_groups([Group((1, 2), ((3,), (4, 5)))], pad_id=0)
    assert b["input_ids"].tolist() == [[1, 2, 3, 4, 5]]
    assert b["position_ids"].tolist() == [[0, 1, 2, 2, 3]]
    assert b["cols"].tolist() == [2, 4] and b["rows"].tolist() == [0, 0]
    assert b["spans"].tolist() == [[0, 0, 5]]
    m = shared_mask(b["segment"], b["branch"])[0, 0].int().tolist()
    assert m == [[1, 0, 0, 0, 0],
                 [1, 1, 0, 0, 0],
                 [1, 1, 1, 0, 0],   # response 1 sees the prompt and itself
                 [1, 1, 0, 1, 0],   # response 2 never sees response 1
                 [1, 1, 0, 1, 1]]
    w = shared_mask(b["segment"], b["branch"], b["position_ids"], window=2)[0, 0].int().tolist()
    assert w[4] == [0, 0, 0, 1, 1]  # position 3 sees positions 2-3 only
    assert additive(torch.tensor([True, False]), torch.float32).tolist() == [0.0, torch.finfo(torch.float32).min]


def test_fillers_attend_only_to_themselves():
    b = pack_groups([Group((1,), ((2, 3, 4),)), Group((), ((5,),))], pad_id=0, row_tokens=0)
    assert b["input_ids"].shape == (2, 4)
    assert b["spans"].tolist() == [[0, 0, 4], [1, 0, 1]]
    m = shared_mask(b["segment"], b["branch"])[1, 0]
    assert m.sum(-1).tolist() == [1, 1, 1, 1]  # the 1-token sequence, then 3 fillers each alone


def _alone(model, fwd, seqs, pad):
    """Each conversation in its own forward: rewards, BT loss over (0,1),(2,3)..., gradients."""
    model.zero_grad()
    rewards = torch.cat([fwd(model, collate_padded([s], pad)) for s in seqs])
    return rewards


def _loss_grads(model, rewards):
    loss = bradley_terry_loss(*split_rewards(rewards))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("arch,template,extra", [
    ("llama", "llama3", {}), ("qwen2", "chatml", {}), ("qwen3", "chatml", {}),
    ("gemma2", "gemma", {"sliding_window": 8}),               # prompt of 14 > window
    ("qwen2", "chatml", {"use_sliding_window": True, "sliding_window": 6, "max_window_layers": 1}),
])
def test_shared_equals_alone(arch, template, extra):
    tok = build_tokenizer(template)
    model = build_model(arch, tok, **extra).train()
    if extra.get("use_sliding_window"):
        assert "sliding_attention" in model.config.layer_types
    fwd = RewardForward(model)
    seqs = [s for g in GROUPS for s in g]
    seqs_even = seqs[:len(seqs) // 2 * 2]
    ref = _alone(model, fwd, seqs, tok.pad_token_id)
    ref_loss, ref_grads = _loss_grads(model, ref[:len(seqs_even)])
    for row_tokens in (0, 10_000):
        model.zero_grad()
        batch = pack_groups([split_group(g) for g in GROUPS], tok.pad_token_id, row_tokens)
        assert int(batch["real_tokens"]) < int(batch["unshared_tokens"])
        got = fwd(model, batch)
        torch.testing.assert_close(got, ref.detach(), atol=1e-5, rtol=1e-5)
        loss, grads = _loss_grads(model, got[:len(seqs_even)])
        torch.testing.assert_close(loss, ref_loss, atol=loss_bound(ref), rtol=0)
        for name, g in ref_grads.items():  # fp32 noise in a gradient scales with the tensor's magnitude
            torch.testing.assert_close(grads[name], g, atol=1e-5 * g.abs().max().item(), rtol=1e-4)
    assert len(set(ref.tolist())) == len(seqs)


def test_gemma2_window_matters():
    """Without the window in the mask the rewards change: the test above would catch a lost window."""
    tok = build_tokenizer("gemma")
    model = build_model("gemma2", tok, sliding_window=8)
    batch = pack_groups([split_group(GROUPS[0])], tok.pad_token_id)
    masks = attention_masks(model.config, batch)
    assert set(masks) == {"full_attention", "sliding_attention"}
    assert not torch.equal(masks["full_attention"], masks["sliding_attention"])


def test_flash_attention_refused():
    class Cfg:
        _attn_implementation = "flash_attention_2"

    with pytest.raises(ValueError, match="packed path"):
        attention_masks(Cfg(), pack_groups([split_group([[1, 2], [1, 3]])], 0))
