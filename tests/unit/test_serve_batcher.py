"""The micro-batcher, metrics text and config of `rmkit serve`, tested without HTTP.

    .venv/bin/python -m pytest tests/unit/test_serve_batcher.py -q

The batcher is given a pure score function (sum of the ids) that records each call, and a gate
(threading.Event) to hold a call open so that concurrent arrivals are deterministic.
"""
from __future__ import annotations

import asyncio
import threading

import pytest

pytest.importorskip("fastapi")
from rmkit.serve.batcher import MicroBatcher, QueueFull, ShuttingDown  # noqa: E402
from rmkit.serve.config import ServeConfig  # noqa: E402
from rmkit.serve.metrics import ServerMetrics  # noqa: E402
from rmkit.serve.state import prob_first_better, rank_order  # noqa: E402


class Recorder:
    """score_fn: reward = sum of ids; records call sizes; calls numbered in `hold` wait on the gate."""

    def __init__(self, hold_first: bool = False, fail: bool = False, hold: tuple[int, ...] = ()):
        self.calls: list[int] = []
        self.gate, self.entered = threading.Event(), threading.Event()
        self.hold = set(hold) | ({0} if hold_first else set())
        self.fail = fail

    def __call__(self, seqs):
        if len(self.calls) in self.hold:
            self.entered.set()
            self.gate.wait(10)
        self.calls.append(len(seqs))
        if self.fail:
            raise RuntimeError("model exploded")
        return [float(sum(s)) for s in seqs]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def _held(rec: Recorder, **kw) -> tuple[MicroBatcher, asyncio.Task]:
    """A started batcher whose first call (one sequence [1]) is in flight and held on the gate."""
    b = MicroBatcher(rec, **{"max_queue": 64, "batch_tokens": 1000, "max_batch_size": 64, **kw})
    await b.start()
    first = asyncio.create_task(b.submit([[1]]))
    await asyncio.get_running_loop().run_in_executor(None, rec.entered.wait, 10)
    return b, first


def test_requests_waiting_during_a_call_share_the_next_call():
    async def main():
        rec = Recorder(hold_first=True)
        b, first = await _held(rec)
        rest = [asyncio.create_task(b.submit([[i], [i, 1]])) for i in range(2, 7)]
        while b.queued < 10:
            await asyncio.sleep(0)
        rec.gate.set()
        out = await asyncio.gather(first, *rest)
        await b.close()
        return rec.calls, out

    calls, out = run(main())
    assert calls == [1, 10]  # five requests, two sequences each, one call
    assert out[0] == [1.0] and out[1:] == [[float(i), float(i + 1)] for i in range(2, 7)]


def test_a_pool_is_sorted_by_length_into_token_budget_forwards():
    async def main():
        rec = Recorder(hold_first=True)
        b, first = await _held(rec, batch_tokens=12, max_batch_size=3, pool_batches=4)
        rest = [asyncio.create_task(b.submit([[1] * n])) for n in (4, 2, 4, 3, 4)]
        rest.append(asyncio.create_task(b.submit([[1] * 20])))  # over budget alone: still scored
        while b.queued < 6:
            await asyncio.sleep(0)
        rec.gate.set()
        out = await asyncio.gather(first, *rest)
        await b.close()
        return rec.calls, out

    calls, out = run(main())
    # one pool cut by length into [20] (alone), [4, 4, 4] (3 x 4 = 12 tokens) and [3, 2], run in the
    # order of their oldest request: [4, 4, 4] holds the first request, [3, 2] the second
    assert calls == [1, 3, 2, 1]
    assert out[1:] == [[4.0], [2.0], [4.0], [3.0], [4.0], [20.0]]


def test_a_request_is_answered_while_the_rest_of_its_pool_is_scored():
    async def main():
        rec = Recorder(hold=(1,))  # the pool's second forward waits on the gate
        b = MicroBatcher(rec, max_queue=8, batch_tokens=12, max_batch_size=4)
        first = asyncio.create_task(b.submit([[1, 1]]))
        second = asyncio.create_task(b.submit([[2] * 10]))  # too long to share a 12-token forward
        await asyncio.sleep(0)
        await b.start()  # both are waiting: one pool, two forwards, the oldest request's first
        done = await asyncio.wait_for(first, 10)
        held = second.done()
        rec.gate.set()
        out = await second
        await b.close()
        return done, held, out, rec.calls

    assert run(main()) == ([2.0], False, [20.0], [1, 1])


def test_a_full_queue_refuses_and_recovers():
    async def main():
        rec = Recorder(hold_first=True)
        b, first = await _held(rec, max_queue=3)
        queued = [asyncio.create_task(b.submit([[5], [6]]))]
        while b.queued < 2:
            await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="max_queue=3"):
            await b.submit([[7], [8]])  # 2 + 2 > 3
        queued.append(asyncio.create_task(b.submit([[9]])))  # 2 + 1 fits
        while b.queued < 3:
            await asyncio.sleep(0)
        rec.gate.set()
        out = await asyncio.gather(first, *queued)
        after = await b.submit([[2]])
        await b.close()
        return out, after

    out, after = run(main())
    assert out == [[1.0], [5.0, 6.0], [9.0]] and after == [2.0]


def test_close_finishes_queued_work_then_refuses():
    async def main():
        rec = Recorder(hold_first=True)
        b, first = await _held(rec)
        queued = asyncio.create_task(b.submit([[3]]))
        while b.queued < 1:
            await asyncio.sleep(0)
        closing = asyncio.create_task(b.close(timeout=10))
        await asyncio.sleep(0)
        with pytest.raises(ShuttingDown):
            await b.submit([[4]])
        rec.gate.set()
        await closing
        return await first, await queued

    assert run(main()) == ([1.0], [3.0])


def test_close_that_times_out_fails_held_and_queued_requests_instead_of_hanging():
    async def main():
        rec = Recorder(hold_first=True)
        b, first = await _held(rec)
        queued = asyncio.create_task(b.submit([[3]]))
        while b.queued < 1:
            await asyncio.sleep(0)
        await b.close(timeout=0.01)  # the gate stays shut, so this always times out
        results = await asyncio.gather(first, queued, return_exceptions=True)
        rec.gate.set()
        return results

    results = run(main())
    assert [type(r) for r in results] == [ShuttingDown, ShuttingDown]


def test_a_failed_call_fails_every_request_in_it_and_the_worker_lives_on():
    async def main():
        rec = Recorder(fail=True)
        b = MicroBatcher(rec, max_queue=8, batch_tokens=100, max_batch_size=8)
        await b.start()
        with pytest.raises(RuntimeError, match="exploded"):
            await b.submit([[1]])
        rec.fail = False
        ok = await b.submit([[2, 3]])
        await b.close()
        return ok

    assert run(main()) == [5.0]


def test_an_idle_request_does_not_wait_for_the_window():
    async def main():  # a 1-hour window: only an immediate dispatch can finish within the guard
        b = MicroBatcher(Recorder(), max_queue=8, batch_tokens=100, max_batch_size=8, max_wait_ms=3.6e6)
        await b.start()
        out = await asyncio.wait_for(b.submit([[4]]), 10)
        await b.close()
        return out

    assert run(main()) == [4.0]


def test_under_load_the_window_gathers_until_the_batch_is_full():
    async def main():
        rec = Recorder(hold_first=True)
        b, first = await _held(rec, max_batch_size=2, max_wait_ms=3.6e6, pool_batches=1)
        two = [asyncio.create_task(b.submit([[i]])) for i in (2, 3)]
        while b.queued < 2:
            await asyncio.sleep(0)
        rec.gate.set()
        await asyncio.gather(first, *two)  # that call held 2 requests: clients are concurrent
        a = asyncio.create_task(b.submit([[4]]))
        while rec.calls != [1, 2] or b.queued or b.in_flight:
            await asyncio.sleep(0.001)
        c = asyncio.create_task(b.submit([[5]]))  # the worker was waiting for this one
        out = await asyncio.wait_for(asyncio.gather(a, c), 10)
        await b.close()
        return rec.calls, out

    calls, out = run(main())
    assert calls == [1, 2, 2] and out == [[4.0], [5.0]]


def test_prob_first_better_and_rank_order():
    assert prob_first_better(1.0, 1.0) == 0.5
    assert prob_first_better(2.0, 0.0) == pytest.approx(0.8807970779778823)
    assert prob_first_better(0.0, 2.0) == pytest.approx(1 - 0.8807970779778823)
    assert prob_first_better(-1000.0, 1000.0) == 0.0 and prob_first_better(1000.0, -1000.0) == 1.0
    assert prob_first_better(float("nan"), 1.0) is None
    assert rank_order([0.5, 2.0, float("nan"), 2.0, -1.0]) == [1, 3, 0, 4, 2]


def test_metrics_text_format():
    from prometheus_client.parser import text_string_to_metric_families

    m, other = ServerMetrics(), ServerMetrics()
    m.request(endpoint="/v1/rewards", status="200")
    m.request(endpoint="/v1/rewards", status="200")
    m.request(endpoint='a"b\\c\n', status="500")
    m.batch_size.observe(3)
    m.bind_queue(lambda: 7, lambda: 2)
    text = m.render()
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert got["rmkit_requests_total", (("endpoint", "/v1/rewards"), ("status", "200"))] == 2
    assert got["rmkit_requests_total", (("endpoint", 'a"b\\c\n'), ("status", "500"))] == 1  # escaped, read back
    assert got["rmkit_batch_size_bucket", (("le", "2.0"),)] == 0 and got["rmkit_batch_size_bucket", (("le", "4.0"),)] == 1
    assert got["rmkit_batch_size_bucket", (("le", "+Inf"),)] == 1 and got["rmkit_batch_size_sum", ()] == 3
    assert got["rmkit_queue_depth", ()] == 7 and got["rmkit_batch_in_flight", ()] == 2
    assert "rmkit_requests_total{" not in other.render()  # each server its own registry


@pytest.mark.parametrize("bad", [dict(max_queue=0), dict(max_conversations=10, max_queue=5),
                                 dict(max_wait_ms=-1), dict(port=70000), dict(api_key=""),
                                 dict(max_tokens=0), dict(max_body_bytes=-5)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        ServeConfig(**bad)
