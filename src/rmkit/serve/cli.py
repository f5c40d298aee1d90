"""`rmkit serve --model M`: the HTTP reward server (FastAPI + uvicorn, dynamic batching).

    rmkit serve --model smollm2-135m                                   # http://127.0.0.1:8000/docs
    rmkit serve --model Skywork/Skywork-Reward-V2-Llama-3.1-8B --backend vllm --dtype bfloat16
    RMKIT_API_KEY=secret rmkit serve --model PATH --host 0.0.0.0 --port 8000 --max-queue 2048
    RMKIT_API_KEY=secret rmkit serve --model PATH --host 0.0.0.0 --on-error-reward -10 --policy-template Qwen/Qwen3-8B

Binds 127.0.0.1 unless --host says otherwise; any other address needs an API key, read from the
environment variable named by --api-key-env (default RMKIT_API_KEY, used when set; naming a variable that
is unset is an error). Clients send it as a bearer header, or in the path for those that send no header
(OpenRLHF): http://host:8000/k/<key>/get_reward. Access logs redact the key.
The CLI only adapts options to `ScorerConfig` / `VLLMConfig`, `ServeConfig` and `rmkit.serve.app.serve`.
Under --backend vllm, vLLM's engine batches concurrent requests; batching flags map to its options.
"""
from __future__ import annotations

import os
from typing import Optional

import typer

from rmkit.score.options import ScorerSpec, scorer_options


def _api_key(env_name: Optional[str]) -> Optional[str]:
    if env_name is None:
        return os.environ.get("RMKIT_API_KEY") or None
    key = os.environ.get(env_name)
    if not key:
        raise typer.BadParameter(f"--api-key-env {env_name}: that environment variable is unset or empty")
    return key


def policy_family(value: str) -> str:
    """--policy-template: a family name, "auto" / "none", or a policy tokenizer (path or hub id) whose chat
    template's family is read from a probe conversation it renders."""
    from rmkit.models.chat_parse import FAMILIES, family_of_tokenizer

    if value in ("auto", "none") + FAMILIES:
        return value
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(value)
        return family_of_tokenizer(tokenizer)
    except (OSError, ValueError) as e:
        raise typer.BadParameter(f"{value!r} is neither a template family ({', '.join(FAMILIES)}, auto, none) nor a "
                                 f"tokenizer with a known chat template: {e}", param_hint="--policy-template")


def server_config(host: str, port: int, key: Optional[str], **options):
    """The ServeConfig, after the bind check (only loopback without a key); prints the capability URL."""
    from rich.console import Console

    from rmkit.serve.config import LOOPBACK, ServeConfig

    if host not in LOOPBACK and key is None:
        raise typer.BadParameter(f"binding {host} needs an API key: set RMKIT_API_KEY (or --api-key-env). Clients "
                                 "that send no header (OpenRLHF) use the capability URL http://HOST:PORT/k/<key>/"
                                 "get_reward", param_hint="--host")
    if key is not None:
        Console(stderr=True).print(f"capability URLs (no header needed): http://{host}:{port}/k/$RMKIT_API_KEY/"
                                   "<endpoint>, e.g. OpenRLHF's --reward.remote_url .../k/<key>/get_reward")
    return ServeConfig(host=host, port=port, api_key=key, **options)


def server_scorer_options(spec: ScorerSpec) -> dict:
    """What a server's scorer adds to the flags: 64 conversations per forward by default, no progress bar;
    under vllm the AsyncLLM engine (its scheduler batches concurrent requests)."""
    extra = {"max_batch_size": spec.options.get("max_batch_size") or 64, "show_progress": False}
    if spec.backend == "vllm":
        extra.update(vllm_engine="async", tensor_parallel_size=spec.options.get("tensor_parallel_size") or 1)
    elif {"tensor_parallel_size", "gpu_memory_utilization"} & set(spec.options):
        raise typer.BadParameter("--tensor-parallel-size and --gpu-memory-utilization are vLLM options: "
                                 "add --backend vllm")
    return extra


@scorer_options(skip=("baseline", "engine", "actors", "gpus_per_actor", "address", "seed"))
def serve_cmd(host: str = typer.Option("127.0.0.1", "--host", help="address to bind (loopback by default)"),
              port: int = typer.Option(8000, "--port"),
              api_key_env: Optional[str] = typer.Option(None, "--api-key-env",
                                                        help="env var holding the API key [RMKIT_API_KEY]"),
              max_wait_ms: float = typer.Option(2.0, "--max-wait-ms", help="batching window under load"),
              max_queue: int = typer.Option(1024, "--max-queue", help="conversations waiting before 503"),
              pool_batches: int = typer.Option(2, "--pool-batches", help="forwards per length-sorted pool"),
              max_conversations: int = typer.Option(256, "--max-conversations", help="per request"),
              max_body_bytes: int = typer.Option(8 << 20, "--max-body-bytes"),
              graceful_timeout: float = typer.Option(30.0, "--graceful-timeout", help="seconds to finish in flight"),
              on_error_reward: Optional[float] = typer.Option(
                  None, "--on-error-reward", help="reward the RL clients' endpoints answer for a sample that "
                                                  "cannot be scored (reason in the answer, log, /metrics) "
                                                  "[none: 422]"),
              policy_template: str = typer.Option(
                  "auto", "--policy-template", help="how /get_reward reads the policy's text: auto | chatml | "
                                                    "llama3 | gemma | mistral | none | a policy tokenizer path"),
              log_level: str = typer.Option("info", "--log-level"),
              *, spec: ScorerSpec = None):
    """Serve raw rewards over HTTP: /v1/rewards, /v1/compare, /v1/rank, /get_reward, /classify."""
    from rmkit.serve.app import serve

    if spec.model is None:
        raise typer.BadParameter("name the reward model to serve", param_hint="--model")
    cfg = server_config(host, port, _api_key(api_key_env), model_name=spec.model, max_body_bytes=max_body_bytes,
                        max_conversations=max_conversations, max_queue=max_queue, max_wait_ms=max_wait_ms,
                        pool_batches=pool_batches, graceful_timeout_s=graceful_timeout,
                        on_error_reward=on_error_reward, policy_template=policy_family(policy_template))
    scorer = spec.build(**server_scorer_options(spec))
    try:
        serve(scorer, cfg, log_level=log_level)
    finally:
        if hasattr(scorer, "close"):
            scorer.close()


def register(app, eval_app) -> None:
    app.command("serve")(serve_cmd)
