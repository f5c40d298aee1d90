"""The `rmkit serve` client for RL loops: bearer key, timeouts, bounded retries, and a bad sample
isolated instead of failing its whole batch.

    source = RemoteSource("http://127.0.0.1:8000", api_key="s3cret", timeout=60, retries=3)
    scored = source.score(samples)       # Scored(rewards, failures), like LocalSource

Conversations go to POST /v1/rewards (text="raw": strings to /get_reward), a prompt's completions in the
same request (the server runs their shared prompt once), at most `batch_size` per request. Each request
has a timeout and is retried on a connection error, a timeout, 408 / 429 / 5xx (after Retry-After when
the server sends one, else an exponential backoff), at most `retries` times; then its samples fail with
the last error. A 422 (a sample the server refuses: too long, a role the template rejects) or a 413 is
split in halves until the refused samples stand alone, so the rest of the batch is still scored. A 401 /
403 (a wrong key) or any other answer is a configuration error and raises at once.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Sequence

from rmkit.data.schema import DataError, conversation_to_dicts
from rmkit.integrations.rewards import Sample, Scored, check_text_mode, conversation, prompt_groups, raw_text

RETRY_STATUS = (408, 429, 500, 502, 503, 504)
ENDPOINT = {"chat": ("/v1/rewards", "conversations"), "raw": ("/get_reward", "query")}


class RemoteError(RuntimeError):
    """The server cannot be used as configured (wrong key, wrong URL, an answer that is not rmkit's)."""


def _httpx():
    try:
        import httpx
    except ImportError as e:  # pragma: no cover - httpx ships with the serve / rl extras
        raise ImportError("the rmkit serve client needs httpx: pip install 'rmkit[rl]'") from e
    return httpx


def base_url(url: str) -> str:
    """The server root, also from a URL that names an endpoint (…/v1/rewards, …/get_reward)."""
    url = url.rstrip("/")
    for suffix in ("/v1/rewards", "/get_reward"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def chunk_groups(groups: Sequence[Sequence[int]], size: int) -> list[list[int]]:
    """Consecutive chunks of ≤ size indices; a group stays in one chunk whenever it fits in one."""
    chunks: list[list[int]] = []
    current: list[int] = []
    for group in groups:
        for start in range(0, len(group), size):
            part = list(group[start:start + size])
            if current and len(current) + len(part) > size:
                chunks.append(current)
                current = []
            current += part
    if current:
        chunks.append(current)
    return chunks


class RemoteSource:
    def __init__(self, url: str, *, text: str = "chat", api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 3, backoff_s: float = 0.5, max_backoff_s: float = 30.0, batch_size: int = 64,
                 transport: Any = None, sleep: Callable[[float], None] = time.sleep):
        if timeout <= 0 or retries < 0 or batch_size <= 0 or backoff_s < 0:
            raise ValueError("timeout and batch_size must be positive, retries and backoff_s >= 0")
        httpx = _httpx()
        self.name = self.url = base_url(url)
        self.text, self.timeout, self.retries = check_text_mode(text), timeout, retries
        self.backoff_s, self.max_backoff_s, self.batch_size, self.sleep = backoff_s, max_backoff_s, batch_size, sleep
        key = api_key if api_key is not None else os.environ.get("RMKIT_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout),
                                   transport=transport)
        self.requests = 0

    def _payload(self, sample: Sample) -> Any:
        if self.text == "raw":
            return raw_text(sample)
        return conversation_to_dicts(conversation(sample))

    def score(self, samples: Sequence[Sample]) -> Scored:
        rewards = [float("nan")] * len(samples)
        failures: dict[int, str] = {}
        payloads: dict[int, Any] = {}
        for i, sample in enumerate(samples):
            try:
                payloads[i] = self._payload(sample)
            except DataError as e:
                failures[i] = f"DataError: {e}"
        groups = [[i for i in g if i in payloads] for g in prompt_groups(samples)]
        for chunk in chunk_groups([g for g in groups if g], self.batch_size):
            self._score_chunk(chunk, payloads, rewards, failures)
        return Scored(rewards, failures)

    def _score_chunk(self, chunk: list[int], payloads, rewards: list[float], failures: dict[int, str]) -> None:
        kind, value = self._post([payloads[i] for i in chunk])
        if kind == "ok":
            for i, r in zip(chunk, value):
                if r is None:
                    failures[i] = "the server skipped it as over-long (its truncation policy is 'skip')"
                else:
                    rewards[i] = float(r)
        elif kind == "refused" and len(chunk) > 1:  # isolate the refused samples, score the rest
            half = len(chunk) // 2
            self._score_chunk(chunk[:half], payloads, rewards, failures)
            self._score_chunk(chunk[half:], payloads, rewards, failures)
        else:
            for i in chunk:
                failures[i] = value

    def _post(self, items: list) -> tuple[str, Any]:
        """("ok", rewards) | ("refused", why): 422 / 413 | ("down", why): no answer after the retries."""
        httpx = _httpx()
        path, field = ENDPOINT[self.text]
        last = "no attempt made"
        for attempt in range(self.retries + 1):
            wait = None
            try:
                self.requests += 1
                response = self.client.post(path, json={field: items})
            except httpx.TimeoutException:
                last = f"no answer within timeout={self.timeout}s"
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            else:
                kind, value, wait = self._read(response, len(items))
                if kind != "retry":
                    return kind, value
                last = value
            if attempt < self.retries:
                self.sleep(self._delay(attempt, wait))
        return "down", f"{self.url}{path}: {last} (after {self.retries + 1} attempts)"

    def _read(self, response, n: int) -> tuple[str, Any, float | None]:
        status = response.status_code
        detail = _detail(response)
        if status == 200:
            rewards = _rewards(response, n, self.url)
            return "ok", rewards, None
        if status in (422, 413):
            return "refused", f"HTTP {status}: {detail}", None
        if status in RETRY_STATUS:
            return "retry", f"HTTP {status}: {detail}", _retry_after(response)
        raise RemoteError(f"{self.url} answered HTTP {status}: {detail}"
                          + (" (check api_key / RMKIT_API_KEY)" if status in (401, 403) else ""))

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = self.backoff_s * 2 ** attempt
        return min(self.max_backoff_s, retry_after if retry_after is not None else backoff)

    def close(self) -> None:
        self.client.close()


def _detail(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("detail", body))[:300] if isinstance(body, dict) else str(body)[:300]


def _retry_after(response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _rewards(response, n: int, url: str) -> list:
    try:
        rewards = response.json()["rewards"]
    except (ValueError, KeyError, TypeError) as e:
        raise RemoteError(f"{url} answered 200 without a 'rewards' list: is it an rmkit server?") from e
    if not isinstance(rewards, list) or len(rewards) != n:
        raise RemoteError(f"{url} returned {len(rewards) if isinstance(rewards, list) else rewards!r} rewards "
                          f"for {n} samples")
    return rewards
