"""`rmkit serve` answers the RL frameworks' reward clients with the payloads they send today, and gives
the rewards rmkit computes offline: verl's reward loop (vLLM /classify; SGLang /v1/embeddings) and
OpenRLHF's remote RM (/get_reward with {query, prompts, labels}). Concurrent sequences sharing a prompt
run it once (exact). Tiny real model, fp32.

    .venv/bin/python -m pytest tests/unit/test_serve_rl_compat.py -q
"""
from __future__ import annotations

import math

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from rmkit.score.scorer import RewardScorer  # noqa: E402
from rmkit.serve.app import create_app  # noqa: E402
from rmkit.serve.compat import strip_padding  # noqa: E402
from rmkit.serve.config import ServeConfig  # noqa: E402
from rmkit.serve.sharing import prefix_groups  # noqa: E402

PROMPT = [{"role": "user", "content": "Jane has 12 apples. She gives 4 apples to her friend Mark. How many now?"}]
REPLIES = ["Each gets 3 apples.", "8", "The quick brown fox."]
CHATS = [PROMPT + [{"role": "assistant", "content": r}] for r in REPLIES]


@pytest.fixture(scope="module")
def scorer(tiny_llama):
    return RewardScorer.from_pretrained(str(tiny_llama), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def api(scorer):
    with TestClient(create_app(scorer, ServeConfig(api_key="k"))) as c:
        c.headers["Authorization"] = "Bearer k"
        yield c


def verl_rm_prompt(tok, chat) -> str:
    """verl's RewardLoopWorker._preprocess_reward_inputs: the RM's chat template as text, BOS stripped."""
    text = tok.apply_chat_template(chat, add_generation_prompt=False, tokenize=False)
    return text[len(tok.bos_token):] if tok.bos_token and text.startswith(tok.bos_token) else text


def test_verl_reward_loop_classify_payloads(api, scorer):
    offline = [scorer.score([c])[0] for c in CHATS]
    tok = scorer.tokenizer
    for i, chat in enumerate(CHATS):
        text = verl_rm_prompt(tok, chat)
        for flag in ({"use_activation": False}, {"activation": False}):  # verl today / before vLLM 0.11.2
            out = api.post("/classify", json={"model": "/ckpt/rm", "input": text, **flag}).json()
            assert out["data"][-1]["probs"][-1] == pytest.approx(offline[i], abs=1e-5)
        full = tok.apply_chat_template(chat, add_generation_prompt=False, tokenize=False)  # BOS kept
        out = api.post("/classify", json={"model": "m", "input": full, "use_activation": False,
                                          "add_special_tokens": False}).json()
        assert out["data"][-1]["probs"][-1] == pytest.approx(offline[i], abs=1e-5)
    sig = api.post("/classify", json={"input": verl_rm_prompt(tok, CHATS[0]), "use_activation": True}).json()
    assert sig["data"][0]["probs"][0] == pytest.approx(1 / (1 + math.exp(-offline[0])), abs=1e-6)


def test_verl_sglang_embeddings_payload(api, scorer):
    text = verl_rm_prompt(scorer.tokenizer, CHATS[1])
    out = api.post("/v1/embeddings", json={"model": "/ckpt/rm", "input": text}).json()
    assert out["data"][-1]["embedding"][-1] == pytest.approx(scorer.score([CHATS[1]])[0], abs=1e-5)
    assert out["object"] == "list" and out["data"][0]["object"] == "embedding" and out["usage"]["prompt_tokens"] > 0
    assert api.post("/v1/embeddings", json={"input": text}, headers={"Authorization": ""}).status_code == 401


def test_openrlhf_remote_rm_payload_with_padding(api, scorer):
    tok = scorer.tokenizer
    texts = [tok.apply_chat_template(c, tokenize=False) for c in CHATS]
    # OpenRLHF decodes padded rollouts with skip_special_tokens=False: left and right padding ride along
    queries = [tok.pad_token * 3 + texts[0], texts[1] + tok.pad_token * 2, texts[2]]
    body = {"query": queries, "prompts": [tok.apply_chat_template(PROMPT, tokenize=False)] * 3,
            "labels": ["", "", ""]}
    out = api.post("/get_reward", json=body).json()
    assert set(out) == {"rewards", "scores", "extra_logs"} and out["scores"] == out["rewards"]
    assert out["rewards"] == pytest.approx(scorer.score_texts(texts), abs=1e-5)
    assert out["rewards"] == pytest.approx([scorer.score([c])[0] for c in CHATS], abs=1e-5)


def test_strip_padding_by_hand():
    assert strip_padding("<p><p>ab<e><p>", "<p>", "<e>") == "ab<e>"
    assert strip_padding("<e><e>ab<e><e><e>", "<e>", "<e>") == "ab<e>"  # pad == eos: the reply's own end kept
    assert strip_padding("ab", "<e>", "<e>") == "ab" and strip_padding("<p>", "<p>", None) == ""
    assert strip_padding("a<p>b", None) == "a<p>b"


def test_a_pool_sharing_a_prompt_runs_it_once_with_the_same_rewards(api, scorer):
    before = scorer.stats["shared_groups"]
    got = api.post("/v1/rewards", json={"conversations": CHATS}).json()["rewards"]
    assert got == pytest.approx([scorer.score([c])[0] for c in CHATS], abs=1e-5)
    assert scorer.stats["shared_groups"] > before


def test_prefix_groups_by_hand():
    a, b = list(range(20)) + [1], list(range(20)) + [2, 3]
    c, short = [5] * 30, list(range(10)) + [9]
    assert prefix_groups([a, c, b, None, short], min_shared=16) == [[0, 2], [1], [4]]
    assert prefix_groups([a, a], min_shared=16) == [[0, 1]]
