"""`rmkit serve` answers the RL frameworks' reward clients as they behave today and gives the rewards rmkit
computes offline: verl's reward loop and vLLM's pooling API (/classify, /pooling: the activation unless
use_activation is false; text, token ids, messages; truncate_prompt_tokens), SGLang's /v1/embeddings,
OpenRLHF's /get_reward (a query in the *policy's* chat template, re-rendered with the reward model's),
the capability URL for clients that send no header, and the operator's fallback reward. Tiny real model,
fp32. (OpenRLHF's own client code runs against the server in tests/integration/test_rl_openrlhf.py.)

    .venv/bin/python -m pytest tests/unit/test_serve_rl_compat.py -q
"""
from __future__ import annotations

import logging
import math

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from rmkit.score.scorer import RewardScorer  # noqa: E402
from rmkit.serve.app import create_app, redacted_log_config  # noqa: E402
from rmkit.serve.compat import strip_padding  # noqa: E402
from rmkit.serve.config import ServeConfig  # noqa: E402
from rmkit.serve.guard import RedactKey, redact  # noqa: E402
from rmkit.serve.sharing import prefix_groups  # noqa: E402
from test_serve import samples  # noqa: E402
from tiny import build_tokenizer  # noqa: E402

PROMPT = [{"role": "user", "content": "Jane has 12 apples. She gives 4 apples to her friend Mark. How many now?"}]
REPLIES = ["Each gets 3 apples.", "8", "The quick brown fox."]
CHATS = [PROMPT + [{"role": "assistant", "content": r}] for r in REPLIES]
sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731


@pytest.fixture(scope="module")
def scorer(tiny_llama):
    return RewardScorer.from_pretrained(str(tiny_llama), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def api(scorer):
    with TestClient(create_app(scorer, ServeConfig(api_key="k"))) as c:
        c.headers["Authorization"] = "Bearer k"
        yield c


def offline(scorer, chat) -> float:
    return scorer.score([chat])[0]


def verl_rm_prompt(tok, chat) -> str:
    """verl's RewardLoopWorker._preprocess_reward_inputs: the RM's chat template as text, BOS stripped."""
    text = tok.apply_chat_template(chat, add_generation_prompt=False, tokenize=False)
    return text[len(tok.bos_token):] if tok.bos_token and text.startswith(tok.bos_token) else text


def test_verl_reward_loop_classify_payloads(api, scorer):
    tok = scorer.tokenizer
    for chat in CHATS:
        text, want = verl_rm_prompt(tok, chat), offline(scorer, chat)
        for flag in ({"use_activation": False}, {"activation": False}):  # verl today / before vLLM 0.11.2
            out = api.post("/classify", json={"model": "/ckpt/rm", "input": text, **flag}).json()
            assert out["data"][-1]["probs"][-1] == pytest.approx(want, abs=1e-5)
        full = tok.apply_chat_template(chat, add_generation_prompt=False, tokenize=False)  # BOS kept
        out = api.post("/classify", json={"model": "m", "input": full, "use_activation": False,
                                          "add_special_tokens": False}).json()
        assert out["data"][-1]["probs"][-1] == pytest.approx(want, abs=1e-5)


def test_classify_and_pooling_apply_the_activation_unless_told_not_to(api, scorer):
    text, want = verl_rm_prompt(scorer.tokenizer, CHATS[0]), offline(scorer, CHATS[0])
    for path, read in (("/classify", lambda d: d["probs"][0]), ("/pooling", lambda d: d["data"][0])):
        plain = api.post(path, json={"input": text}).json()["data"][0]
        raw = api.post(path, json={"input": text, "use_activation": False}).json()["data"][0]
        assert read(plain) == pytest.approx(sig(want), abs=1e-6) and read(raw) == pytest.approx(want, abs=1e-5)
    assert api.post("/pooling", json={"input": text}).json()["data"][0]["object"] == "pooling"


def test_classify_takes_messages_and_token_ids(api, scorer):
    ids = scorer.encode([CHATS[1]])[0]
    want = offline(scorer, CHATS[1])
    by_msgs = api.post("/classify", json={"messages": CHATS[1], "use_activation": False}).json()
    by_ids = api.post("/classify", json={"input": ids, "use_activation": False}).json()
    batch = api.post("/pooling", json={"input": [ids, scorer.encode([CHATS[2]])[0]], "use_activation": False}).json()
    assert by_msgs["data"][0]["probs"][0] == pytest.approx(want, abs=1e-5)
    assert by_ids["data"][0]["probs"][0] == pytest.approx(want, abs=1e-5) and by_ids["usage"]["prompt_tokens"] == len(ids)
    assert [d["data"][0] for d in batch["data"]] == pytest.approx([want, offline(scorer, CHATS[2])], abs=1e-5)


def test_truncate_prompt_tokens_keeps_the_asked_tokens(api, scorer):
    ids = scorer.encode([CHATS[0]])[0]
    k = len(ids) - 5
    for side, kept in (("left", ids[-k:]), ("right", ids[:k])):
        out = api.post("/classify", json={"input": ids, "truncate_prompt_tokens": k, "truncation_side": side,
                                          "use_activation": False}).json()
        assert out["data"][0]["probs"][0] == pytest.approx(scorer.score_ids([kept])[0], abs=1e-5)
    default = api.post("/classify", json={"input": ids, "truncate_prompt_tokens": k, "use_activation": False}).json()
    side = scorer.tokenizer.truncation_side  # vLLM's default: the tokenizer's side
    kept = ids[-k:] if side == "left" else ids[:k]
    assert default["data"][0]["probs"][0] == pytest.approx(scorer.score_ids([kept])[0], abs=1e-5)


def test_verl_sglang_embeddings_payload(api, scorer):
    text = verl_rm_prompt(scorer.tokenizer, CHATS[1])
    out = api.post("/v1/embeddings", json={"model": "/ckpt/rm", "input": text}).json()
    assert out["data"][-1]["embedding"][-1] == pytest.approx(offline(scorer, CHATS[1]), abs=1e-5)
    assert out["object"] == "list" and out["data"][0]["object"] == "embedding" and out["usage"]["prompt_tokens"] > 0
    assert api.post("/v1/embeddings", json={"input": text}, headers={"Authorization": ""}).status_code == 401


def policy_query(policy_tok, chat) -> str:
    """What OpenRLHF sends: the policy's prompt (its template, generation prompt on) + the reply's ids
    with the policy's end token, decoded with special tokens."""
    prompt = policy_tok.apply_chat_template(chat[:-1], tokenize=False, add_generation_prompt=True)
    ids = policy_tok(prompt, add_special_tokens=False)["input_ids"]
    ids += policy_tok(chat[-1]["content"], add_special_tokens=False)["input_ids"]
    ids += [policy_tok.convert_tokens_to_ids("<|im_end|>")]
    return policy_tok.decode(ids, skip_special_tokens=False)


def test_get_reward_rerenders_a_query_in_the_policy_template(api, scorer):
    policy = build_tokenizer("chatml", add_bos=False)  # a Qwen-style policy; the reward model is Llama-style
    for chat in CHATS:
        query = policy_query(policy, chat)
        assert query.startswith("<|im_start|>user")
        out = api.post("/get_reward", json={"query": [query], "prompts": [query[:20]], "labels": [""]}).json()
        assert out["rewards"] == pytest.approx([offline(scorer, chat)], abs=1e-5) and out["scores"] == out["rewards"]
        assert out["errors"] == [None] and out["extra_logs"]["rmkit_fallback"] == [0.0]
        tokenized_as_given = scorer.score_texts([query])[0]
        assert abs(tokenized_as_given - out["rewards"][0]) > 1e-3  # what rmkit answered before: another reward


def test_get_reward_takes_the_reward_models_own_rendering_as_given(api, scorer):
    tok = scorer.tokenizer
    texts = [tok.apply_chat_template(c, tokenize=False) for c in CHATS]
    queries = [tok.pad_token * 3 + texts[0], texts[1] + tok.pad_token * 2, texts[2]]  # padding rides along
    out = api.post("/get_reward", json={"query": queries}).json()
    assert out["rewards"] == pytest.approx([offline(scorer, c) for c in CHATS], abs=1e-5)


def test_fallback_reward_for_what_cannot_be_scored(scorer, caplog):
    policy = build_tokenizer("chatml", add_bos=False)
    good = policy_query(policy, CHATS[0])
    broken = good.replace("<|im_start|>assistant", "junk<|im_start|>assistant")
    long = policy_query(policy, PROMPT + [{"role": "assistant", "content": "The quick brown fox. " * 40}])
    sc = RewardScorer.from_pretrained(scorer.model.config._name_or_path, device="cpu", max_length=64)
    with TestClient(create_app(sc, ServeConfig(on_error_reward=-10.0))) as c:
        with caplog.at_level(logging.WARNING, logger="rmkit.serve"):
            out = c.post("/get_reward", json={"query": [good, broken, long]}).json()
        cls = c.post("/classify", json={"input": [list(range(70)), [5, 6, 7]], "use_activation": False}).json()
        metrics = samples(c.get("/metrics").text)
    assert out["rewards"][0] == pytest.approx(offline(scorer, CHATS[0]), abs=1e-5)
    assert out["rewards"][1:] == [-10.0, -10.0] and out["scores"] == out["rewards"]
    assert out["extra_logs"]["rmkit_fallback"] == [0.0, 1.0, 1.0]
    assert out["extra_logs"]["rmkit_unparsed"] == [0.0, 1.0, 0.0] and out["extra_logs"]["rmkit_too_long"] == [0.0, 0.0, 1.0]
    assert out["errors"][0] is None and "text outside the chatml turns" in out["errors"][1]
    assert "max_length=64" in out["errors"][2]
    assert [d["probs"][0] for d in cls["data"]][0] == -10.0
    assert cls["data"][1]["probs"][0] == pytest.approx(sc.score_ids([[5, 6, 7]])[0], abs=1e-5)
    assert metrics["rmkit_fallback_rewards_total", (("endpoint", "/get_reward"), ("reason", "unparsed"))] == 1
    assert metrics["rmkit_fallback_rewards_total", (("endpoint", "/get_reward"), ("reason", "too_long"))] == 1
    assert metrics["rmkit_fallback_rewards_total", (("endpoint", "/classify"), ("reason", "too_long"))] == 1
    assert "gets the fallback reward -10.0 (unparsed" in caplog.text and "junk" in caplog.text


def test_without_a_fallback_an_unscorable_query_is_422(scorer):
    with TestClient(create_app(scorer, ServeConfig())) as c:
        r = c.post("/get_reward", json={"query": ["<|im_start|>user\nHi<|im_end|>\nno reply"]})
    assert r.status_code == 422 and "input 0" in r.json()["detail"]


def test_capability_url_key_in_the_path(scorer):
    text = verl_rm_prompt(scorer.tokenizer, CHATS[0])
    with TestClient(create_app(scorer, ServeConfig(api_key="s3cret-key"))) as c:
        ok = c.post("/k/s3cret-key/get_reward", json={"query": [text]})
        assert ok.status_code == 200 and ok.json()["rewards"] == pytest.approx([offline(scorer, CHATS[0])], abs=1e-5)
        assert c.post("/k/wrong/get_reward", json={"query": [text]}).status_code == 401
        assert c.post("/get_reward", json={"query": [text]}).status_code == 401  # neither header nor path key
        bearer = c.post("/get_reward", json={"query": [text]}, headers={"Authorization": "Bearer s3cret-key"})
        assert bearer.status_code == 200
        assert c.get("/k/s3cret-key/metrics").status_code == 200
        got = samples(c.get("/metrics", headers={"Authorization": "Bearer s3cret-key"}).text)
    assert got["rmkit_requests_total", (("endpoint", "/get_reward"), ("status", "200"))] == 2
    with TestClient(create_app(scorer, ServeConfig())) as c:  # no key configured: no capability URLs
        assert c.post("/k/anything/get_reward", json={"query": [text]}).status_code == 404


def test_the_key_never_reaches_a_log_line(caplog):
    assert redact('127.0.0.1:5 - "POST /k/s3cret/get_reward HTTP/1.1" 200') == \
        '127.0.0.1:5 - "POST /k/***/get_reward HTTP/1.1" 200'
    cfg = redacted_log_config()
    assert all("rmkit_redact" in h["filters"] for h in cfg["handlers"].values())
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "POST", "/k/s3cret/get_reward", "1.1", 200), None)
    assert RedactKey().filter(record) and "s3cret" not in record.getMessage() and "/k/***/" in record.getMessage()


def test_strip_padding_by_hand():
    assert strip_padding("<p><p>ab<e><p>", "<p>", "<e>") == "ab<e>"
    assert strip_padding("<e><e>ab<e><e><e>", "<e>", "<e>") == "ab<e>"  # pad == eos: the reply's own end kept
    assert strip_padding("ab", "<e>", "<e>") == "ab" and strip_padding("<p>", "<p>", None) == ""
    assert strip_padding("a<p>b", None) == "a<p>b"


def test_a_pool_sharing_a_prompt_runs_it_once_with_the_same_rewards(api, scorer):
    before = scorer.stats["shared_groups"]
    got = api.post("/v1/rewards", json={"conversations": CHATS}).json()["rewards"]
    assert got == pytest.approx([offline(scorer, c) for c in CHATS], abs=1e-5)
    assert scorer.stats["shared_groups"] > before


def test_prefix_groups_by_hand():
    a, b = list(range(20)) + [1], list(range(20)) + [2, 3]
    c, short = [5] * 30, list(range(10)) + [9]
    assert prefix_groups([a, c, b, None, short], min_shared=16) == [[0, 2], [1], [4]]
    assert prefix_groups([a, a], min_shared=16) == [[0, 1]]
    header = [7] * 20  # a template's system header in every request: not a reason to group two prompts
    x1, x2 = header + [1] * 30 + [5], header + [1] * 30 + [6]
    y1, y2, z = header + [2] * 30 + [5], header + [2] * 30 + [6], header + [3] * 30
    assert prefix_groups([x1, y1, x2, z, y2], min_shared=16) == [[0, 2], [1, 4], [3]]
    assert prefix_groups([x1, y1, z], min_shared=16) == [[0, 1, 2]]  # no prompt repeats: the header is all


def test_cli_never_binds_beyond_loopback_without_a_key(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from rmkit.cli import app
    from rmkit.serve.cli import policy_family

    monkeypatch.delenv("RMKIT_API_KEY", raising=False)
    out = CliRunner().invoke(app, ["serve", "--model", "unused", "--host", "0.0.0.0"])
    assert out.exit_code != 0 and "needs an API key" in out.output
    build_tokenizer("chatml", add_bos=False).save_pretrained(tmp_path / "policy")
    assert policy_family(str(tmp_path / "policy")) == "chatml" and policy_family("gemma") == "gemma"
    with pytest.raises(ValueError, match="needs an API key"):  # from Python too
        ServeConfig(host="0.0.0.0")
    assert ServeConfig(host="0.0.0.0", api_key="k").host == "0.0.0.0"
