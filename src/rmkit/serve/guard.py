"""ASGI middleware of `rmkit serve`: API-key check, request-body limit, and per-request metrics.

    app.add_middleware(BodyLimit, max_bytes=8 << 20)
    app.add_middleware(ShedLoad, is_full=lambda: batcher.full(), detail="queue full", retry_after_s=1)
    app.add_middleware(ApiKey, key="secret", protected=SCORING_PATHS + ("/metrics",))
    app.add_middleware(RequestMetrics, metrics=metrics)

`ApiKey` answers 401 before the body is read, comparing keys with `hmac.compare_digest`. `ShedLoad`
answers 503 while the queue is full, also before the body is read. `BodyLimit`
answers 413 from Content-Length at once, and for a body without one stops reading as soon as it
passes the limit (the error is an HTTPException, so FastAPI's body reader passes it through).
`RequestMetrics` counts every response by endpoint and status and times the scoring endpoints.
"""
from __future__ import annotations

import hmac
import logging
import re
import time

from fastapi import HTTPException
from starlette.responses import JSONResponse

SCORING_PATHS = ("/v1/rewards", "/v1/compare", "/v1/rank", "/get_reward", "/classify", "/v1/classify",
                 "/pooling", "/v1/embeddings")
CAPABILITY_PREFIX = "/k/"
_KEY_IN_PATH = re.compile(r"/k/[^/\s\"]+")
KNOWN_PATHS = SCORING_PATHS + ("/health", "/metrics", "/docs", "/openapi.json")


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


class CapabilityPath:
    """`/k/<key>/<endpoint>` → `/<endpoint>`, marked authenticated when <key> is the server's key (compared
    in constant time); a wrong key gets 401, and with no key configured the prefix is unknown (404)."""

    def __init__(self, app, key: str | None):
        self.app, self.key = app, key.encode() if key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(CAPABILITY_PREFIX):
            return await self.app(scope, receive, send)
        given, _, rest = scope["path"][len(CAPABILITY_PREFIX):].partition("/")
        if self.key is None:
            return await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
        if not hmac.compare_digest(given.encode(), self.key):
            return await _unauthorized(scope, receive, send)
        path = "/" + rest
        scope = dict(scope, path=path, raw_path=path.encode(), rmkit_authenticated=True)
        await self.app(scope, receive, send)


class ApiKey:
    def __init__(self, app, key: str | None, protected: tuple[str, ...]):
        self.app, self.protected = app, protected
        self.key = key.encode() if key else None

    async def __call__(self, scope, receive, send):
        if (self.key is None or scope["type"] != "http" or scope["path"] not in self.protected
                or scope.get("rmkit_authenticated")):
            return await self.app(scope, receive, send)
        given = _header(scope, b"authorization") or b""
        scheme, _, token = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            return await self.app(scope, receive, send)
        await _unauthorized(scope, receive, send)


async def _unauthorized(scope, receive, send):
    response = JSONResponse({"detail": "missing or invalid API key: send 'Authorization: Bearer <key>' or use "
                                       "the capability URL /k/<key>/<endpoint>"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
    await response(scope, receive, send)


def redact(text: str) -> str:
    """A path or log line with the key of a capability URL replaced by ***."""
    return _KEY_IN_PATH.sub("/k/***", text)


class RedactKey(logging.Filter):
    """Rewrites a log record so that no capability-URL key reaches a handler (uvicorn's access log prints
    each request's path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/k/" in message:
            record.msg, record.args = redact(message), None
        return True


class ShedLoad:
    """A scoring request that arrives while the queue is full gets 503 + Retry-After before its body is
    read or parsed: under overload, refusing must be the cheapest thing the server does."""

    def __init__(self, app, is_full, detail: str, retry_after_s: int):
        self.app, self.is_full, self.detail = app, is_full, detail
        self.headers = {"Retry-After": str(retry_after_s)}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] in SCORING_PATHS and self.is_full():
            response = JSONResponse({"detail": self.detail}, status_code=503, headers=self.headers)
            return await response(scope, receive, send)
        await self.app(scope, receive, send)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body exceeds max_body_bytes={limit}")


class BodyLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            status, detail = (413, BodyTooLarge(self.max_bytes).detail) if length.isdigit() else \
                (400, "invalid Content-Length header")
            return await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


class RequestMetrics:
    def __init__(self, app, metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        start, status = time.perf_counter(), 500

        async def recording_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.request(endpoint=path, status=str(status))
            if path in SCORING_PATHS:
                self.metrics.latency.observe(time.perf_counter() - start)
