"""RewardScorer correctness: pooling invariance, no double BOS, Gemma-2 off SDPA, over-long policy."""
import json
import logging
import math
import random
from pathlib import Path

import pytest
import torch

from rmkit.data import Message, PreferencePair
from rmkit.models.chat import render_ids, render_text_ids
from rmkit.models.load import load_reward_model
from rmkit.score.scorer import RewardScorer, ScorerConfig, TooLongError
from rmkit.score.base import encode_pair
from tiny import build_model, build_tokenizer, save_tiny_model

FIXTURES = Path(__file__).parents[1] / "fixtures"
JANE = json.loads((FIXTURES / "jane_apples.json").read_text())


def conversations(n=12):
    rng = random.Random(0)
    words = "apples Jane gives Mark buys splits siblings the quick brown fox".split()
    out = []
    for i in range(n):
        prompt = " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        reply = " ".join(rng.choice(words) for _ in range(rng.randint(1, 25)))
        out.append([Message("user", prompt), Message("assistant", reply)])
    return out


def scorer(model, tok, **kw):
    return RewardScorer(model, tok, ScorerConfig(**kw))


@pytest.mark.parametrize("arch, template", [("llama", "llama3"), ("gemma2", "gemma"), ("qwen3", "chatml")])
def test_rewards_do_not_depend_on_the_batch(arch, template):
    tok = build_tokenizer(template, add_bos=template != "chatml")
    model = build_model(arch, tok)
    convs = conversations()
    one = scorer(model, tok, max_batch_size=1).score(convs)
    eight = scorer(model, tok, max_batch_size=8, batch_tokens=10**6).score(convs)
    left = scorer(model, tok, max_batch_size=8, batch_tokens=10**6, padding_side="left").score(convs)
    perm = list(range(len(convs)))
    random.Random(1).shuffle(perm)
    shuffled = scorer(model, tok, batch_tokens=10**6).score([convs[i] for i in perm])
    unshuffled = [None] * len(convs)
    for pos, i in enumerate(perm):
        unshuffled[i] = shuffled[pos]
    for other in (eight, left, unshuffled):
        assert max(abs(a - b) for a, b in zip(one, other)) < 1e-5
    assert len({round(r, 4) for r in one}) > len(convs) // 2  # rewards really differ between inputs
    # and they equal transformers' own forward, one unpadded sequence at a time
    s = scorer(model, tok)
    ref = [model(torch.tensor([ids])).logits[0, 0].item() for ids in s.encode(convs)]
    assert max(abs(a - b) for a, b in zip(one, ref)) < 1e-5


def test_pad_equal_to_eos_still_pools_the_last_real_token(caplog):
    tok = build_tokenizer("eos_end", pad="<eos>")
    assert tok.pad_token_id == tok.eos_token_id
    model = build_model("llama", tok)
    convs = conversations()
    with caplog.at_level(logging.WARNING, logger="rmkit"):
        s1 = scorer(model, tok, max_batch_size=1)
    assert "pooling='hf'" in caplog.text  # the pad == end-of-conversation warning
    one, batched = s1.score(convs), scorer(model, tok, batch_tokens=10**6).score(convs)
    assert max(abs(a - b) for a, b in zip(one, batched)) < 1e-5
    # last-token pooling reads the final <eos>; transformers' pad-id rule reads one token earlier
    hf = scorer(model, tok, pooling="hf", batch_tokens=10**6).score(convs)
    ref = [model(torch.tensor([ids])).logits[0, 0].item() for ids in s1.encode(convs)]
    assert max(abs(a - b) for a, b in zip(hf, ref)) < 1e-5
    assert max(abs(a - b) for a, b in zip(one, hf)) > 1e-3


@pytest.mark.parametrize("template", ["llama3", "gemma"])
def test_no_double_bos_on_the_jane_apples_conversation(template):
    tok = build_tokenizer(template)  # template writes <bos>, and the tokenizer adds one too
    conv = [Message("user", JANE["prompt"]), Message("assistant", JANE["correct"])]
    ids = render_ids(tok, conv)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    # the naive text path doubles BOS; rmkit's text path gives the same ids as the template path
    text = tok.apply_chat_template([m.to_dict() for m in conv], tokenize=False)
    assert tok(text)["input_ids"][:2] == [tok.bos_token_id] * 2
    assert render_text_ids(tok, text) == ids


def test_jane_apples_scored_in_both_orders():
    tok = build_tokenizer("llama3")
    s = scorer(build_model("llama", tok), tok)
    prompt = [Message("user", JANE["prompt"])]
    pair = PreferencePair("jane", "skywork-demo", prompt, [Message("assistant", JANE["correct"])],
                          [Message("assistant", JANE["wrong"])])
    (c, r), = s.score_pairs([pair])  # a prefix-shared forward vs one batch of two: fp32 noise (rule 9)
    assert [c, r] == pytest.approx(s.score([pair.chosen_conversation, pair.rejected_conversation]), abs=1e-5)


def test_gemma2_is_never_loaded_with_sdpa(tiny_gemma2):
    with pytest.raises(ValueError, match="must not run on SDPA"):
        load_reward_model(tiny_gemma2, attn_implementation="sdpa", device="cpu")
    model, tok = load_reward_model(tiny_gemma2, device="cpu")
    assert model.config._attn_implementation == "eager"
    eager = build_model("gemma2", tok)  # same seed, built with eager attention
    ids = torch.tensor([render_ids(tok, conversations(1)[0])])
    assert torch.allclose(model(ids).logits, eager(ids).logits, atol=1e-6)


def test_loader_refuses_a_multi_label_head(tmp_path):
    tok = build_tokenizer()
    path = save_tiny_model(tmp_path / "two", "llama", tok, num_labels=2)
    with pytest.raises(ValueError, match="num_labels=2"):
        load_reward_model(path, device="cpu")


def test_from_pretrained_equals_in_memory(tiny_llama):
    s = RewardScorer.from_pretrained(tiny_llama, device="cpu")
    tok = s.tokenizer
    again = RewardScorer(build_model("llama", tok), tok)
    convs = conversations(5)
    assert s.score(convs) == pytest.approx(again.score(convs), abs=1e-6)
    with pytest.raises(TypeError, match="unknown scorer options"):
        RewardScorer.from_pretrained(tiny_llama, batchsize=3)


def test_bfloat16_close_to_float32(tiny_llama):
    convs = conversations(6)
    a = RewardScorer.from_pretrained(tiny_llama, device="cpu").score(convs)
    b = RewardScorer.from_pretrained(tiny_llama, device="cpu", dtype="bfloat16").score(convs)
    # bf16 keeps 8 significant bits (unit roundoff 2^-8), so its error scales with the rewards: 8 roundoffs of
    # their scale (~8 roundings on a 2-layer path) hold on any CPU's bf16 kernels (AVX-512-bf16, AMX, AVX2)
    assert max(abs(x - y) for x, y in zip(a, b)) < 8 * 2 ** -8 * max(abs(x) for x in a)


def long_pair(tok):
    prompt = [Message("user", "the quick brown fox " * 40)]
    return PreferencePair("p", "t", prompt, [Message("assistant", "Jane gives Mark")],
                          [Message("assistant", "the lazy dog jumps over it all")])


def test_over_long_policies():
    tok = build_tokenizer()
    model = build_model("llama", tok)
    pair = long_pair(tok)
    full = len(render_ids(tok, pair.rejected_conversation))
    with pytest.raises(TooLongError, match="max_length=40"):
        scorer(model, tok, max_length=40).score_pairs([pair])
    skip = scorer(model, tok, max_length=40, truncation="skip")
    (c, r), = skip.score_pairs([pair])
    assert math.isnan(c) and math.isnan(r) and skip.stats["skipped"] >= 1
    trunc = scorer(model, tok, max_length=40, truncation="truncate")
    (c, r), = trunc.score_pairs([pair])
    assert trunc.stats["truncated"] == 2 and c != r and not math.isnan(c)
    # the same cut on both sides: the rejected side (the longer reply) is exactly at the limit
    assert full > 40
    seqs = list(encode_pair(trunc, pair))
    assert len(seqs[1]) == 40 and seqs[0][0] == tok.bos_token_id
    assert len(seqs[1]) - len(seqs[0]) == full - len(render_ids(tok, pair.chosen_conversation))
    # a reply that alone exceeds the limit is skipped, never cut
    tiny = scorer(model, tok, max_length=5, truncation="truncate")
    assert math.isnan(tiny.score([pair.chosen_conversation])[0]) and tiny.stats["skipped"] == 1


def test_an_empty_reply_is_scored_like_any_other():
    tok = build_tokenizer("llama3")
    s = scorer(build_model("llama", tok), tok)
    pair = PreferencePair.from_dict({"prompt": "Say something.", "chosen": "Something.", "rejected": ""})
    (c, r), = s.score_pairs([pair])
    assert math.isfinite(c) and math.isfinite(r)
    assert r == pytest.approx(s.score([pair.rejected_conversation])[0], abs=1e-5)  # shared vs alone (rule 9)


def test_the_shared_hh_file_with_an_empty_last_turn_loads_whole(shared_data):
    from rmkit.data import load_pairs

    pairs = load_pairs(shared_data / "hh-rlhf" / "helpful-base" / "test.jsonl.gz", errors="raise")
    assert len(pairs) == 2354  # row 120 ends with an empty assistant turn: a reply like any other
    assert any(not any(m.content.strip() for m in p.rejected) for p in pairs)
