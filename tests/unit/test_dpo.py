"""DPOScorer: implicit DPO rewards equal an independent computation (a full forward per response, log_softmax,
the response tokens gathered), reward-bench's formulas for each variant and, where the `rewardbench` package is
importable, its own `DPOInference`; the prompt-shared path equals the per-conversation path; the over-long
policy; a missing reference model is an error naming --ref-model. Tiny random causal LMs, fp32."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tiny import build_tokenizer

from rmkit.data.schema import Message, PreferencePair
from rmkit.score.base import TooLongError
from rmkit.score.config import ScorerConfig
from rmkit.score.dpo import DPOScorer

TOL = dict(atol=1e-5, rtol=1e-5)
VARIANTS = [("ref", None), ("sum", "sum"), ("avg", "avg"), ("norm", "norm")]

CTX = [{"role": "user", "content": "Jane has 12 apples. She gives 4 apples to her friend Mark."},
       {"role": "assistant", "content": "Sure, here is a poem about the sea."},
       {"role": "user", "content": "How many apples does each get?"}]
REPLIES = ["Each gets 3 apples.", "The quick brown fox jumps over the lazy dog.", "42", "Hello! How can I help?"]


def causal_lm(tok, seed: int, arch: str = "llama"):
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Qwen3Config,
        Qwen3ForCausalLM,
    )

    cfg_cls, cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen3": (Qwen3Config, Qwen3ForCausalLM)}[arch]
    kw = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
              pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
              tie_word_embeddings=False)
    if arch == "qwen3":
        kw["head_dim"] = 16
    torch.manual_seed(seed)
    model = cls._from_config(cfg_cls(**kw), attn_implementation="sdpa")
    with torch.no_grad():  # sharper distributions than the default init, so log-probs differ visibly
        model.lm_head.weight.normal_(0, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer("llama3")


@pytest.fixture(scope="module")
def models(tok):
    return causal_lm(tok, 1), causal_lm(tok, 2)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tok, models):
    out = []
    for name, m in zip(("policy", "ref"), models):
        path = tmp_path_factory.mktemp(name)
        m.save_pretrained(path)
        tok.save_pretrained(path)
        out.append(path)
    return out


def make(models, tok, variant, **cfg):
    policy, ref = models
    return DPOScorer(policy, tok, ref if variant is None else None, ScorerConfig(**cfg), ref_free=variant)


def pairs():
    out = []
    for i, (a, b) in enumerate([(0, 1), (2, 3), (1, 2), (3, 0)]):
        prompt = [Message(m["role"], m["content"]) for m in (CTX if i % 2 == 0 else CTX[-1:])]
        out.append(PreferencePair(str(i), "t", prompt, [Message("assistant", REPLIES[a])],
                                  [Message("assistant", REPLIES[b])]))
    return out


def as_dicts(conv):
    return [{"role": m.role, "content": m.content} for m in conv]


# ---- the independent computation -------------------------------------------------------------------------
def split_ids(tok, conv):
    """(ids, response start) from the tokenizer alone: the text rendered by the chat template, tokenized as
    is; the response starts where the context rendered with the generation prompt ends."""
    msgs = as_dicts(conv)
    text = tok.apply_chat_template(msgs, tokenize=False)
    prompt = tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
    assert text.startswith(prompt)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    assert ids[:len(p)] == p and ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id
    return ids, len(p)


def response_logps(model, ids, start):
    """Full forward of one whole sequence; log_softmax; the log-probs of tokens start..end."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    lp = logits.log_softmax(-1)
    return torch.stack([lp[t - 1, ids[t]] for t in range(start, len(ids))])


def expected(models, variant, ids, start, beta=1.0):
    policy, ref = models
    pol = response_logps(policy, ids, start)
    if variant is None:
        return beta * float(pol.sum() - response_logps(ref, ids, start).sum())
    return beta * float({"sum": pol.sum(), "avg": pol.mean(), "norm": -pol.pow(2).sum().sqrt()}[variant])


def close(a, b):
    torch.testing.assert_close(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), **TOL)


# ---- reward-bench's formula, on a padded batch with -100 labels over the prompt -----------------------------
def rb_batch(seqs):
    """chosen/rejected rows as reward-bench's collator pads them: ids (pad 0), mask, labels (-100 = not scored)."""
    width = max(len(ids) for ids, _ in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for r, (x, s) in enumerate(seqs):
        ids[r, :len(x)] = torch.tensor(x)
        mask[r, :len(x)] = 1
        labels[r, s:len(x)] = torch.tensor(x[s:])
    return ids, mask, labels


def rb_formula(model, seqs, mode):
    """Shift labels left by one against the logits, mask the -100s, then sum / mean / −L2 norm."""
    ids, mask, labels = rb_batch(seqs)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
    labels, logits = labels[:, 1:], logits[:, :-1]
    keep = labels != -100
    lp = logits.log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1) * keep
    if mode == "avg":
        return (lp.sum(-1) / keep.sum(-1)).tolist()
    if mode == "norm":
        return (-lp.norm(dim=-1)).tolist()
    return lp.sum(-1).tolist()


# ---- tests ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("label,variant", VARIANTS)
def test_pairs_equal_independent_forward(models, tok, label, variant):
    scorer = make(models, tok, variant, batch_tokens=64)
    got = scorer.score_pairs(pairs())
    want = [tuple(expected(models, variant, *split_ids(tok, c)) for c in (p.chosen_conversation,
                                                                            p.rejected_conversation))
            for p in pairs()]
    close(got, want)
    assert scorer.stats["scored"] == 8 and scorer.stats["shared_groups"] == 4
    assert len({x for pr in got for x in pr}) > 4


@pytest.mark.parametrize("label,variant", VARIANTS)
def test_rewardbench_formula(models, tok, label, variant):
    policy, ref = models
    seqs = [split_ids(tok, c) for p in pairs() for c in (p.chosen_conversation, p.rejected_conversation)]
    if variant is None:
        want = [a - b for a, b in zip(rb_formula(policy, seqs, "sum"), rb_formula(ref, seqs, "sum"))]
    else:
        want = rb_formula(policy, seqs, variant)
    got = [x for pr in make(models, tok, variant).score_pairs(pairs()) for x in pr]
    close(got, want)


def test_best_of_n_and_multi_turn(models, tok):
    convs = [CTX + [{"role": "assistant", "content": r}] for r in REPLIES]
    convs += [[CTX[-1], {"role": "assistant", "content": r}] for r in REPLIES[:2]]
    for variant in (None, "avg"):
        scorer = make(models, tok, variant)
        got = scorer.score(convs)
        close(got, [expected(models, variant, *split_ids(tok, [Message(**m) for m in c])) for c in convs])
        assert scorer.stats["shared_groups"] == 2
        assert scorer.stats["tokens_shared"] < scorer.stats["tokens_unshared"]


@pytest.mark.parametrize("label,variant", VARIANTS)
def test_shared_equals_alone(models, tok, label, variant):
    shared, alone = make(models, tok, variant, batch_tokens=96), make(models, tok, variant, sharing="off")
    assert shared.shares and not alone.shares
    close(shared.score_pairs(pairs()), alone.score_pairs(pairs()))
    assert alone.stats["shared_groups"] == 0
    one = [make(models, tok, variant).score_pairs([p])[0] for p in pairs()]
    close(shared.score_pairs(pairs()), one)


def test_shared_on_the_mask_path(models, tok):
    """The 4D-mask path (what a GPU runs; forced here by a model type the per-group attention does not
    take) gives the same rewards."""
    policy, ref = models
    scorer = make(models, tok, None)
    want = scorer.score_pairs(pairs())
    saved_types = policy.config.model_type, ref.config.model_type
    try:
        policy.config.model_type = ref.config.model_type = "llama-mask"
        close(scorer.score_pairs(pairs()), want)
    finally:
        policy.config.model_type, ref.config.model_type = saved_types


def test_qwen3_chatml_without_bos():
    tok = build_tokenizer("chatml", add_bos=False)
    models = causal_lm(tok, 3, "qwen3"), causal_lm(tok, 4, "qwen3")
    scorer = make(models, tok, None)
    got = scorer.score_pairs(pairs())
    for p, (c, r) in zip(pairs(), got):
        for conv, value in ((p.chosen_conversation, c), (p.rejected_conversation, r)):
            msgs = as_dicts(conv)
            ids = tok(tok.apply_chat_template(msgs, tokenize=False), add_special_tokens=False)["input_ids"]
            start = len(tok(tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True),
                            add_special_tokens=False)["input_ids"])
            close(value, expected(models, None, ids, start))


def test_pair_order_does_not_matter(models, tok):
    scorer = make(models, tok, None)
    ps = pairs()
    swapped = [PreferencePair(p.id, p.source, p.prompt, p.rejected, p.chosen) for p in ps]
    close([(r, c) for c, r in scorer.score_pairs(swapped)], scorer.score_pairs(ps))
    close(scorer.score_pairs(ps[::-1])[::-1], scorer.score_pairs(ps))


def test_beta_scales(models, tok):
    policy, ref = models
    one = DPOScorer(policy, tok, ref).score_pairs(pairs())
    tenth = DPOScorer(policy, tok, ref, beta=0.1).score_pairs(pairs())
    close([(0.1 * c, 0.1 * r) for c, r in one], tenth)
    with pytest.raises(ValueError, match="beta"):
        DPOScorer(policy, tok, ref, beta=0)


def test_missing_reference_is_an_error(models, tok, saved):
    policy, ref = models
    with pytest.raises(ValueError, match="--ref-model"):
        DPOScorer(policy, tok)
    with pytest.raises(ValueError, match="--ref-model"):
        DPOScorer.from_pretrained(saved[0], device="cpu")
    with pytest.raises(ValueError, match="ref_free"):
        DPOScorer(policy, tok, ref, ref_free="avg")
    with pytest.raises(ValueError, match="ref_free must be one of"):
        DPOScorer(policy, tok, ref_free="mean")


def test_from_pretrained_folders(models, tok, saved):
    scorer = DPOScorer.from_pretrained(saved[0], saved[1], beta=0.5, device="cpu", dtype="float32")
    assert scorer.dtype_name == "float32" and "ref:" in scorer.name
    close(scorer.score_pairs(pairs()), DPOScorer(*models[:1], tok, models[1], beta=0.5).score_pairs(pairs()))
    free = DPOScorer.from_pretrained(saved[0], ref_free="norm", device="cpu")
    close(free.score_pairs(pairs()), make(models, tok, "norm").score_pairs(pairs()))
    with pytest.raises(TypeError, match="unknown scorer options"):
        DPOScorer.from_pretrained(saved[0], saved[1], bogus=1)


def test_over_long_policies(models, tok):
    long_p = pairs()[0]  # the three-turn context
    ids_c, start_c = split_ids(tok, long_p.chosen_conversation)
    ids_r, start_r = split_ids(tok, long_p.rejected_conversation)
    limit = max(len(ids_c), len(ids_r)) - 5
    with pytest.raises(TooLongError):
        make(models, tok, None, max_length=limit).score_pairs([long_p])
    skip = make(models, tok, None, max_length=limit, truncation="skip")
    got = skip.score_pairs([long_p, pairs()[1]])
    assert all(math.isnan(x) for x in got[0]) and not any(math.isnan(x) for x in got[1])
    assert skip.stats["skipped"] >= 1
    trunc = make(models, tok, None, max_length=limit, truncation="truncate")
    (c, r), = trunc.score_pairs([long_p])
    cut = max(len(ids_c), len(ids_r)) - limit  # both sides lose the same prompt tokens, after the BOS
    for ids, start, value in ((ids_c, start_c, c), (ids_r, start_r, r)):
        kept = ids[:1] + ids[1 + cut:]
        assert len(kept) <= limit
        close(value, expected(models, None, kept, start - cut))
    assert trunc.stats["truncated"] == 2
    tiny = make(models, tok, None, max_length=6, truncation="truncate")  # the reply alone is too long
    assert all(math.isnan(x) for x in tiny.score_pairs([long_p])[0])
    assert tiny.stats["skipped"] == 2 and tiny.stats["truncated"] == 0


def test_score_texts_and_score_ids(models, tok):
    scorer = make(models, tok, None)
    with pytest.raises(NotImplementedError):
        scorer.score_texts(["hi"])
    ids, start = split_ids(tok, pairs()[0].chosen_conversation)
    close(scorer.score_ids([ids, None], starts=[start, 0])[0], expected(models, None, ids, start))
    assert math.isnan(scorer.score_ids([ids, None], starts=[start, 0])[1])
    with pytest.raises(ValueError, match="starts"):
        scorer.score_ids([ids])


# ---- reward-bench's own DPOInference (the `rewardbench` package, when importable) -------------------------
def rewardbench_dpo():
    """rewardbench/dpo.py loaded on its own: the package's __init__ imports fastchat, datasets, trl and more,
    none of which DPOInference uses (it needs torch and numpy only)."""
    path = Path(sys.prefix) / "rewardbench" / "rewardbench" / "dpo.py"  # the Makefile's pinned copy
    spec = importlib.util.find_spec("rewardbench")
    if not path.exists() and spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "dpo.py"
    if not path.exists():
        pytest.skip("reward-bench's code is missing: make venv installs rewardbench==0.1.4 into .venv/rewardbench")
    mod_spec = importlib.util.spec_from_file_location("rewardbench_dpo_only", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.DPOInference


def collate(rows):
    """reward-bench's collator in short: right-pad ids with the pad id, masks with 0, labels with -100."""
    out = {}
    for side in ("chosen", "rejected"):
        width = max(len(r[f"{side}_input_ids"]) for r in rows)
        for key, fill in (("input_ids", 0), ("attention_mask", 0), ("labels", -100)):
            out[f"{side}_{key}"] = torch.tensor([r[f"{side}_{key}"] + [fill] * (width - len(r[f"{side}_{key}"]))
                                                 for r in rows])
    return out


@pytest.mark.parametrize("label,variant", VARIANTS)
def test_rewardbench_dpoinference_same_ids(models, tok, label, variant):
    """Their inference_step on the ids rmkit scores (labels -100 over the prompt) = rmkit's rewards."""
    DPOInference = rewardbench_dpo()
    policy, ref = models
    rows = []
    for p in pairs():
        row = {}
        for side, conv in (("chosen", p.chosen_conversation), ("rejected", p.rejected_conversation)):
            ids, start = split_ids(tok, conv)
            row.update({f"{side}_input_ids": ids, f"{side}_attention_mask": [1] * len(ids),
                        f"{side}_labels": [-100] * start + ids[start:]})
        rows.append(row)
    dpo = DPOInference(policy, ref if variant is None else None, tok, SimpleNamespace(device="cpu"),
                       ref_free_norm=variant or "norm")
    c, r = dpo.inference_step(collate(rows), ref_free=variant is not None)
    close(make(models, tok, variant).score_pairs(pairs()), list(zip(c.tolist(), r.tolist())))


@pytest.mark.parametrize("label,variant", VARIANTS)
def test_rewardbench_dpoinference_own_tokenization(models, tok, label, variant):
    """Their whole path (`tokenize_row` on the strings `load_eval_dataset` makes: the prompt rendered without
    the generation prompt, the full conversation) = rmkit's rewards on the ids it produced (BOS prepended, so
    twice here; the assistant header and an appended EOS scored as response)."""
    DPOInference = rewardbench_dpo()
    policy, ref = models
    dpo = DPOInference(policy, ref if variant is None else None, tok, SimpleNamespace(device="cpu"),
                       ref_free_norm=variant or "norm")
    rows = []
    for p in pairs():
        prompt = tok.apply_chat_template(as_dicts(p.prompt), tokenize=False)
        rows.append(dpo.tokenize_row({"prompt": prompt,
                                      "text_chosen": tok.apply_chat_template(as_dicts(p.chosen_conversation),
                                                                             tokenize=False),
                                      "text_rejected": tok.apply_chat_template(as_dicts(p.rejected_conversation),
                                                                               tokenize=False)}))
    c, r = dpo.inference_step(collate(rows), ref_free=variant is not None)
    scorer = make(models, tok, variant)
    seqs, starts = [], []
    for row in rows:
        for side in ("chosen", "rejected"):
            labels = row[f"{side}_labels"]
            seqs.append(row[f"{side}_input_ids"])
            starts.append(next(i for i, x in enumerate(labels) if x != -100))
    got = scorer.score_ids(seqs, groups=[[2 * i, 2 * i + 1] for i in range(len(rows))], starts=starts)
    close(got, [x for pr in zip(c.tolist(), r.tolist()) for x in pr])


def test_the_factory_and_the_cli_build_the_dpo_kind(models, tok, saved, tmp_path):
    """build_scorer(policy, ref_model=...) is the DPO scorer, and `rmkit score --model P --ref-model R` writes its
    rewards (β from --beta, 1 when left out)."""
    import json

    from typer.testing import CliRunner

    from rmkit.cli import app
    from rmkit.score.factory import build_scorer

    sc = build_scorer(str(saved[0]), ref_model=str(saved[1]), beta=0.5, device="cpu", dtype="float32")
    assert isinstance(sc, DPOScorer) and sc.beta == 0.5
    close(sc.score_pairs(pairs()), DPOScorer(*models[:1], tok, models[1], beta=0.5).score_pairs(pairs()))
    with pytest.raises(ValueError, match="backend hf"):
        build_scorer(str(saved[0]), ref_model=str(saved[1]), backend="vllm")
    data = tmp_path / "pairs.jsonl"
    rows = [{"id": str(i), "chosen": [m.to_dict() for m in p.chosen_conversation],
             "rejected": [m.to_dict() for m in p.rejected_conversation]} for i, p in enumerate(pairs())]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "scored.jsonl"
    result = CliRunner().invoke(app, ["score", str(data), "-o", str(out), "--model", str(saved[0]), "--ref-model",
                                      str(saved[1]), "--dtype", "float32", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    got = [(r["chosen_reward"], r["rejected_reward"]) for r in map(json.loads, out.read_text().splitlines())]
    want = [(2 * c, 2 * r) for c, r in sc.score_pairs(pairs())]  # --beta left at 1: twice the β = 0.5 rewards
    close(got, want)
