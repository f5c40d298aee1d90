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
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.transport, self._client, self._aclient = transport, None, None
        self.requests = 0
        httpx.Timeout(timeout)  # checked now, not at the first request

    @property
    def client(self):
        if self._client is None:
            httpx = _httpx()
            self._client = httpx.Client(base_url=self.url, headers=self.headers, timeout=httpx.Timeout(self.timeout),
                                        transport=self.transport)
        return self._client

    @property
    def aclient(self):
        """One `httpx.AsyncClient` (TRL runs async reward functions on one event loop of its own)."""
        if self._aclient is None:
            httpx = _httpx()
            self._aclient = httpx.AsyncClient(base_url=self.url, headers=self.headers,
                                              timeout=httpx.Timeout(self.timeout), transport=self.transport)
        return self._aclient

    def __getstate__(self) -> dict:
        """Pickles without its connections (TRL's AsyncGRPOTrainer spawns reward workers): they reopen on use."""
        return dict(self.__dict__, _client=None, _aclient=None)

    def _payload(self, sample: Sample) -> Any:
        if self.text == "raw":
            return raw_text(sample)
        return conversation_to_dicts(conversation(sample))

    def _plan(self, samples: Sequence[Sample]) -> tuple[list[float], dict[int, str], dict[int, Any], list]:
        rewards = [float("nan")] * len(samples)
        failures: dict[int, str] = {}
        payloads: dict[int, Any] = {}
        for i, sample in enumerate(samples):
            try:
                payloads[i] = self._payload(sample)
            except DataError as e:
                failures[i] = f"DataError: {e}"
        groups = [[i for i in g if i in payloads] for g in prompt_groups(samples)]
        return rewards, failures, payloads, chunk_groups([g for g in groups if g], self.batch_size)

    def score(self, samples: Sequence[Sample]) -> Scored:
        rewards, failures, payloads, chunks = self._plan(samples)
        for chunk in chunks:
            self._score_chunk(chunk, payloads, rewards, failures)
        return Scored(rewards, failures)

    async def ascore(self, samples: Sequence[Sample]) -> Scored:
        """`score` over the async client, the chunks of a call sent concurrently."""
        import asyncio

        rewards, failures, payloads, chunks = self._plan(samples)
        await asyncio.gather(*(self._ascore_chunk(c, payloads, rewards, failures) for c in chunks))
        return Scored(rewards, failures)

    def _score_chunk(self, chunk: list[int], payloads, rewards: list[float], failures: dict[int, str]) -> None:
        kind, value = self._post([payloads[i] for i in chunk])
        for part in _apply(kind, value, chunk, rewards, failures):  # a refused chunk: its halves alone
            self._score_chunk(part, payloads, rewards, failures)

    async def _ascore_chunk(self, chunk: list[int], payloads, rewards: list[float], failures: dict[int, str]) -> None:
        kind, value = await self._apost([payloads[i] for i in chunk])
        for part in _apply(kind, value, chunk, rewards, failures):
            await self._ascore_chunk(part, payloads, rewards, failures)

    def _post(self, items: list) -> tuple[str, Any]:
        """("ok", rewards) | ("refused", why): 422 / 413 | ("down", why): no answer after the retries."""
        path, field = ENDPOINT[self.text]
        last = "no attempt made"
        for attempt in range(self.retries + 1):
            self.requests += 1
            try:
                response = self.client.post(path, json={field: items})
            except Exception as e:  # noqa: BLE001 - sorted by _attempt
                response = e
            done, last, wait = self._attempt(response, len(items))
            if done:
                return last
            if attempt < self.retries:
                self.sleep(self._delay(attempt, wait))
        return "down", f"{self.url}{path}: {last} (after {self.retries + 1} attempts)"

    async def _apost(self, items: list) -> tuple[str, Any]:
        import asyncio

        path, field = ENDPOINT[self.text]
        last = "no attempt made"
        for attempt in range(self.retries + 1):
            self.requests += 1
            try:
                response = await self.aclient.post(path, json={field: items})
            except Exception as e:  # noqa: BLE001 - sorted by _attempt
                response = e
            done, last, wait = self._attempt(response, len(items))
            if done:
                return last
            if attempt < self.retries:
                await asyncio.sleep(self._delay(attempt, wait))
        return "down", f"{self.url}{path}: {last} (after {self.retries + 1} attempts)"

    def _attempt(self, response, n: int) -> tuple[bool, Any, float | None]:
        """(True, (kind, value), None) when done; (False, why, Retry-After) to try again."""
        httpx = _httpx()
        if isinstance(response, httpx.TimeoutException):
            return False, f"no answer within timeout={self.timeout}s", None
        if isinstance(response, httpx.TransportError):
            return False, f"{type(response).__name__}: {response}", None
        if isinstance(response, BaseException):
            raise response
        kind, value, wait = self._read(response, n)
        return (True, (kind, value), None) if kind != "retry" else (False, value, wait)

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
        if self._client is not None:
            self._client.close()


def _apply(kind: str, value: Any, chunk: list[int], rewards: list[float], failures: dict[int, str]) -> list:
    """Record one answer for `chunk`; returns the halves to send again when the server refused a chunk of
    several samples (so the refused ones stand alone and the rest is scored)."""
    if kind == "ok":
        for i, r in zip(chunk, value):
            if r is None:
                failures[i] = "the server skipped it as over-long (its truncation policy is 'skip')"
            else:
                rewards[i] = float(r)
        return []
    if kind == "refused" and len(chunk) > 1:
        half = len(chunk) // 2
        return [chunk[:half], chunk[half:]]
    for i in chunk:
        failures[i] = value
    return []


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
