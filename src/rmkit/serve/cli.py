"""`rmkit serve --model M`: the HTTP reward server (FastAPI + uvicorn, dynamic batching).

    rmkit serve --model smollm2-135m                                   # http://127.0.0.1:8000/docs
    rmkit serve --model Skywork/Skywork-Reward-V2-Llama-3.1-8B --backend vllm --dtype bfloat16
    RMKIT_API_KEY=secret rmkit serve --model PATH --host 0.0.0.0 --port 8000 --max-queue 2048

Binds 127.0.0.1 unless --host says otherwise. The API key is read from the environment variable named
by --api-key-env (default RMKIT_API_KEY, used when set); naming a variable that is unset is an error.
The CLI only adapts options to `ScorerConfig` / `VLLMConfig`, `ServeConfig` and `rmkit.serve.app.serve`.
Under --backend vllm, vLLM's engine batches concurrent requests; batching flags map to its options.
"""
from __future__ import annotations

import os
from typing import Optional

import typer

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _api_key(env_name: Optional[str]) -> Optional[str]:
    if env_name is None:
        return os.environ.get("RMKIT_API_KEY") or None
    key = os.environ.get(env_name)
    if not key:
        raise typer.BadParameter(f"--api-key-env {env_name}: that environment variable is unset or empty")
    return key


def serve_cmd(model: str = typer.Option(..., "--model", "-m", help="checkpoint path, hub id or embedded name"),
              host: str = typer.Option("127.0.0.1", "--host", help="address to bind (loopback by default)"),
              port: int = typer.Option(8000, "--port"),
              api_key_env: Optional[str] = typer.Option(None, "--api-key-env",
                                                        help="env var holding the API key [RMKIT_API_KEY]"),
              backend: str = typer.Option("hf", "--backend", help="hf (rmkit's micro-batcher) | vllm (vLLM's "
                                                                  "engine batches; pip install 'rmkit[vllm]')"),
              tensor_parallel_size: Optional[int] = typer.Option(None, "--tensor-parallel-size",
                                                                 help="vllm: GPUs per model"),
              gpu_memory_utilization: Optional[float] = typer.Option(None, "--gpu-memory-utilization",
                                                                     help="vllm: device memory fraction"),
              dtype: str = typer.Option("auto", "--dtype", help="float32 | bfloat16 | float16 | auto"),
              device: str = typer.Option("auto", "--device"),
              max_length: Optional[int] = typer.Option(None, "--max-length",
                                                       help="most tokens per conversation [model's limit]"),
              truncation: str = typer.Option("error", "--truncation", help="error (422) | skip (null) | truncate"),
              pooling: str = typer.Option("last", "--pooling", help="last | hf"),
              batch_tokens: int = typer.Option(8192, "--batch-tokens", help="padded tokens per forward"),
              max_batch_size: int = typer.Option(64, "--max-batch-size", help="conversations per forward"),
              max_wait_ms: float = typer.Option(2.0, "--max-wait-ms", help="batching window under load"),
              max_queue: int = typer.Option(1024, "--max-queue", help="conversations waiting before 503"),
              pool_batches: int = typer.Option(2, "--pool-batches", help="forwards per length-sorted pool"),
              max_conversations: int = typer.Option(256, "--max-conversations", help="per request"),
              max_body_bytes: int = typer.Option(8 << 20, "--max-body-bytes"),
              graceful_timeout: float = typer.Option(30.0, "--graceful-timeout", help="seconds to finish in flight"),
              log_level: str = typer.Option("info", "--log-level")):
    """Serve raw rewards over HTTP: /v1/rewards, /v1/compare, /v1/rank, /get_reward, /classify."""
    from rich.console import Console

    from rmkit.score.scorer import RewardScorer
    from rmkit.serve.app import serve
    from rmkit.serve.config import ServeConfig

    key = _api_key(api_key_env)
    cfg = ServeConfig(host=host, port=port, api_key=key, model_name=model, max_body_bytes=max_body_bytes,
                      max_conversations=max_conversations, max_queue=max_queue, max_wait_ms=max_wait_ms,
                      pool_batches=pool_batches, graceful_timeout_s=graceful_timeout)
    if host not in LOOPBACK and key is None:
        Console(stderr=True).print(f"[yellow]warning: binding {host} with no API key: anyone who can reach "
                                   "this port can use the model (set RMKIT_API_KEY)[/yellow]")
    opts = dict(dtype=dtype, device=device, max_length=max_length, truncation=truncation, pooling=pooling,
                batch_tokens=batch_tokens, max_batch_size=max_batch_size)
    if backend == "vllm":
        opts.update(engine="async", tensor_parallel_size=tensor_parallel_size or 1,
                    gpu_memory_utilization=gpu_memory_utilization)
    elif tensor_parallel_size is not None or gpu_memory_utilization is not None:
        raise typer.BadParameter("--tensor-parallel-size and --gpu-memory-utilization are vLLM options: "
                                 "add --backend vllm")
    scorer = RewardScorer.from_pretrained(model, backend=backend, **opts)
    try:
        serve(scorer, cfg, log_level=log_level)
    finally:
        if hasattr(scorer, "close"):
            scorer.close()


def register(app, eval_app) -> None:
    app.command("serve")(serve_cmd)
