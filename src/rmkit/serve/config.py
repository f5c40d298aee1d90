"""ServeConfig: the limits, batching and safety settings of `rmkit serve`, checked when built.

    from rmkit.serve.config import ServeConfig
    cfg = ServeConfig(max_queue=512, max_wait_ms=2.0, api_key=None)

Every field is documented where it is declared; `rmkit serve --help` shows the same options.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    """Address to bind. Loopback by default; any other address needs an API key (never an open server)."""
    port: int = 8000
    api_key: str | None = None
    """When set, every scoring endpoint and /metrics need `Authorization: Bearer <key>`, or the key in the
    path: `/k/<key>/get_reward` (a capability URL, for clients that send no header, such as OpenRLHF).
    Both are compared in constant time; access logs show the path with the key redacted."""
    model_name: str | None = None
    """Name reported by /health and /classify; None = the scorer's name."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body accepted; a bigger one gets 413 naming `max_body_bytes`."""
    max_conversations: int = 256
    """Most conversations (or texts, or responses) in one request; more gets 413 naming `max_conversations`."""
    max_tokens: int | None = None
    """Most tokens in one conversation; None = the scorer's max_length. Over it: 422 naming `max_tokens`
    (or the scorer's own truncation policy when that is "skip" or "truncate")."""
    max_queue: int = 1024
    """Most conversations waiting to be scored; a request that does not fit gets 503 with Retry-After."""
    max_wait_ms: float = 2.0
    """How long the batcher waits for more requests once it holds one (0 = never waits)."""
    batch_tokens: int | None = None
    """Padded tokens gathered into one scoring call; None = the scorer's batch_tokens."""
    max_batch_size: int | None = None
    """Most conversations in one scoring call; None = the scorer's max_batch_size."""
    pool_batches: int = 2
    """How many forwards' worth of waiting requests one gather may take; they are sorted by length into
    batches of `batch_tokens`, which cuts padding when request lengths vary."""
    retry_after_s: int = 1
    """Seconds sent in Retry-After with a 503."""
    graceful_timeout_s: float = 30.0
    """How long shutdown waits for the requests in flight before giving up on them."""
    on_error_reward: float | None = None
    """The reward the RL clients' endpoints (/get_reward, /classify, /pooling, /v1/embeddings) answer for a
    sample rmkit cannot score (a query in no known template, over the token limit, a message the template
    refuses), with the reason in the answer, the log and /metrics. None: such a request gets 422 (null for
    an over-long one under truncation="skip"), which OpenRLHF retries five times and then drops."""
    policy_template: str = "auto"
    """How /get_reward reads a query (the policy's rendering of prompt + response): "auto" detects ChatML,
    Llama-3, Gemma or Mistral text and re-renders its messages with the reward model's template, and takes
    other text as the reward model's own rendering; a family name ("chatml", "llama3", "gemma", "mistral")
    reads every query as that family; "none" tokenizes every query as given."""

    def __post_init__(self):
        for name in ("max_body_bytes", "max_conversations", "max_queue", "retry_after_s", "pool_batches"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("max_tokens", "batch_tokens", "max_batch_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, got {value}")
        if self.max_wait_ms < 0 or self.graceful_timeout_s < 0:
            raise ValueError("max_wait_ms and graceful_timeout_s must be >= 0")
        if self.max_conversations > self.max_queue:
            raise ValueError(f"max_conversations ({self.max_conversations}) must not exceed "
                             f"max_queue ({self.max_queue}): such a request could never be queued")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.api_key is not None and (not self.api_key or "/" in self.api_key):
            raise ValueError("api_key must be None or a non-empty string without '/' (it is also a URL segment)")
        if self.host not in LOOPBACK and self.api_key is None:
            raise ValueError(f"binding {self.host} needs an API key: set api_key (rmkit serve reads RMKIT_API_KEY)")
        if self.on_error_reward is not None and not math.isfinite(self.on_error_reward):
            raise ValueError(f"on_error_reward must be a finite number or None, got {self.on_error_reward}")
        from rmkit.models.chat_parse import FAMILIES

        if self.policy_template not in ("auto", "none") + FAMILIES:
            raise ValueError(f"policy_template must be one of {('auto', 'none') + FAMILIES}, "
                             f"got {self.policy_template!r}")
