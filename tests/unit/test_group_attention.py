"""Attention paid per group gives the hidden states, rewards and gradients of the 4D-mask path (fp32), for
groups of 1, 2 and 4 responses packed into one padding-free row or one group per row with fillers."""
import pytest
import torch

from bounds import loss_bound
from tiny import build_model, build_tokenizer
from rmkit.models.group_attention import (ONE_ROW, GroupLayout, attend, group_attention, per_group, row_tokens_for,
                                          supports)
from rmkit.models.groups import attention_masks, pack_groups, shared_mask, split_group
from rmkit.train.trunk import run_layers

PROMPT = [1, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140]
GROUPS = [split_group(g) for g in (
    [PROMPT + [5, 6, 7], PROMPT + [8, 9]],
    [[1, 21, 31, 5], [1, 21, 31, 9, 10, 11]],
    [[1, 22, 32, 42, 6, 7], [1, 22, 32, 42, 8], [1, 22, 32, 42, 9, 9, 9], [1, 22, 32, 42, 10]],
    [[3, 4, 5], [7, 8]],          # nothing shared
    [[9, 8, 7, 6, 5]])]           # one response alone


def test_attend_equals_the_mask_by_hand():
    torch.manual_seed(0)
    batch = pack_groups(GROUPS, 0, row_tokens=-1)  # one group per row, fillers after the short ones
    rows, width = batch["input_ids"].shape
    q, k, v = torch.randn(rows, 4, width, 8), torch.randn(rows, 2, width, 8), torch.randn(rows, 2, width, 8)
    mask = shared_mask(batch["segment"], batch["branch"])
    ref = torch.nn.functional.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                                           attn_mask=mask)
    got = attend(q, k, v, GroupLayout.of(batch, GROUPS))
    for r, start, end in batch["spans"].tolist():  # fillers are never read
        torch.testing.assert_close(got[r, :, start:end], ref[r, :, start:end], atol=1e-6, rtol=1e-5)


def _model(arch):
    tok = build_tokenizer("chatml")
    return build_model(arch, tok, vocab_size=len(tok) + 200)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
@pytest.mark.parametrize("rows", [10 ** 9, -1])
def test_layers_and_gradients_equal_the_mask_path(arch, rows):
    model = _model(arch).float().train()
    assert supports(model.config)
    stack = model.model
    batch = pack_groups(GROUPS, 0, row_tokens=rows)
    layers = range(len(stack.layers))

    def rewards(mode):
        hidden = stack.embed_tokens(batch["input_ids"])
        if mode == "groups":
            with group_attention(*stack.layers):
                hidden = run_layers(stack, model.config, hidden, GroupLayout.of(batch, GROUPS),
                                    batch["position_ids"], layers)
        else:
            masks = attention_masks(model.config, batch, dtype=torch.float32)
            hidden = run_layers(stack, model.config, hidden, masks, batch["position_ids"], layers)
        return model.score(stack.norm(hidden)[batch["rows"], batch["cols"]])[:, 0]

    grads = {}
    out = {}
    for mode in ("mask", "groups"):
        model.zero_grad()
        r = rewards(mode)
        loss = torch.nn.functional.softplus(r[1:] - r[:-1]).mean()
        loss.backward()
        out[mode] = (r.detach(), loss.detach())
        grads[mode] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    torch.testing.assert_close(out["groups"][0], out["mask"][0], atol=1e-5, rtol=1e-5)
    assert abs(out["groups"][1] - out["mask"][1]) <= loss_bound(out["mask"][0])
    assert grads["groups"].keys() == grads["mask"].keys()
    for name, g in grads["mask"].items():
        scale = float(g.abs().max()) or 1.0
        torch.testing.assert_close(grads["groups"][name], g, atol=1e-5 * scale, rtol=1e-4, msg=name)
    assert model.config._attn_implementation == "sdpa"  # switched back after the block


def test_sliding_windows_and_softcapping_keep_the_mask_path():
    tok = build_tokenizer("gemma")
    assert not supports(build_model("gemma2", tok).config)
    assert not supports(build_model("qwen2", build_tokenizer("chatml"), use_sliding_window=True,
                                    sliding_window=4).config)


def test_attention_per_group_runs_on_the_cpu_only():
    # on a GPU its loop of small kernels is launch-bound; SDPA takes the 4D mask of one group per row there
    cfg = _model("llama").config
    assert per_group(cfg, "cpu") and per_group(cfg, torch.device("cpu")) and row_tokens_for(cfg, "cpu") == ONE_ROW
    assert not per_group(cfg, "cuda") and not per_group(cfg, torch.device("cuda", 0))
    assert row_tokens_for(cfg, "cuda:0") == -1
    assert not per_group(build_model("gemma2", build_tokenizer("gemma")).config, "cpu")


def test_a_plain_tensor_mask_is_refused():
    from rmkit.models.group_attention import attention_function

    x = torch.zeros(1, 2, 3, 4)
    with pytest.raises(TypeError, match="GroupLayout"):
        attention_function(None, x, x, x, torch.ones(1, 1, 3, 3, dtype=torch.bool))
