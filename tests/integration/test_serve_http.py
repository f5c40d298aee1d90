"""`rmkit serve` over real HTTP: uvicorn on a free loopback port, concurrent clients, overload, shutdown.

    .venv/bin/python -m pytest tests/integration/test_serve_http.py -q

The scorer is the real tiny model. To make batching and overload deterministic (never timed), it is
wrapped by `Gated`, whose score_ids waits on a gate before calling the real RewardScorer.score_ids:
the test holds one call open, lets requests pile up (watched through /health), then opens the gate.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from servers import free_port, serving  # noqa: E402

from rmkit.score.scorer import RewardScorer  # noqa: E402
from rmkit.serve.app import create_app  # noqa: E402
from rmkit.serve.config import ServeConfig  # noqa: E402

TOPICS = ["apples", "the sea", "a fox", "numbers", "poems", "the sky", "dogs", "code", "math", "rain",
          "bread", "trains"]
CONVS = [[{"role": "user", "content": f"Tell me about {t}."},
          {"role": "assistant", "content": f"Here is a short note about {t}: " + "it is nice. " * i}]
         for i, t in enumerate(TOPICS)]


class Gated:
    """The real scorer; score_ids waits on `gate` first (set = open) and flags `entered`."""

    def __init__(self, scorer: RewardScorer):
        self._scorer = scorer
        self.gate, self.entered = threading.Event(), threading.Event()
        self.gate.set()

    def __getattr__(self, name):
        return getattr(self._scorer, name)

    def score_ids(self, seqs):
        self.entered.set()
        assert self.gate.wait(60), "test gate never opened"
        return self._scorer.score_ids(seqs)


@pytest.fixture(scope="module")
def scorer(tiny_llama):
    return RewardScorer.from_pretrained(str(tiny_llama), device="cpu", dtype="float32")


@contextmanager
def running(app, gated: Gated | None = None):
    with serving(app, timeout_graceful_shutdown=30) as (url, server, thread):
        try:
            yield url, server, thread
        finally:
            if gated is not None:
                gated.gate.set()  # never leave a call held when a test fails (before the server stops)


def wait_for(predicate, what: str, guard_s: float = 60.0):
    """Poll until `predicate()`; `guard_s` only stops a broken server from hanging the suite."""
    deadline = time.monotonic() + guard_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.025)
    raise AssertionError(f"gave up waiting for {what}")


def health(url) -> dict:
    r = httpx.get(f"{url}/health", timeout=10)
    assert r.status_code == 200
    return r.json()


def post(url, convs):
    return httpx.post(f"{url}/v1/rewards", json={"conversations": convs}, timeout=60)


def metric(text: str, line_start: str) -> float:
    return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(line_start))


def test_concurrent_clients_are_batched_and_match_offline(scorer):
    gated = Gated(scorer)
    with running(create_app(gated, ServeConfig()), gated) as (url, _, _):
        gated.gate.clear()
        with ThreadPoolExecutor(len(CONVS)) as pool:
            futures = [pool.submit(post, url, [c]) for c in CONVS]

            def all_in():
                h = health(url)
                return gated.entered.is_set() and h["queue_depth"] + h["in_flight"] == len(CONVS)
            wait_for(all_in, "every request queued or in the held call (/health answering meanwhile)")
            gated.gate.set()
            answers = [f.result() for f in futures]
        text = httpx.get(f"{url}/metrics", timeout=10).text
    assert [a.status_code for a in answers] == [200] * len(CONVS)
    got = [a.json()["rewards"][0] for a in answers]
    assert got == pytest.approx(scorer.score(CONVS), abs=1e-5)
    calls, singles = metric(text, "rmkit_batch_size_count"), metric(text, 'rmkit_batch_size_bucket{le="1.0"}')
    assert calls in (1, 2) and singles < calls  # the held call, then everything waiting in one call
    assert metric(text, "rmkit_conversations_scored_total") == len(CONVS)
    assert metric(text, 'rmkit_requests_total{endpoint="/v1/rewards",status="200"}') == len(CONVS)


def test_overload_fills_the_queue_and_gets_503_while_health_answers(scorer):
    gated = Gated(scorer)
    with running(create_app(gated, ServeConfig(max_queue=4, max_conversations=2)), gated) as (url, _, _):
        gated.gate.clear()
        with ThreadPoolExecutor(8) as pool:
            held = pool.submit(post, url, CONVS[:1])
            wait_for(gated.entered.is_set, "the first call in flight")
            queued = [pool.submit(post, url, CONVS[1 + i:2 + i]) for i in range(3)]
            wait_for(lambda: health(url)["queue_depth"] == 3, "three queued")
            refused = [post(url, CONVS[5:7])]  # 3 + 2 > max_queue: refused by the handler
            queued.append(pool.submit(post, url, CONVS[4:5]))
            wait_for(lambda: health(url)["queue_depth"] == 4, "a full queue")
            # a full queue: refused before the body is read
            refused += [post(url, CONVS[5:7]) for _ in range(2)] + [post(url, CONVS[7:8])]
            assert health(url)["status"] == "ok"
            gated.gate.set()
            accepted = [held.result()] + [f.result() for f in queued]
        after = post(url, CONVS[:2])
        text = httpx.get(f"{url}/metrics", timeout=10).text
    assert [r.status_code for r in refused] == [503] * 4
    assert all(r.headers["retry-after"] == "1" and "max_queue=4" in r.json()["detail"] for r in refused)
    assert "2 more would exceed" in refused[0].json()["detail"]
    assert all(r.json()["detail"].startswith("the queue is full") for r in refused[1:])
    assert [r.status_code for r in accepted] == [200] * 5 and after.status_code == 200
    got = [r.json()["rewards"][0] for r in accepted]
    assert got == pytest.approx(scorer.score(CONVS[:5]), abs=1e-5)
    assert metric(text, 'rmkit_requests_total{endpoint="/v1/rewards",status="503"}') == 4


def test_graceful_shutdown_finishes_requests_in_flight_and_queued(scorer):
    gated = Gated(scorer)
    with running(create_app(gated, ServeConfig()), gated) as (url, server, thread):
        gated.gate.clear()
        with ThreadPoolExecutor(2) as pool:
            in_flight = pool.submit(post, url, CONVS[:1])
            wait_for(gated.entered.is_set, "a call in flight")
            queued = pool.submit(post, url, CONVS[1:3])
            wait_for(lambda: health(url)["queue_depth"] == 2, "a queued request")
            server.should_exit = True
            time.sleep(0.3)  # let uvicorn begin its shutdown while the call is held (not asserted)
            gated.gate.set()
            results = [in_flight.result(), queued.result()]
        thread.join(30)
        assert not thread.is_alive()
    assert [r.status_code for r in results] == [200, 200]
    got = results[0].json()["rewards"] + results[1].json()["rewards"]
    assert got == pytest.approx(scorer.score(CONVS[:3]), abs=1e-5)
    with pytest.raises(httpx.ConnectError):
        health(url)


def test_rmkit_serve_cli_binds_loopback_scores_and_stops_on_sigterm(tiny_llama, scorer):
    port = free_port()
    env = {**os.environ, "RMKIT_API_KEY": "k3y"}
    cmd = [sys.executable, "-m", "rmkit.cli", "serve", "--model", str(tiny_llama), "--port", str(port),
           "--dtype", "float32", "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up():
            assert proc.poll() is None, "rmkit serve exited"
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False
        wait_for(up, "rmkit serve to answer /health", guard_s=300)  # imports torch: slow on busy CPUs
        body = {"conversations": CONVS[:3]}
        assert httpx.post(f"{url}/v1/rewards", json=body, timeout=30).status_code == 401
        r = httpx.post(f"{url}/v1/rewards", json=body, headers={"Authorization": "Bearer k3y"}, timeout=30)
        assert r.json()["rewards"] == pytest.approx(scorer.score(CONVS[:3]), abs=1e-5)
        r = httpx.post(f"{url}/k/k3y/v1/rewards", json=body, timeout=30)  # the capability URL: no header
        assert r.json()["rewards"] == pytest.approx(scorer.score(CONVS[:3]), abs=1e-5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown, so -15 is a clean stop too
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out and f"http://127.0.0.1:{port}" in out
    assert '"POST /k/***/v1/rewards HTTP/1.1" 200' in out and "k3y" not in out  # the access log redacts the key
