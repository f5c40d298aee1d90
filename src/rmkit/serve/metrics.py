"""Prometheus metrics of `rmkit serve`, kept by `prometheus_client` in a registry of the server's own.

    metrics = ServerMetrics()
    metrics.request(endpoint="/v1/rewards", status="200")
    metrics.batch_size.observe(12)
    print(metrics.render())            # what GET /metrics returns (text exposition format)

Each app has its own `CollectorRegistry` (two servers in one process, as in the tests, never share
counts). Only known endpoint paths become labels (others are "other", in `guard.RequestMetrics`), so a
scanner cannot blow up the label set. Under `--backend vllm` the batch-size histogram counts the
conversations of each request (vLLM's scheduler forms the forwards).
"""
from __future__ import annotations

from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServerMetrics:
    """Everything /metrics shows. The two gauges read the batcher at scrape time (`bind_queue`)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rmkit_requests", "HTTP requests by endpoint and status code.",
                                ("endpoint", "status"), registry=r)
        self.scored = Counter("rmkit_conversations_scored", "Conversations and texts scored.", registry=r)
        self.batch_size = Histogram("rmkit_batch_size", "Conversations per forward (one dynamic batch).",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.latency = Histogram("rmkit_request_latency_seconds",
                                 "Latency of scoring requests, from first byte to response.",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.fallback = Counter("rmkit_fallback_rewards", "Samples answered with the operator's --on-error-reward, "
                                "by endpoint and reason.", ("endpoint", "reason"), registry=r)
        self.queue_depth = Gauge("rmkit_queue_depth", "Conversations waiting to be scored.", registry=r)
        self.in_flight = Gauge("rmkit_batch_in_flight", "Conversations in the forward now running.", registry=r)

    def request(self, endpoint: str, status: str) -> None:
        self.requests.labels(endpoint=endpoint, status=status).inc()

    def bind_queue(self, depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)
        self.in_flight.set_function(in_flight)

    def render(self) -> str:
        return generate_latest(self.registry).decode()
