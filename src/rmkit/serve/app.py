"""The rmkit reward server: a FastAPI app over one RewardScorer, with dynamic micro-batching.

    from rmkit import RewardScorer
    from rmkit.serve.app import create_app
    from rmkit.serve.config import ServeConfig
    app = create_app(RewardScorer.from_pretrained("smollm2-135m"), ServeConfig())
    # uvicorn.run(app, host="127.0.0.1", port=8000)   -- or: rmkit serve --model smollm2-135m

Endpoints: POST /v1/rewards, /v1/compare, /v1/rank (rmkit, raw rewards), /get_reward (OpenRLHF's remote
RM: {query, prompts, labels} → {rewards, scores, extra_logs, errors}; the query read back from the policy's
chat template), /classify, /v1/classify and /pooling (vLLM's pooling API as vLLM answers it: what verl's
reward loop sends), /v1/embeddings (SGLang's reward-model shape); GET /health, /metrics (Prometheus
text), /docs. With an API key, each also answers under /k/<key>/ for clients that send no header; the
RL clients' endpoints answer `on_error_reward` for a sample that cannot be scored (`rmkit.serve.compat`).
Concurrent requests whose sequences share a prompt (GRPO's G rollouts, sent together or one by one) run
it once (`rmkit.serve.sharing`: exact, the same rewards).
Input is validated and tokenized in the handler, so bad input never reaches the queue: malformed JSON
or roles → 422, a conversation over the token limit → 422, too big a body or too many conversations
→ 413 (each message names its limit), a full queue → 503 with Retry-After, a missing API key → 401.
Shutdown (the lifespan's exit) refuses new work and finishes the requests already queued or running.
rmkit's own rewards are raw logits (no sigmoid); null only for input skipped under truncation="skip".
"""
from __future__ import annotations

import inspect
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from rmkit.data.schema import DataError
from rmkit.score.protocol import IdBackend
from rmkit.serve import schemas as S
from rmkit.serve.batcher import MicroBatcher
from rmkit.serve.compat import KINDS, Compat, sigmoid
from rmkit.serve.config import ServeConfig
from rmkit.serve.guard import SCORING_PATHS, ApiKey, BodyLimit, CapabilityPath, RedactKey, RequestMetrics, ShedLoad
from rmkit.serve.metrics import CONTENT_TYPE
from rmkit.serve.sharing import shared_score_fn
from rmkit.serve.state import ServerState, json_floats, turns_to_messages, prob_first_better, rank_order


def create_app(scorer: IdBackend, config: ServeConfig | None = None) -> FastAPI:
    """The app; run it under uvicorn (or `with TestClient(app)`, so the lifespan starts the batcher)."""
    config = config or ServeConfig()
    state = ServerState(scorer, config)
    if isinstance(state.batcher, MicroBatcher) and _takes_groups(scorer):
        state.batcher.score_fn = shared_score_fn(scorer)  # a pool's shared prompts run once (exact)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await state.batcher.start()
        yield
        await state.batcher.close(timeout=config.graceful_timeout_s)

    app = FastAPI(title="rmkit reward server", version="0.1.0", lifespan=lifespan,
                  description="Raw rewards (logits, no sigmoid) from one reward model, dynamically batched.")
    app.state.rmkit = state
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(ShedLoad, is_full=state.batcher.full, retry_after_s=config.retry_after_s,
                       detail=f"the queue is full (max_queue={config.max_queue}); retry later")
    app.add_middleware(ApiKey, key=config.api_key, protected=SCORING_PATHS + ("/metrics",))
    app.add_middleware(RequestMetrics, metrics=state.metrics)
    app.add_middleware(CapabilityPath, key=config.api_key)  # outermost: the rest sees the endpoint's path

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    _add_rmkit_routes(app, state)
    _add_compat_routes(app, state)
    _add_ops_routes(app, state)
    return app


def _takes_groups(scorer) -> bool:
    """Whether the scorer runs prefix-shared groups (`RewardScorer.shares`) through score_ids(groups=...)."""
    if not getattr(scorer, "shares", False):
        return False
    try:
        return "groups" in inspect.signature(scorer.score_ids).parameters
    except (TypeError, ValueError):
        return False


def _add_rmkit_routes(app: FastAPI, state: ServerState) -> None:
    @app.post("/v1/rewards", response_model=S.RewardsResponse)
    async def rewards(body: S.RewardsRequest):
        """One raw reward per conversation, in input order."""
        convs = [[m.model_dump(exclude_none=True) for m in conv] for conv in body.conversations]
        return {"rewards": json_floats(await state.score(state.encode_conversations(convs)))}

    @app.post("/v1/compare", response_model=S.CompareResponse)
    async def compare(body: S.CompareRequest):
        """Both replies' rewards and P(first ≻ second) = sigmoid(r1 − r2)."""
        r = await state.score(state.encode_conversations(_with_prompt(body.prompt, body.responses),
                                                         "response"))
        return {"rewards": json_floats(r), "prob_first_better": prob_first_better(r[0], r[1], getattr(state.scorer, "temperature", 1.0))}

    @app.post("/v1/rank", response_model=S.RankResponse)
    async def rank(body: S.RankRequest):
        """N replies to one prompt, rewarded and ordered best first (best-of-N, rejection sampling)."""
        r = await state.score(state.encode_conversations(_with_prompt(body.prompt, body.responses),
                                                         "response"))
        order = rank_order(r)
        return {"rewards": json_floats(r), "order": order, "best": order[0]}


def _with_prompt(prompt, responses) -> list[list]:
    context = turns_to_messages(prompt, "user")
    if not context:
        raise DataError("prompt is empty")
    return [context + turns_to_messages(resp, "assistant") for resp in responses]


def _add_compat_routes(app: FastAPI, state: ServerState) -> None:
    _add_openrlhf_route(app, state, state.compat)
    _add_pooling_routes(app, state, state.compat)


def _add_openrlhf_route(app: FastAPI, state: ServerState, compat: Compat) -> None:
    kinds = {f"rmkit_{k}": k for k in KINDS}

    @app.post("/get_reward", response_model=S.GetRewardResponse)
    async def get_reward(body: S.GetRewardRequest):
        """OpenRLHF's remote RM: each query (the policy's rendering of prompt + response) read back into
        messages and re-rendered with the reward model's template; `prompts` and `labels` are not used."""
        items = [(q, lambda q=q: compat.query_ids(q)) for q in body.query]
        rewards, failed, _ = await state.score_items("/get_reward", items)
        r = json_floats(rewards)
        logs = {"rmkit_fallback": [float(i in failed) for i in range(len(r))]}
        logs.update({name: [float(i in failed and failed[i].kind == k) for i in range(len(r))]
                     for name, k in kinds.items()})
        return {"rewards": r, "scores": r, "extra_logs": logs,
                "errors": [f"{failed[i].kind}: {failed[i].reason}" if i in failed else None for i in range(len(r))]}


def _add_pooling_routes(app: FastAPI, state: ServerState, compat: Compat) -> None:
    async def _pooled(path: str, body: S.PoolingRequest, activation: bool) -> tuple[list, dict]:
        rewards, _, tokens = await state.score_items(path, compat.pooling_items(body))
        if activation:
            rewards = [sigmoid(x) for x in rewards]
        return json_floats(rewards), {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}

    async def classify(request: Request, body: S.PoolingRequest):
        """vLLM's classification API (verl's reward loop): `probs` holds sigmoid(reward), or the raw reward
        when use_activation (vLLM < 0.11.2: activation) is false."""
        values, usage = await _pooled(request.url.path, body, body.activated)
        return {"id": f"classify-{uuid.uuid4().hex}", "created": int(time.time()), "model": state.model_name,
                "data": [{"index": i, "label": state.label, "probs": [x], "num_classes": 1}
                         for i, x in enumerate(values)], "usage": usage}

    for path in ("/classify", "/v1/classify"):
        app.add_api_route(path, classify, methods=["POST"], response_model=S.ClassifyResponse)

    @app.post("/pooling", response_model=S.PoolingResponse)
    async def pooling(body: S.PoolingRequest):
        """vLLM's pooling API: `data` is [sigmoid(reward)], or [raw reward] with use_activation false."""
        values, usage = await _pooled("/pooling", body, body.activated)
        return {"id": f"pool-{uuid.uuid4().hex}", "created": int(time.time()), "model": state.model_name,
                "data": [{"index": i, "data": [x]} for i, x in enumerate(values)], "usage": usage}

    @app.post("/v1/embeddings", response_model=S.EmbeddingsResponse)
    async def embeddings(body: S.EmbeddingsRequest):
        """SGLang's reward-model shape (verl with an SGLang engine): `embedding` is [raw reward]."""
        texts = [body.input] if isinstance(body.input, str) else body.input
        rewards, _, tokens = await state.score_items("/v1/embeddings",
                                                     [(t, lambda t=t: compat.text_ids(t)) for t in texts])
        values = json_floats(rewards)
        return {"model": state.model_name, "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                "data": [{"index": i, "embedding": [x]} for i, x in enumerate(values)]}


def _add_ops_routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/health", response_model=S.HealthResponse)
    async def health():
        """200 while serving; 503 once shutdown has begun."""
        closing = state.batcher.closing
        body = {"status": "shutting_down" if closing else "ok", "model": state.model_name,
                "queue_depth": state.batcher.queued, "in_flight": state.batcher.in_flight}
        return JSONResponse(body, status_code=503 if closing else 200)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics():
        """Prometheus text: requests by endpoint and status, queue depth, batch sizes, latency."""
        return PlainTextResponse(state.metrics.render(), media_type=CONTENT_TYPE)


def serve(scorer: IdBackend, config: ServeConfig | None = None, *, log_level: str = "info") -> None:
    """Run the server under uvicorn until SIGINT / SIGTERM; in-flight requests finish first."""
    import uvicorn

    config = config or ServeConfig()
    uvicorn.run(create_app(scorer, config), host=config.host, port=config.port, log_level=log_level,
                log_config=redacted_log_config(), timeout_graceful_shutdown=config.graceful_timeout_s or None)


def redacted_log_config() -> dict:
    """uvicorn's logging config with every handler passing records through `RedactKey`: the key of a
    capability URL never reaches a log line."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg.setdefault("filters", {})["rmkit_redact"] = {"()": RedactKey}
    for handler in cfg["handlers"].values():
        handler.setdefault("filters", []).append("rmkit_redact")
    return cfg
