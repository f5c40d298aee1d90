"""Dynamic micro-batching: requests from many clients become few scoring calls, answered one by one.

    batcher = MicroBatcher(scorer.score_ids, max_queue=1024, batch_tokens=8192, max_batch_size=64)
    await batcher.start()
    rewards = await batcher.submit([[1, 2, 3], [1, 4]])     # token ids in, raw rewards out
    await batcher.close()                                   # finishes what is queued, then stops

One worker task takes the oldest request, then everything else already waiting (and, when clients are
concurrent, whatever arrives within `max_wait_ms`) into a pool of up to `pool_batches` forwards' worth
of tokens. The pool is sorted by length into token-budget batches (`batch_tokens` padded tokens, at
most `max_batch_size` sequences), so a batch pads little; batches run in the order of their oldest
request, and each is ONE `score_fn` call on a
single dedicated thread (the event loop keeps answering /health), and a request is answered as soon
as all of its sequences are scored. While a call runs, new requests queue up and form the next pool.
The queue is bounded in conversations: `submit` raises `QueueFull` rather than letting memory and
latency grow without bound. An idle server never waits: a lone request is scored as soon as it arrives.
"""
from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

from rmkit.score.batching import token_budget_batches

ScoreFn = Callable[[Sequence[list[int]]], list[float]]


class QueueFull(RuntimeError):
    """The queue holds `max_queue` conversations already: answer 503 and let the client retry."""


class ShuttingDown(RuntimeError):
    """The server is stopping and takes no new work."""


@dataclass
class _Job:
    seqs: list[list[int]]
    future: asyncio.Future
    tokens: int = field(init=False)

    def __post_init__(self):
        self.tokens = sum(len(s) for s in self.seqs)


class _Bounded:
    """What both queues share: the bound on waiting conversations and the refusal after shutdown."""

    max_queue: int
    queued: int
    _closing: bool

    @property
    def closing(self) -> bool:
        return self._closing

    def full(self, n: int = 1) -> bool:
        return self.queued + n > self.max_queue

    def _admit(self, seqs: list[list[int]]) -> bool:
        """Raise ShuttingDown / QueueFull, or say whether there is anything to score."""
        if self._closing:
            raise ShuttingDown("the server is shutting down")
        if not seqs:
            return False
        if self.full(len(seqs)):
            raise QueueFull(f"{self.queued} conversations queued; max_queue={self.max_queue}")
        return True


class MicroBatcher(_Bounded):
    def __init__(self, score_fn: ScoreFn, *, max_queue: int, batch_tokens: int, max_batch_size: int,
                 max_wait_ms: float = 2.0, pool_batches: int = 2, on_batch: Callable[[int], None] | None = None):
        self.score_fn = score_fn
        self.max_queue, self.batch_tokens, self.max_batch_size = max_queue, batch_tokens, max_batch_size
        self.pool_tokens, self.pool_size = batch_tokens * pool_batches, max_batch_size * pool_batches
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

    # ---- requests --------------------------------------------------------------------------------
    async def submit(self, seqs: list[list[int]]) -> list[float]:
        if not self._admit(seqs):
            return []
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
        """Oldest job first, then whatever fits the pool. Under concurrent load (the previous pool
        held several requests), wait up to max_wait for more while the pool has room."""
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
        n, tokens = sum(len(j.seqs) for j in batch), sum(j.tokens for j in batch)
        return n < self.pool_size and tokens < self.pool_tokens

    def _take_fitting(self, batch: list[_Job]) -> None:
        n, tokens = sum(len(j.seqs) for j in batch), sum(j.tokens for j in batch)
        while self._pending:
            job = self._pending[0]
            new_n, new_tokens = n + len(job.seqs), tokens + job.tokens
            if batch and (new_n > self.pool_size or new_tokens > self.pool_tokens):
                return  # the first job always goes, even alone over the pool limits
            self._pending.popleft()
            self.queued -= len(job.seqs)
            if job.future.done():  # the client went away
                continue
            batch.append(job)
            n, tokens = new_n, new_tokens

    async def _score(self, batch: list[_Job]) -> None:
        """Sort the pool by length into token-budget forwards; answer each request once all of its
        sequences are scored, without waiting for the rest of the pool."""
        flat = [s for job in batch for s in job.seqs]
        owner = [k for k, job in enumerate(batch) for _ in job.seqs]
        rewards: list[float] = [0.0] * len(flat)
        left = [len(job.seqs) for job in batch]
        self._last_jobs = len(batch)
        groups = token_budget_batches([len(s) for s in flat], self.batch_tokens, self.max_batch_size)
        groups.sort(key=lambda g: min(owner[i] for i in g))  # the batch holding the oldest request first
        for group in groups:
            if not await self._forward(batch, flat, group, rewards):
                return
            for i in group:
                left[owner[i]] -= 1
                if left[owner[i]] == 0:
                    self._resolve(batch, owner, owner[i], rewards)

    async def _forward(self, batch: list[_Job], flat, group: list[int], rewards: list[float]) -> bool:
        """One score_fn call on the dedicated thread; on failure every request of the pool learns of it."""
        self.in_flight = len(group)
        try:
            out = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.score_fn, [flat[i] for i in group])
        except BaseException as e:  # noqa: BLE001
            cancelled = not isinstance(e, Exception)  # shutdown gave up on this call
            error = ShuttingDown("the server stopped before this request was scored") if cancelled else e
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(error)
            if cancelled:
                raise
            return False
        finally:
            self.in_flight = 0
        self.on_batch(len(group))
        for i, r in zip(group, out):
            rewards[i] = r
        return True

    @staticmethod
    def _resolve(batch: list[_Job], owner: list[int], k: int, rewards: list[float]) -> None:
        start = owner.index(k)
        job = batch[k]
        if not job.future.done():
            job.future.set_result(rewards[start:start + len(job.seqs)])

    def _fail_pending(self, error: Exception) -> None:
        while self._pending:
            job = self._pending.popleft()
            self.queued -= len(job.seqs)
            if not job.future.done():
                job.future.set_exception(error)


class EngineQueue(_Bounded):
    """The MicroBatcher's interface over an engine that batches by itself (`--backend vllm`).

        queue = EngineQueue(scorer.ascore_ids, max_queue=1024)
        rewards = await queue.submit([[1, 2, 3], [1, 4]])

    Every request goes to the engine at once (vLLM's scheduler forms the forwards from all concurrent
    requests: continuous batching), so nothing waits here: `queued` counts the conversations submitted
    and not yet answered, bounded by `max_queue` exactly as the micro-batcher's queue is; `in_flight` is
    the same number (the engine holds them all). `close` refuses new work and waits for what is running."""

    def __init__(self, score_async: Callable, *, max_queue: int, on_batch: Callable[[int], None] | None = None):
        self.score_async, self.max_queue = score_async, max_queue
        self.on_batch = on_batch or (lambda n: None)
        self.queued = self.in_flight = 0
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        return None

    async def close(self, timeout: float | None = None) -> None:
        self._closing = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def submit(self, seqs: list[list[int]]) -> list[float]:
        if not self._admit(seqs):
            return []
        self.queued += len(seqs)
        self.in_flight += len(seqs)
        self._idle.clear()
        try:
            rewards = await self.score_async(seqs)
        finally:
            self.queued -= len(seqs)
            self.in_flight -= len(seqs)
            if not self.queued:
                self._idle.set()
        self.on_batch(len(seqs))
        return rewards
