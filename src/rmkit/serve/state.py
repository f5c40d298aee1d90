"""Shared state of the reward server: turn request bodies into token ids under the limits, score them
through the micro-batcher, and the small pure helpers the endpoints use.

    state = ServerState(scorer, ServeConfig())
    ids = state.encode_conversations([[{"role": "user", "content": "Hi"}]])   # 413 / 422 on bad input
    rewards = await state.score(ids)                                          # 503 when the queue is full

Token ids come from the chat rendering and the scorer's over-long policy that offline scoring uses, applied
per input by `rmkit.serve.compat.Compat` for every endpoint (with the server's max_tokens on top), and are
scored by the same `score_ids`, so the server returns the same numbers.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Sequence

from fastapi import HTTPException

from rmkit.data.schema import Message, to_conversation
from rmkit.score.protocol import IdBackend
from rmkit.serve.batcher import EngineQueue, MicroBatcher, QueueFull, ShuttingDown
from rmkit.serve.compat import Compat, Unscorable
from rmkit.serve.config import ServeConfig
from rmkit.serve.metrics import ServerMetrics

log = logging.getLogger("rmkit.serve")


class ServerState:
    """What the handlers share: the scorer, the limits, the batcher and the metrics."""

    def __init__(self, scorer: IdBackend, config: ServeConfig):
        self.scorer, self.config = scorer, config
        self.model_name = config.model_name or getattr(scorer, "name", "model")
        self.max_tokens = config.max_tokens or scorer.max_length
        self.metrics = ServerMetrics()
        sc = scorer.config
        if getattr(sc, "vllm_engine", None) == "async":  # vLLM's AsyncLLM batches concurrent requests itself
            self.batcher = EngineQueue(scorer.ascore_ids, max_queue=config.max_queue, on_batch=self._on_batch)
        else:
            self.batcher = MicroBatcher(scorer.score_ids, max_queue=config.max_queue,
                                        batch_tokens=config.batch_tokens or getattr(sc, "batch_tokens", None) or 8192,
                                        max_batch_size=config.max_batch_size or getattr(sc, "max_batch_size", None) or 64,
                                        max_wait_ms=config.max_wait_ms, pool_batches=config.pool_batches,
                                        on_batch=self._on_batch)
        self.label = scorer_label(scorer)
        self.compat = Compat(self)  # every endpoint's encoders: limits and over-long policy in one place
        self.metrics.bind_queue(lambda: self.batcher.queued, lambda: self.batcher.in_flight)

    def _on_batch(self, n: int) -> None:
        self.metrics.batch_size.observe(n)
        self.metrics.scored.inc(n)

    # ---- input -> token ids ----------------------------------------------------------------------
    def check_count(self, n: int, what: str) -> None:
        if n > self.config.max_conversations:
            raise HTTPException(413, f"{n} {what}s in one request exceed "
                                     f"max_conversations={self.config.max_conversations}")
        if self.batcher.full(n):
            raise _busy(self, f"{self.batcher.queued} conversations queued; {n} more would exceed "
                              f"max_queue={self.config.max_queue}; retry later")

    def encode_conversations(self, convs: Sequence[Any], what: str = "conversation") -> list[list[int] | None]:
        """Ids of conversations (None: skipped as over-long); an empty one or one over a limit → 422."""
        self.check_count(len(convs), what)
        out = []
        for i, conv in enumerate(convs):
            if not conv:
                raise HTTPException(422, f"{what} {i} is empty")
            try:
                out.append(self.compat.conversation_ids(conv))
            except Unscorable as e:
                raise HTTPException(422, f"{what} {i}: {e.reason}")
        return out

    async def score(self, seqs: list[list[int] | None]) -> list[float]:
        """Rewards in input order; None (skipped as too long) → NaN, never sent to the model."""
        real = [i for i, s in enumerate(seqs) if s is not None]
        try:
            rewards = await self.batcher.submit([seqs[i] for i in real])
        except QueueFull as e:
            raise _busy(self, f"{e}; retry later")
        except ShuttingDown as e:
            raise _busy(self, str(e))
        out = [math.nan] * len(seqs)
        for i, r in zip(real, rewards):
            out[i] = r
        return out

    # ---- the RL clients' endpoints: one item at a time, a fallback reward where one cannot be scored ---
    async def score_items(self, endpoint: str, items: Sequence[tuple[Any, Callable[[], list[int]]]]
                          ) -> tuple[list[float], dict[int, Unscorable], int]:
        """Rewards of (item, encode) pairs, the items that got the fallback, and the tokens scored. With
        `on_error_reward` set, an item that cannot be scored gets it (counted by reason in /metrics, logged
        with the sample) and the rest is scored; unset, such an item fails the request with 422 (null for
        an over-long one the scorer's policy skips or cannot cut), as rmkit's own endpoints answer."""
        self.check_count(len(items), "input")
        fallback = self.config.on_error_reward
        seqs: list[list[int] | None] = []
        failed: dict[int, Unscorable] = {}
        for i, (item, encode) in enumerate(items):
            try:
                ids = encode()
            except Unscorable as e:
                if fallback is None:
                    raise HTTPException(422, f"input {i}: {e.reason}")
                ids, failed[i] = None, e
            if ids is None and i not in failed and fallback is not None:  # skipped by the scorer's policy
                failed[i] = Unscorable("too_long", f"over max_length={self.scorer.max_length} (truncation="
                                                   f"{self.scorer.config.truncation!r})")
            seqs.append(ids)
        rewards = await self.score(seqs)
        tokens = sum(len(x) for x in seqs if x is not None)
        if fallback is None:
            return rewards, failed, tokens
        for i, r in enumerate(rewards):
            if i not in failed and not math.isfinite(r):
                failed[i] = Unscorable("not_finite", f"the model returned {r}")
        for i, e in sorted(failed.items()):
            rewards[i] = fallback
            self.metrics.fallback.labels(endpoint=endpoint, reason=e.kind).inc()
            log.warning("%s: input %d gets the fallback reward %s (%s: %s); the sample: %s", endpoint, i, fallback,
                        e.kind, e.reason, _preview(items[i][0]))
        return rewards, failed, tokens


def _preview(item: Any, most: int = 300) -> str:
    text = item if isinstance(item, str) else repr(item)
    return repr(text[:most] + ("…" if len(text) > most else ""))


def scorer_label(scorer) -> str:
    """The label /classify reports: the checkpoint's id2label[0] (transformers' default LABEL_0)."""
    if getattr(scorer, "label", None):
        return scorer.label
    config = getattr(getattr(scorer, "model", None), "config", None)
    return (getattr(config, "id2label", None) or {}).get(0, "LABEL_0")


def _busy(state: ServerState, detail: str) -> HTTPException:
    return HTTPException(503, detail, headers={"Retry-After": str(state.config.retry_after_s)})


def json_floats(values: Sequence[float]) -> list[float | None]:
    """JSON has no NaN: an unscored (skipped) input is null."""
    return [None if math.isnan(v) else float(v) for v in values]


def turns_to_messages(value, role: str) -> list[Message]:
    if isinstance(value, str):
        return [Message(role, value)]
    return to_conversation([m.model_dump(exclude_none=True) for m in value])


def prob_first_better(r1: float, r2: float, temperature: float = 1.0) -> float | None:
    """P(first ≻ second) = sigmoid((r1 − r2) / T), computed without overflow (T from `rmkit calibrate`)."""
    d = r1 - r2
    if math.isnan(d):
        return None
    if math.isinf(temperature):
        return 0.5
    d /= temperature
    return 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))


def rank_order(rewards: Sequence[float]) -> list[int]:
    """Indices best first; ties keep input order; NaN (unscored) last."""
    return sorted(range(len(rewards)), key=lambda i: (math.isnan(rewards[i]),
                                                       0.0 if math.isnan(rewards[i]) else -rewards[i]))
