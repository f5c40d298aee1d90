"""EndpointJudge over real HTTP: against vLLM's own OpenAI-compatible server running the embedded
SmolLM2-135M-Instruct (its answers are vLLM's offline greedy answers, a rerun is answered from the cache),
and against a scripted stub server that answers 503 before it answers (retries with backoff, a request
that keeps failing is None, counted, not cached and scored as unparseable), 400 (raised, naming the URL),
and counts the requests in flight (never more than `concurrency`).

    pytest -m slow tests/integration/test_judge_endpoint.py     # ~2-3 min on 2 CPU cores: two vLLM engines start
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

pytestmark = pytest.mark.slow  # starts vLLM's OpenAI server and an offline vLLM engine

from conftest import needs
from servers import free_port, serving

from rmkit.data.schema import Message, PreferencePair
from rmkit.evaluate.judging import judge_rewardbench, mtbench_messages, parse_mtbench
from rmkit.score import judge as judge_module
from rmkit.score.judge import AnswerCache, EndpointJudge

SERVED = "smollm2"
KV_BYTES = 256 << 20  # ~5.7K tokens of SmolLM2-135M in fp32: plenty for 8 short requests


def short_pairs() -> list[PreferencePair]:
    """The shortest pair (prompt + both replies, in characters) of each RewardBench section, so that four
    pairs cover Chat, Chat Hard, Safety and Reasoning and still judge in seconds on a CPU."""
    from rmkit.evaluate.constants import SUBSET_MAPPING
    from rmkit.evaluate.rewardbench import load_rewardbench

    pairs = load_rewardbench()
    size = lambda p: sum(len(m.content) for m in p.prompt) + len(p.chosen[-1].content) + len(p.rejected[-1].content)
    return [min((p for p in pairs if p.category in subsets), key=lambda p: (size(p), p.id))
            for subsets in SUBSET_MAPPING.values()]


# ---- a real server: vLLM's OpenAI API server in a subprocess ----

@contextmanager
def vllm_server(model_path: str, log_path: Path):
    """Starts `python -m vllm.entrypoints.openai.api_server` (its own session, so its engine-core child is
    ended with it); yields a function that waits for /health and returns the base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_path,
           "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
           "--max-model-len", "2048", "--kv-cache-memory-bytes", str(KV_BYTES), "--enforce-eager", "--seed", "0",
           "--disable-log-stats", "--uvicorn-log-level", "warning"]
    log = open(log_path, "wb")  # noqa: SIM115 - closed when the server is stopped
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready(guard_s: float = 420.0) -> str:
        deadline = time.monotonic() + guard_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"vLLM's server exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"vLLM's server not healthy after {guard_s:.0f} s:\n{log_path.read_text()[-3000:]}")

    try:
        yield ready
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the group of the server this test started, no other
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


def _without_answer_counts(results: dict) -> dict:
    out = json.loads(json.dumps(results))
    del out["judge"]["answers"]  # {"asked": 8} the first time, {"cached": 8} the second
    return out


def test_endpoint_judge_on_vllms_openai_server_gives_the_offline_greedy_answers(tmp_path):
    needs("vllm", "vllm")
    from rmkit.models.load import resolve_name
    from rmkit.score.judge import VLLMJudge

    path = str(resolve_name("smollm2-135m-instruct"))
    pairs = short_pairs()
    requests = [mtbench_messages(p, first) for p in pairs for first in (True, False)]
    assert len(requests) == 8 and all(m is not None for m in requests)
    cache = tmp_path / "a.jsonl"
    with vllm_server(path, tmp_path / "server.log") as ready:
        # the offline engine starts while the server boots: vLLM's LLM.generate, greedy, the same ids
        offline = VLLMJudge(path, max_tokens=16, dtype="float32", max_length=2048, cache=False,
                            kv_cache_memory_bytes=KV_BYTES)
        try:
            expected = offline.generate(requests)
        finally:
            offline.close()
        url = ready()
        judge = EndpointJudge(url, SERVED, max_tokens=16, concurrency=4, retries=2, cache=cache)
        results = judge_rewardbench(judge, pairs, n_boot=50)

    # every request asked once and answered; the answers are the offline engine's, request by request
    assert judge.stats == {"cached": 0, "asked": 8}, judge.stats
    stored = AnswerCache(cache).answers
    assert len(stored) == 8
    assert [stored[judge.key(m)] for m in requests] == expected
    assert all(isinstance(a, str) and a for a in expected)
    for i, item in enumerate(results["items"]):
        assert item["id"] == pairs[i].id
        assert item["verdict_chosen_first"] == parse_mtbench(expected[2 * i])
        assert item["verdict_chosen_second"] == parse_mtbench(expected[2 * i + 1])
        assert item["correct"] in (0.0, 0.5, 1.0)

    # the results' shape
    assert 0.0 <= results["score"] <= 1.0 and results["model"] == judge.name == f"{SERVED}@{url}/v1"
    assert set(results["sections"]) == {"Chat", "Chat Hard", "Safety", "Reasoning"}
    j = results["judge"]
    assert j["failed_requests"] == 0 and "failed" not in j["answers"] and j["max_tokens"] == 16
    assert j["verdicts"] + j["unparseable"] == 8
    if j["verdicts"]:
        assert 0.0 <= j["picks_first"] <= 1.0 and len(j["picks_first_interval"]) == 2
    else:  # nothing parsed in 16 tokens: no position bias to report
        assert j["picks_first"] is None and j["picks_first_interval"] is None
    assert set(j["orders"]) == {"chosen first", "chosen second"}
    assert all(0.0 <= o["score"] <= 1.0 for o in j["orders"].values())

    # the server is gone: a rerun is answered from the cache alone (no retries, so any request would fail)
    again = EndpointJudge(url, SERVED, max_tokens=16, retries=0, cache=cache)
    rerun = judge_rewardbench(again, pairs, n_boot=50)
    assert again.stats == {"cached": 8, "asked": 0}
    assert _without_answer_counts(rerun) == _without_answer_counts(results)


# ---- a scripted stub: 503 first, 400, requests in flight ----

class Stub:
    """An OpenAI-compatible /v1/chat/completions that answers the MT-Bench prompt right ("[[A]]" when
    assistant A's answer is the GOOD one), after `fail_first` 503s per conversation for the conversations
    `fails(messages)` picks; or 400 for everything when `refuse`. Counts requests and the most in flight."""

    def __init__(self, fail_first: int = 2, fails=lambda messages: True, refuse: bool = False):
        self.fail_first, self.fails, self.refuse = fail_first, fails, refuse
        self.seen: Counter = Counter()
        self.requests = self.in_flight = self.max_in_flight = 0  # one event loop: no lock needed

    def app(self):
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(0.05)  # long enough for the client's other requests to arrive
                if self.refuse:
                    return JSONResponse({"error": {"message": "no such model", "code": 400}}, status_code=400)
                key = json.dumps(body["messages"], sort_keys=True)
                self.seen[key] += 1
                if self.fails(body["messages"]) and self.seen[key] <= self.fail_first:
                    return JSONResponse({"error": {"message": "overloaded", "code": 503}}, status_code=503)
                good_first = "[The Start of Assistant A's Answer]\nGOOD" in body["messages"][-1]["content"]
                verdict = "[[A]]" if good_first else "[[B]]"
                return {"id": f"chatcmpl-{self.requests}", "object": "chat.completion", "created": 0,
                        "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": f"Clearly. {verdict}"}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}}
            finally:
                self.in_flight -= 1

        return app


@contextmanager
def running(stub: Stub):
    with serving(stub.app()) as (url, _, _):
        yield url


class _FastAsyncio:
    """rmkit.score.judge's `asyncio`, with `sleep` recorded and shortened (the backoff is 1, 2, 4... s);
    only that module sees it, so uvicorn's loop in the stub keeps the real one."""

    def __init__(self):
        self.delays: list[float] = []

    def __getattr__(self, name):
        return getattr(asyncio, name)

    async def sleep(self, delay, result=None):
        self.delays.append(delay)
        return await asyncio.sleep(0.001, result)


@pytest.fixture
def backoff(monkeypatch):
    fast = _FastAsyncio()
    monkeypatch.setattr(judge_module, "asyncio", fast)
    return fast


def _pairs(n: int = 4) -> list[PreferencePair]:
    return [PreferencePair(id=str(i), source="rb", prompt=[Message("user", f"Question {i}?")],
                           chosen=[Message("assistant", f"GOOD answer {i}")],
                           rejected=[Message("assistant", f"bad answer {i}")], category="alpacaeval-easy")
            for i in range(n)]


def test_retries_get_every_answer_with_at_most_concurrency_requests_in_flight(tmp_path, backoff):
    stub = Stub(fail_first=2)
    with running(stub) as url:
        judge = EndpointJudge(url, "stub", retries=3, concurrency=2, max_tokens=8, cache=tmp_path / "r.jsonl")
        results = judge_rewardbench(judge, _pairs(), n_boot=20)
    assert judge.stats == {"cached": 0, "asked": 8}  # no "failed"
    assert stub.requests == 8 * 3 and set(stub.seen.values()) == {3}  # two 503s, then the answer
    assert sorted(backoff.delays) == [1.0] * 8 + [2.0] * 8  # 2**(attempt-1) s before each retry
    assert stub.max_in_flight == 2  # the bound, reached and never passed, with 8 requests to make
    assert [it["correct"] for it in results["items"]] == [1.0] * 4 and results["score"] == pytest.approx(0.25)
    assert results["judge"]["failed_requests"] == 0 and results["judge"]["consistency"] == 1.0
    assert len(AnswerCache(tmp_path / "r.jsonl").answers) == 8


def test_a_request_that_keeps_failing_is_none_counted_not_cached_and_scored_half(tmp_path, backoff):
    stub = Stub(fail_first=2, fails=lambda messages: "GOOD answer 0" in messages[-1]["content"])
    cache = tmp_path / "r.jsonl"
    with running(stub) as url:
        judge = EndpointJudge(url, "stub", retries=1, concurrency=2, max_tokens=8, cache=cache)
        pairs = _pairs()
        results = judge_rewardbench(judge, pairs, n_boot=20)
        # pair 0's two requests: 503 twice each, so no answer after retries=1; the six others answered
        assert judge.stats == {"cached": 0, "asked": 8, "failed": 2} and backoff.delays == [1.0] * 2
        assert stub.requests == 2 * 2 + 6
        assert results["items"][0]["verdict_chosen_first"] is None
        assert results["items"][0]["verdict_chosen_second"] is None
        assert [it["correct"] for it in results["items"]] == [0.5, 1.0, 1.0, 1.0]  # unparseable: 0.5
        j = results["judge"]
        assert j["failed_requests"] == 2 and j["unparseable"] == 2 and j["verdicts"] == 6
        assert results["subsets"]["alpacaeval-easy"]["accuracy"] == pytest.approx(3.5 / 4)
        # no answer, nothing cached: a rerun asks again, and the server answers this time
        assert len(AnswerCache(cache).answers) == 6
        rerun = EndpointJudge(url, "stub", retries=1, concurrency=2, max_tokens=8, cache=cache)
        results = judge_rewardbench(rerun, pairs, n_boot=20)
    assert rerun.stats == {"cached": 6, "asked": 2}
    assert [it["correct"] for it in results["items"]] == [1.0] * 4 and results["judge"]["failed_requests"] == 0


def test_a_refused_request_raises_naming_the_url(tmp_path, backoff):
    stub = Stub(refuse=True)
    with running(stub) as url:
        judge = EndpointJudge(url, "stub", retries=3, concurrency=2, max_tokens=8, cache=tmp_path / "r.jsonl")
        with pytest.raises(ValueError, match=re.escape(f"{url}/v1/chat/completions") + ".*HTTP 400"):
            judge_rewardbench(judge, _pairs(), n_boot=20)
    assert backoff.delays == []  # a 4xx is not retried
    assert not (tmp_path / "r.jsonl").exists()
