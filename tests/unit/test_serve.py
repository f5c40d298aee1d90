"""TestClient tests of every `rmkit serve` endpoint and error path, on a tiny real model (fp32).

    .venv/bin/python -m pytest tests/unit/test_serve.py -q
"""
from __future__ import annotations

import math

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from rmkit.score.scorer import RewardScorer  # noqa: E402
from rmkit.score.factory import build_scorer  # noqa: E402
from rmkit.serve.app import create_app  # noqa: E402
from rmkit.serve.config import ServeConfig  # noqa: E402

U = {"role": "user", "content": "Jane has 12 apples. How many apples does each get?"}
A = {"role": "assistant", "content": "Each gets 3 apples."}
CONVS = [[U, A], [{"role": "system", "content": "You are a helpful assistant."}, U, A],
         [U, {"role": "assistant", "content": "The quick brown fox."}, U, A], [U]]
REWARD_TOL = 1e-5
"""Served vs offline rewards: another batch, the same fp32 model (DESIGN rule 7)."""


@pytest.fixture(scope="module", params=["hf", pytest.param("vllm", marks=pytest.mark.slow)])
def scorer(request):
    """Every endpoint test runs on both backends: rmkit's micro-batcher over the hf scorer, and vLLM's
    AsyncLLM (vllm_engine="async", as `rmkit serve --backend vllm` builds it)."""
    if request.param == "hf":
        yield RewardScorer.from_pretrained(str(request.getfixturevalue("tiny_llama")), device="cpu",
                                           dtype="float32", batch_tokens=64)
        return
    from conftest import needs

    needs("vllm", "vllm")
    sc = build_scorer(str(request.getfixturevalue("tiny_llama_vllm")), backend="vllm", vllm_engine="async",
                       dtype="float32", kv_cache_memory_bytes=64 << 20)
    yield sc
    sc.close()


def client(scorer, **cfg) -> TestClient:
    return TestClient(create_app(scorer, ServeConfig(**cfg)))


@pytest.fixture(scope="module")
def api(scorer):
    with client(scorer) as c:
        yield c


def test_rewards_equal_offline_scorer(api, scorer):
    r = api.post("/v1/rewards", json={"conversations": CONVS})
    assert r.status_code == 200
    assert r.json()["rewards"] == pytest.approx(scorer.score(CONVS), abs=REWARD_TOL)
    assert api.post("/v1/rewards", json={"conversations": []}).json() == {"rewards": []}


def test_compare_gives_both_rewards_and_sigmoid_of_difference(api, scorer):
    body = {"prompt": U["content"], "responses": [A["content"], "The quick brown fox."]}
    out = api.post("/v1/compare", json=body).json()
    offline = scorer.score([[U, A], [U, {"role": "assistant", "content": "The quick brown fox."}]])
    assert out["rewards"] == pytest.approx(offline, abs=REWARD_TOL)
    r1, r2 = out["rewards"]  # the served probability is the sigmoid of the served rewards, to float precision
    assert out["prob_first_better"] == pytest.approx(1 / (1 + math.exp(r2 - r1)), abs=1e-12)
    # against the offline rewards: sigmoid' <= 1/4 and the difference moves by <= 2 * REWARD_TOL
    assert out["prob_first_better"] == pytest.approx(1 / (1 + math.exp(offline[1] - offline[0])),
                                                     abs=0.5 * REWARD_TOL)


def test_rank_orders_responses_best_first(api, scorer):
    replies = ["Each gets 3 apples.", "Hello!", "def main(): return 42", "Sure, here is a poem."]
    prompt = [{"role": "system", "content": "Be brief."}, U]
    out = api.post("/v1/rank", json={"prompt": prompt, "responses": replies}).json()
    offline = scorer.score([prompt + [{"role": "assistant", "content": x}] for x in replies])
    assert out["rewards"] == pytest.approx(offline, abs=REWARD_TOL)
    # the order is the served rewards' (offline ones within REWARD_TOL may swap a near tie)
    assert sorted(out["order"]) == [0, 1, 2, 3]
    assert [out["rewards"][i] for i in out["order"]] == sorted(out["rewards"], reverse=True)
    assert out["best"] == out["order"][0]


def test_get_reward_is_openrlhf_shape_on_raw_text(api, scorer):
    texts = ["<|user|>\nHello!<|end|>\n<|assistant|>\nHi<|end|>\n", "The quick brown fox."]
    out = api.post("/get_reward", json={"query": texts, "prompts": ["ignored"]}).json()
    assert set(out) == {"rewards", "scores", "extra_logs", "errors"} and out["errors"] == [None, None]
    assert out["extra_logs"]["rmkit_fallback"] == [0.0, 0.0]  # numbers: OpenRLHF makes tensors of them
    assert out["rewards"] == pytest.approx(scorer.score_texts(texts), abs=REWARD_TOL)
    assert out["scores"] == out["rewards"]


@pytest.mark.parametrize("path", ["/classify", "/v1/classify"])
def test_classify_is_vllm_shape_with_raw_reward(api, scorer, path):
    texts = ["Hello! How can I help you today?", "0123456789"]
    one = api.post(path, json={"model": "m", "input": texts[0], "use_activation": False}).json()
    many = api.post(path, json={"input": texts, "use_activation": False}).json()
    offline = scorer.score_texts(texts)
    assert [d["index"] for d in many["data"]] == [0, 1] and many["object"] == "list"
    assert [d["probs"][0] for d in many["data"]] == pytest.approx(offline, abs=REWARD_TOL)
    assert one["data"][0]["probs"][0] == pytest.approx(offline[0], abs=REWARD_TOL)
    assert one["data"][0]["num_classes"] == 1 and many["usage"]["prompt_tokens"] > 0
    assert any(not 0 <= x <= 1 for x in offline), "tiny model rewards must show no sigmoid was applied"


def test_health_docs_and_openapi(api):
    assert api.get("/health").json()["status"] == "ok"
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    for p in ("/v1/rewards", "/v1/compare", "/v1/rank", "/get_reward", "/classify", "/v1/classify",
              "/health", "/metrics"):
        assert p in paths


def test_metrics_prometheus_text(scorer):
    with client(scorer) as c:
        c.post("/v1/rewards", json={"conversations": CONVS[:2]})
        c.post("/v1/rewards", json={"conversations": "nope"})
        c.get("/no/such/path")
        r = c.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=")
    got = samples(r.text)
    assert got["rmkit_requests_total", (("endpoint", "/v1/rewards"), ("status", "200"))] == 1
    assert got["rmkit_requests_total", (("endpoint", "/v1/rewards"), ("status", "422"))] == 1
    assert got["rmkit_requests_total", (("endpoint", "other"), ("status", "404"))] == 1
    assert got["rmkit_batch_size_sum", ()] == 2 and got["rmkit_conversations_scored_total", ()] == 2
    assert got["rmkit_request_latency_seconds_count", ()] == 2 and got["rmkit_queue_depth", ()] == 0
    assert "# TYPE rmkit_batch_size histogram" in r.text.splitlines()


def samples(text: str) -> dict:
    """{(sample name, sorted label items): value} of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


BAD_BODIES = [
    ("/v1/rewards", {"conversations": [[{"role": "bot", "content": "hi"}]]}, "role"),
    ("/v1/rewards", {"conversations": [[{"role": "user", "content": 3}]]}, "content"),
    ("/v1/rewards", {"conversations": [[{"role": "user"}]]}, "content"),
    ("/v1/rewards", {"conversations": [[]]}, "conversation 0 is empty"),
    ("/v1/rewards", {"convs": []}, "conversations"),
    ("/v1/compare", {"prompt": "hi", "responses": ["a", "b", "c"]}, "responses"),
    ("/v1/compare", {"prompt": [], "responses": ["a", "b"]}, "prompt is empty"),
    ("/v1/rank", {"prompt": "hi", "responses": []}, "responses"),
    ("/get_reward", {"query": "not a list"}, "query"),
    ("/classify", {"input": [{"text": "hi"}]}, "input"),
    ("/classify", {"input": [1, 99999]}, "outside the vocabulary"),
    ("/pooling", {"input": "hi", "messages": [{"role": "user", "content": "hi"}]}, "exactly one of"),
    ("/pooling", {"input": "hi", "truncate_prompt_tokens": -2}, "truncate_prompt_tokens"),
]


@pytest.mark.parametrize("path,body,word", BAD_BODIES)
def test_malformed_bodies_are_422_naming_the_field(api, path, body, word):
    r = api.post(path, json=body)
    assert r.status_code == 422
    assert word in str(r.json()["detail"])


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2", b"\xff\xfe"])
def test_malformed_json_is_422_never_500(api, raw):
    r = api.post("/v1/rewards", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_body_limit_is_413_with_or_without_content_length(scorer):
    big = {"conversations": [[{"role": "user", "content": "x" * 3000}]]}
    with client(scorer, max_body_bytes=1000) as c:
        r = c.post("/v1/rewards", json=big)
        assert r.status_code == 413 and "max_body_bytes=1000" in r.json()["detail"]
        chunks = (b'{"conversations": [[{"role": "user", "content": "' + b"x" * 500 for _ in range(4))
        r = c.post("/v1/rewards", content=chunks, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "max_body_bytes=1000" in r.json()["detail"]
        assert c.post("/v1/rewards", json={"conversations": CONVS[:1]}).status_code == 200


def test_conversation_count_limit_is_413(scorer):
    with client(scorer, max_conversations=2, max_queue=8) as c:
        r = c.post("/v1/rewards", json={"conversations": CONVS[:3]})
        assert r.status_code == 413 and "max_conversations=2" in r.json()["detail"]
        r = c.post("/get_reward", json={"query": ["a", "b", "c"]})
        assert r.status_code == 413 and "max_conversations=2" in r.json()["detail"]
        r = c.post("/v1/rank", json={"prompt": "hi", "responses": ["a", "b", "c"]})
        assert r.status_code == 413


def test_token_limit_is_422_naming_the_limit(tiny_llama):
    sc = RewardScorer.from_pretrained(str(tiny_llama), device="cpu", max_length=24)
    U = {"role": "user", "content": "Hi"}
    long_text = "The quick brown fox jumps over the lazy dog. " * 6
    with client(sc) as c:
        r = c.post("/v1/rewards", json={"conversations": [[U], [{"role": "user", "content": long_text}]]})
        assert r.status_code == 422 and "conversation 1" in r.json()["detail"]
        assert "max_tokens=24" in r.json()["detail"]
        r = c.post("/get_reward", json={"query": ["short", long_text]})
        assert r.status_code == 422 and "input 1" in r.json()["detail"] and "max_tokens=24" in r.json()["detail"]
    with client(sc, max_tokens=8) as c:  # a server limit below the model's
        r = c.post("/classify", json={"input": "The quick brown fox jumps over the lazy dog."})
        assert r.status_code == 422 and "over max_tokens=8" in r.json()["detail"]


def test_skip_policy_answers_null_and_ranks_it_last(tiny_llama):
    sc = RewardScorer.from_pretrained(str(tiny_llama), device="cpu", max_length=24, truncation="skip")
    long_reply = "The quick brown fox jumps over the lazy dog. " * 6
    with client(sc) as c:
        out = c.post("/v1/rank", json={"prompt": "Hello!", "responses": [long_reply, "Hi", "Sure"]}).json()
        assert out["rewards"][0] is None and out["order"][-1] == 0
        cmp = c.post("/v1/compare", json={"prompt": "Hello!", "responses": ["Hi", long_reply]}).json()
        assert cmp["rewards"][1] is None and cmp["prob_first_better"] is None
        assert cmp["rewards"][0] == pytest.approx(out["rewards"][1], abs=REWARD_TOL)


def test_api_key_guards_scoring_and_metrics_not_health(scorer):
    body = {"conversations": CONVS[:1]}
    with client(scorer, api_key="s3cret-ключ") as c:
        assert c.post("/v1/rewards", json=body).status_code == 401
        r = c.post("/v1/rewards", json=body, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/get_reward", json={"query": ["x"]}, headers={"Authorization": "s3cret"}).status_code == 401
        good = {"Authorization": "Bearer s3cret-ключ".encode()}  # a non-ASCII key, sent as UTF-8
        assert c.post("/v1/rewards", json=body, headers=good).status_code == 200
        assert c.get("/metrics").status_code == 401 and c.get("/metrics", headers=good).status_code == 200
        assert c.get("/health").status_code == 200


def test_shutdown_refuses_new_work(scorer):
    app = create_app(scorer, ServeConfig())
    with TestClient(app) as c:
        assert c.post("/v1/rewards", json={"conversations": CONVS[:1]}).status_code == 200
    batcher = app.state.rmkit.batcher
    assert batcher.closing
    with TestClient(app) as c:  # a closed server answers 503 + Retry-After, never hangs
        r = c.post("/v1/rewards", json={"conversations": CONVS[:1]})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert c.get("/health").status_code == 503


def test_a_chat_template_error_is_422_not_500(tiny_llama):
    sc = RewardScorer.from_pretrained(str(tiny_llama), device="cpu")
    sc.tokenizer.chat_template = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
                                  "supported') }}{% endif %}{% for m in messages %}{{ m['content'] }}{% endfor %}")
    with client(sc) as c:
        r = c.post("/v1/rewards", json={"conversations": [CONVS[0], CONVS[1]]})
        assert r.status_code == 422 and "conversation 1" in r.json()["detail"]
        assert "System role not supported" in r.json()["detail"]
        assert c.post("/v1/rewards", json={"conversations": [CONVS[0]]}).status_code == 200


def test_an_empty_reply_gets_a_reward(api, scorer):
    from rmkit.data import Message

    out = api.post("/v1/compare", json={"prompt": "Say something.", "responses": ["Something.", ""]}).json()
    want = scorer.score([[Message("user", "Say something."), Message("assistant", "")]])[0]
    assert out["rewards"][1] == pytest.approx(want, abs=REWARD_TOL)
