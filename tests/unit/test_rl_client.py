"""The `rmkit serve` client of the RL reward function: bearer key, bounded retries after 503 / timeouts,
a refused sample isolated from its batch, a wrong key raised at once. Deterministic: httpx's
MockTransport plays the server, and the backoff sleeps are recorded, never slept.

    .venv/bin/python -m pytest tests/unit/test_rl_client.py -q
"""
from __future__ import annotations

import json

import pytest

httpx = pytest.importorskip("httpx")

from rmkit.integrations.client import RemoteError, RemoteSource, base_url, chunk_groups  # noqa: E402
from rmkit.integrations.rewards import RewardError, Sample  # noqa: E402
from rmkit.integrations.trl import RewardFunction, reward_function  # noqa: E402


def reward_of(conv) -> float:
    return float(len(conv[-1]["content"]))


class FakeServer:
    """Answers /v1/rewards like rmkit serve (reward = length of the last message), after `script`:
    a list of (status, headers) answered first, or "timeout"; `refuse`: contents answered with 422."""

    def __init__(self, script=(), refuse=(), key=None):
        self.script, self.refuse, self.key = list(script), set(refuse), key
        self.bodies, self.auth = [], []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        self.auth.append(request.headers.get("authorization"))
        if self.key and request.headers.get("authorization") != f"Bearer {self.key}":
            return httpx.Response(401, json={"detail": "missing or invalid API key"})
        if self.script:
            step = self.script.pop(0)
            if step == "timeout":
                raise httpx.ReadTimeout("read timed out", request=request)
            return httpx.Response(step[0], headers=step[1], json={"detail": "the queue is full; retry later"})
        convs = body["conversations"]
        for i, c in enumerate(convs):
            if c[-1]["content"] in self.refuse:
                return httpx.Response(422, json={"detail": f"conversation {i} is too long"})
        return httpx.Response(200, json={"rewards": [reward_of(c) for c in convs]})


def source(server, sleeps, **kw) -> RemoteSource:
    return RemoteSource("http://rm:8000/v1/rewards", transport=httpx.MockTransport(server), sleep=sleeps.append, **kw)


PROMPTS = [[{"role": "user", "content": "q1"}]] * 3 + [[{"role": "user", "content": "q2"}]] * 3
REPLIES = [[{"role": "assistant", "content": "a" * (i + 1)}] for i in range(6)]
WANT = [float(i + 1) for i in range(6)]


def test_key_groups_and_chunks():
    server, sleeps = FakeServer(key="s3cret"), []
    fn = RewardFunction(source(server, sleeps, api_key="s3cret", batch_size=4))
    assert fn(PROMPTS, REPLIES) == WANT
    assert set(server.auth) == {"Bearer s3cret"} and sleeps == []
    # a prompt's 3 completions stay in one request: [q1 x3], [q2 x3] (4 + 2 would split q2)
    assert [len(b["conversations"]) for b in server.bodies] == [3, 3]
    assert base_url("http://h:1/get_reward/") == base_url("http://h:1") == "http://h:1"
    assert chunk_groups([[0, 1, 2, 3, 4], [5]], 2) == [[0, 1], [2, 3], [4, 5]]


def test_busy_server_is_retried_after_retry_after_then_answers():
    server, sleeps = FakeServer(script=[(503, {"Retry-After": "2"}), "timeout"]), []
    fn = RewardFunction(source(server, sleeps, retries=3, backoff_s=0.5))
    assert fn(PROMPTS, REPLIES) == WANT
    assert sleeps == [2.0, 1.0]  # Retry-After, then the exponential backoff (0.5 * 2**1)


def test_no_answer_after_the_retries_is_reported_never_a_silent_zero():
    server, sleeps = FakeServer(script=["timeout"] * 10), []
    with pytest.raises(RewardError, match="no answer within timeout=5") as e:
        RewardFunction(source(server, sleeps, retries=2, timeout=5))(PROMPTS[:2], REPLIES[:2])
    assert sorted(e.value.failures) == [0, 1] and len(server.bodies) == 3 and sleeps == [0.5, 1.0]
    server.script = ["timeout"] * 3
    got = RewardFunction(source(server, [], retries=2), on_error=-1.0)(PROMPTS[:2], REPLIES[:2])
    assert got == [-1.0, -1.0]


def test_a_refused_sample_is_isolated_and_the_rest_scored():
    server = FakeServer(refuse={"aaaa"})
    fn = RewardFunction(source(server, [], batch_size=6), on_error=None)
    got = fn(PROMPTS, REPLIES)
    assert got[3] is None and [g for i, g in enumerate(got) if i != 3] == [w for i, w in enumerate(WANT) if i != 3]
    assert fn.stats["failed"] == 1
    with pytest.raises(RewardError, match="HTTP 422: conversation 0 is too long"):
        RewardFunction(source(FakeServer(refuse={"aaaa"}), []))(PROMPTS, REPLIES)


def test_wrong_key_and_wrong_server_raise_at_once():
    server, sleeps = FakeServer(key="right"), []
    with pytest.raises(RemoteError, match="HTTP 401.*api_key"):
        RewardFunction(source(server, sleeps, api_key="wrong"))(PROMPTS, REPLIES)
    assert len(server.bodies) == 1 and sleeps == []
    not_rmkit = httpx.MockTransport(lambda r: httpx.Response(200, json={"scores": [1.0]}))
    with pytest.raises(RemoteError, match="without a 'rewards' list"):
        RemoteSource("http://x", transport=not_rmkit).score([Sample("q", "a")])


def test_null_reward_from_a_skip_server_fails_that_sample():
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"rewards": [1.5, None]}))
    fn = RewardFunction(RemoteSource("http://x", transport=transport), on_error=0.25)
    assert fn(["q", "q"], ["a", "b"]) == [1.5, 0.25]


def test_options_reach_the_right_source():
    with pytest.raises(TypeError, match="only apply to a server URL"):
        reward_function("some/model", api_key="k")
    with pytest.raises(TypeError, match="do not apply to a server URL"):
        reward_function("http://127.0.0.1:9", dtype="bfloat16")
    with pytest.raises(ValueError, match="normalize=True"):
        reward_function("http://127.0.0.1:9", normalize=True)
