"""Prometheus text-format metrics for `rmkit serve`, written by hand (no prometheus_client needed).

    metrics = ServerMetrics()
    metrics.requests.inc(endpoint="/v1/rewards", status="200")
    metrics.batch_size.observe(12)
    print(metrics.render())            # what GET /metrics returns

Counters, gauges and histograms follow the exposition format 0.0.4 (`# HELP`, `# TYPE`, cumulative
`_bucket{le=...}` lines, `_sum`, `_count`). Only known endpoint paths become labels (others are
"other"), so a scanner cannot blow up the label set.
"""
from __future__ import annotations

import threading
from typing import Callable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(x: float) -> str:
    return repr(float(x)) if x != int(x) else str(int(x))


class Counter:
    def __init__(self, name: str, help: str):
        self.name, self.help = name, help
        self._values: dict[tuple, float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        lines += [f"{self.name}{_labels(k)} {_num(v)}" for k, v in items]
        return lines


class Gauge:
    """A gauge read from a callable at render time (queue depth, requests in flight)."""

    def __init__(self, name: str, help: str, read: Callable[[], float] = lambda: 0.0):
        self.name, self.help, self.read = name, help, read

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge",
                f"{self.name} {_num(self.read())}"]


class Histogram:
    def __init__(self, name: str, help: str, buckets: Sequence[float]):
        self.name, self.help = name, help
        self.buckets = tuple(sorted(buckets))
        self._counts = [0] * len(self.buckets)
        self._sum, self._count = 0.0, 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1
            self._sum += value
            self._count += 1

    @property
    def count(self) -> int:
        return self._count

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            counts, total, n = list(self._counts), self._sum, self._count
        for bound, c in zip(self.buckets, counts):
            lines.append(f'{self.name}_bucket{{le="{_num(bound)}"}} {c}')
        lines += [f'{self.name}_bucket{{le="+Inf"}} {n}', f"{self.name}_sum {_num(total)}",
                  f"{self.name}_count {n}"]
        return lines


class ServerMetrics:
    """Everything /metrics shows. Gauges are wired to the batcher by `bind_queue`."""

    def __init__(self):
        self.requests = Counter("rmkit_requests_total", "HTTP requests by endpoint and status code.")
        self.scored = Counter("rmkit_conversations_scored_total", "Conversations and texts scored.")
        self.batch_size = Histogram("rmkit_batch_size", "Conversations per forward (one dynamic batch).",
                                    BATCH_BUCKETS)
        self.latency = Histogram("rmkit_request_latency_seconds",
                                 "Latency of scoring requests, from first byte to response.", LATENCY_BUCKETS)
        self.queue_depth = Gauge("rmkit_queue_depth", "Conversations waiting to be scored.")
        self.in_flight = Gauge("rmkit_batch_in_flight", "Conversations in the forward now running.")

    def bind_queue(self, depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.queue_depth.read, self.in_flight.read = depth, in_flight

    def render(self) -> str:
        parts = (self.requests, self.scored, self.queue_depth, self.in_flight, self.batch_size, self.latency)
        return "\n".join(line for metric in parts for line in metric.render()) + "\n"
