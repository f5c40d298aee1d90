"""Dynamic micro-batching: requests from many clients become few scoring calls, answered one by one.

    batcher = MicroBatcher(scorer.score_ids, max_queue=1024, batch_tokens=8192, max_batch_size=64)
    await batcher.start()
    rewards = await batcher.submit([[1, 2, 3], [1, 4]])     # token ids in, raw rewards out
    await batcher.close()                                   # finishes what is queued, then stops

One worker task takes the oldest request, then everything else already waiting (and, when clients are
concurrent, whatever arrives within `max_wait_ms`) until the padded-token budget or `max_batch_size` is
reached, and runs
ONE `score_fn` call on a single dedicated thread, so the event loop keeps answering /health. While a
call runs, new requests queue up and form the next batch. The queue is bounded in conversations:
`submit` raises `QueueFull` rather than letting memory and latency grow without bound. An idle server
never waits: a lone request is scored as soon as it arrives.
"""
from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

ScoreFn = Callable[[Sequence[list[int]]], list[float]]


class QueueFull(RuntimeError):
    """The queue holds `max_queue` conversations already: answer 503 and let the client retry."""


class ShuttingDown(RuntimeError):
    """The server is stopping and takes no new work."""


@dataclass
class _Job:
    seqs: list[list[int]]
    future: asyncio.Future
    width: int = field(init=False)

    def __post_init__(self):
        self.width = max((len(s) for s in self.seqs), default=0)


class MicroBatcher:
    def __init__(self, score_fn: ScoreFn, *, max_queue: int, batch_tokens: int, max_batch_size: int,
                 max_wait_ms: float = 2.0, on_batch: Callable[[int], None] | None = None):
        self.score_fn = score_fn
        self.max_queue, self.batch_tokens, self.max_batch_size = max_queue, batch_tokens, max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch or (lambda n: None)
        self._pending: deque[_Job] = deque()
        self.queued = 0  # conversations waiting
        self.in_flight = 0  # conversations in the scoring call now running
        self._wake = asyncio.Event()
        self._closing = False
        self._last_jobs = 0  # requests in the previous call: > 1 means clients are concurrent
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rmkit-score")

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="rmkit-batcher")

    async def close(self, timeout: float | None = None) -> None:
        """Refuse new work, finish everything queued or running, then stop the worker."""
        self._closing = True
        self._wake.set()
        if self._worker is not None and not self._worker.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._worker), timeout)
            except asyncio.TimeoutError:
                self._worker.cancel()
                self._fail_pending(ShuttingDown("the server stopped before this request was scored"))
        self._executor.shutdown(wait=False)

    @property
    def closing(self) -> bool:
        return self._closing

    def full(self, n: int = 1) -> bool:
        return self.queued + n > self.max_queue

    # ---- requests --------------------------------------------------------------------------------
    async def submit(self, seqs: list[list[int]]) -> list[float]:
        if self._closing:
            raise ShuttingDown("the server is shutting down")
        if not seqs:
            return []
        if self.full(len(seqs)):
            raise QueueFull(f"{self.queued} conversations queued; max_queue={self.max_queue}")
        job = _Job(seqs, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self.queued += len(seqs)
        self._wake.set()
        return await job.future

    # ---- worker ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = await self._gather()
            if batch:
                await self._score(batch)

    async def _gather(self) -> list[_Job]:
        """Oldest job first, then whatever fits the budget. Under concurrent load (the previous call
        held several requests), wait up to max_wait for more while the budget has room."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        batch: list[_Job] = []
        while True:
            self._take_fitting(batch)
            remaining = deadline - loop.time()
            if self._pending or remaining <= 0 or self._closing or not self._room(batch):
                return batch
            if self._last_jobs <= 1:  # idle or one client: waiting would only add latency
                return batch
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def _room(self, batch: list[_Job]) -> bool:
        n = sum(len(j.seqs) for j in batch)
        width = max((j.width for j in batch), default=0)
        return n < self.max_batch_size and (n + 1) * max(width, 1) <= self.batch_tokens

    def _take_fitting(self, batch: list[_Job]) -> None:
        n = sum(len(j.seqs) for j in batch)
        width = max((j.width for j in batch), default=0)
        while self._pending:
            job = self._pending[0]
            new_n, new_w = n + len(job.seqs), max(width, job.width)
            if batch and (new_n > self.max_batch_size or new_n * new_w > self.batch_tokens):
                return  # the first job always goes, even alone over budget (score_fn splits it)
            self._pending.popleft()
            self.queued -= len(job.seqs)
            if job.future.done():  # the client went away
                continue
            batch.append(job)
            n, width = new_n, new_w

    async def _score(self, batch: list[_Job]) -> None:
        flat = [s for job in batch for s in job.seqs]
        self.in_flight, self._last_jobs = len(flat), len(batch)
        try:
            rewards = await asyncio.get_running_loop().run_in_executor(self._executor, self.score_fn, flat)
        except BaseException as e:  # noqa: BLE001 - every waiting request learns of the failure
            cancelled = not isinstance(e, Exception)  # shutdown gave up on this call
            error = ShuttingDown("the server stopped before this request was scored") if cancelled else e
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(error)
            if cancelled:
                raise
            return
        finally:
            self.in_flight = 0
        self.on_batch(len(flat))
        start = 0
        for job in batch:
            part = rewards[start:start + len(job.seqs)]
            start += len(job.seqs)
            if not job.future.done():
                job.future.set_result(part)

    def _fail_pending(self, error: Exception) -> None:
        while self._pending:
            job = self._pending.popleft()
            self.queued -= len(job.seqs)
            if not job.future.done():
                job.future.set_exception(error)
