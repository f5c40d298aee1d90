"""Generative judges: an instruction-tuned model asked to compare or rate, run locally or over HTTP.

    judge = build_judge("smollm2-135m-instruct")                       # local: vLLM's generate (or backend="hf")
    judge = build_judge("gpt-4o", url="https://api.openai.com/v1")     # any OpenAI-compatible endpoint
    judge.generate([[{"role": "system", ...}, {"role": "user", ...}], ...])   # one answer (or None) each

A judge only turns chat messages into answers: the prompts, the verdict parsing and each benchmark's rule
for an inconsistent or unparseable verdict live in `rmkit.evaluate.judging`. Every engine is greedy
(temperature 0, top_p 1, as reward-bench and JudgeBench run their judges), takes `max_tokens`, and keeps its
answers in a cache under rmkit's cache folder (`$RMKIT_CACHE/judge/`), keyed by the model, the messages and
the sampling settings, so a rerun (or the second order of a pair already judged) costs nothing.

- `EndpointJudge`: POST /chat/completions with bounded concurrency (`concurrency` requests in flight) and
  retries with exponential backoff on connection errors, timeouts, 429 and 5xx; the key from the
  environment variable `api_key_env` (default RMKIT_JUDGE_API_KEY, else OPENAI_API_KEY). A request that still
  fails after `retries` is answered None (the benchmark counts it as an unparseable verdict, as reward-bench's
  "$ERROR$" and JudgeBench's failed game are) and is not cached, so a rerun asks again.
- `VLLMJudge`: vLLM's `LLM.generate` over every prompt at once (its scheduler batches; prefix caching shares
  the system prompt and the question between a pair's two orders).
- `HFJudge`: transformers' greedy `generate`, batched by length with left padding.
Local engines render the chat template straight to ids (no duplicated BOS).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

from rmkit.models.paths import cache_dir

log = logging.getLogger("rmkit")
Messages = list[dict[str, str]]
JUDGE_BACKENDS = ("vllm", "hf")


class AnswerCache:
    """Answers by key, kept in one jsonl file per judge (appended, one line per answer, flushed at once: a
    killed run loses at most the answer being written; a torn last line is ignored on the next load)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self.answers: dict[str, str] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.answers[row["key"]] = row["answer"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue

    def get(self, key: str) -> str | None:
        return self.answers.get(key)

    def put(self, key: str, answer: str) -> None:
        with self._lock:
            self.answers[key] = answer
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "answer": answer}, ensure_ascii=False) + "\n")
                f.flush()


class Judge:
    """What every engine shares: the cache in front of `_generate` (the engine's own batch call)."""

    def __init__(self, name: str, max_tokens: int, cache: bool | str | os.PathLike):
        self.name, self.max_tokens = name, max_tokens
        self.cache, self.stats = _cache_for(name, cache), {}

    def key(self, messages: Messages) -> str:
        blob = json.dumps({"model": self.name, "messages": messages, "max_tokens": self.max_tokens,
                           "temperature": 0.0, "top_p": 1.0}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def generate(self, conversations: Sequence[Messages]) -> list[str | None]:
        """One answer per conversation (None: the engine gave none), in input order; cached answers are not
        asked again, and a conversation asked twice in one call is generated once."""
        keys = [self.key(m) for m in conversations]
        todo: dict[str, Messages] = {}
        for k, m in zip(keys, conversations):
            if self.cache.get(k) is None and k not in todo:
                todo[k] = m
        self.stats["cached"] = self.stats.get("cached", 0) + len(keys) - len(todo)
        if todo:
            for k, answer in zip(todo, self._generate(list(todo.values()))):
                if answer is not None:
                    self.cache.put(k, answer)
        self.stats["asked"] = self.stats.get("asked", 0) + len(todo)
        return [self.cache.get(k) for k in keys]

    def _generate(self, conversations: list[Messages]) -> list[str | None]:
        raise NotImplementedError


def _cache_for(name: str, cache: bool | str | os.PathLike) -> AnswerCache:
    if cache is False:
        return AnswerCache(None)
    if cache is True:
        slug = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
        return AnswerCache(cache_dir() / "judge" / f"{slug}.jsonl")
    return AnswerCache(cache)


class EndpointJudge(Judge):
    def __init__(self, url: str, model: str, *, api_key_env: str | None = None, concurrency: int = 16,
                 retries: int = 5, timeout: float = 300.0, max_tokens: int = 2048,
                 cache: bool | str | os.PathLike = True):
        if concurrency < 1 or retries < 0:
            raise ValueError("concurrency must be >= 1 and retries >= 0")
        base = url.rstrip("/")
        base = base if base.endswith("/v1") else base + "/v1"  # one name (and one cache) however it was written
        self.url = base + "/chat/completions"
        super().__init__(f"{model}@{base}", max_tokens, cache)
        self.model = model
        env = api_key_env or ("RMKIT_JUDGE_API_KEY" if os.environ.get("RMKIT_JUDGE_API_KEY") else "OPENAI_API_KEY")
        self.api_key = os.environ.get(env)
        if api_key_env and not self.api_key:
            raise ValueError(f"--judge-api-key-env {api_key_env}: that environment variable is unset or empty")
        self.concurrency, self.retries, self.timeout = concurrency, retries, timeout

    def _generate(self, conversations: list[Messages]) -> list[str | None]:
        coro = self._all(conversations)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        box: list = []  # called from inside an event loop (a notebook): run on a thread of its own
        thread = threading.Thread(target=lambda: box.append(asyncio.run(coro)))
        thread.start()
        thread.join()
        return box[0]

    async def _all(self, conversations: list[Messages]) -> list[str | None]:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, headers=headers, limits=limits) as client:
            tasks = [asyncio.ensure_future(self._one(client, gate, m)) for m in conversations]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:  # a refused request: the others are cancelled and awaited before it goes out
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    async def _one(self, client, gate: asyncio.Semaphore, messages: Messages) -> str | None:
        import httpx

        body = {"model": self.model, "messages": messages, "temperature": 0.0, "top_p": 1.0, "n": 1,
                "max_tokens": self.max_tokens}
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(min(30.0, 2.0 ** (attempt - 1)))
            async with gate:
                try:
                    r = await client.post(self.url, json=body)
                except httpx.TransportError as e:  # connection refused / reset, timeouts
                    last = f"{type(e).__name__}: {e}"
                    continue
            if r.status_code == 429 or r.status_code >= 500:
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                continue
            if r.status_code != 200:  # 4xx: the request itself is wrong; asking again will not help
                raise ValueError(f"judge endpoint {self.url} refused the request: HTTP {r.status_code}: "
                                 f"{r.text[:500]}")
            try:
                return r.json()["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError) as e:
                raise ValueError(f"judge endpoint {self.url}: not a chat completion ({type(e).__name__}): "
                                 f"{r.text[:200]}") from e
        self.stats["failed"] = self.stats.get("failed", 0) + 1
        log.warning("judge %s: no answer after %d tries (%s)", self.name, self.retries + 1, last)
        return None


def _prompt_ids(tokenizer, messages: Messages) -> list[int]:
    """The chat template's ids with the generation prompt, straight from the template (no second BOS)."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
    return list(out["input_ids"])


class VLLMJudge(Judge):
    def __init__(self, model: str, *, max_tokens: int = 2048, dtype: str = "auto",
                 max_length: int | None = None, cache: bool | str | os.PathLike = True, **engine: Any):
        from rmkit.models.load import load_tokenizer, resolve_name
        from rmkit.score.vllm_scorer import VLLMConfig, _import_vllm, engine_args

        _import_vllm()
        from vllm import LLM

        super().__init__(str(model), max_tokens, cache)
        path = resolve_name(model)
        self.tokenizer = load_tokenizer(path)
        cfg = VLLMConfig(dtype=dtype, max_length=max_length, **engine)
        self.llm = LLM(model=path, runner="generate", **engine_args(cfg, max_length))

    def _generate(self, conversations: list[Messages]) -> list[str | None]:
        from vllm import SamplingParams

        params = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_tokens=self.max_tokens)
        prompts = [{"prompt_token_ids": _prompt_ids(self.tokenizer, m)} for m in conversations]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=len(prompts) > 1)
        return [o.outputs[0].text for o in outputs]

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        shutdown = getattr(getattr(getattr(llm, "llm_engine", None), "engine_core", None), "shutdown", None)
        if shutdown is not None:
            shutdown()


class HFJudge(Judge):
    def __init__(self, model: str, *, max_tokens: int = 2048, dtype: str = "float32", device: str = "cpu",
                 batch_size: int = 8, cache: bool | str | os.PathLike = True):
        import torch
        from transformers import AutoModelForCausalLM

        from rmkit.models.load import load_tokenizer, resolve_name

        super().__init__(str(model), max_tokens, cache)
        path = resolve_name(model)
        self.batch_size, self.device = batch_size, device
        self.tokenizer = load_tokenizer(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device).eval()

    def _generate(self, conversations: list[Messages]) -> list[str | None]:
        import torch

        ids = [_prompt_ids(self.tokenizer, m) for m in conversations]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        out: list[str | None] = [None] * len(ids)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = max(len(ids[i]) for i in batch)
            x = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros_like(x)
            for row, i in enumerate(batch):  # left padding: every prompt ends where generation starts
                x[row, width - len(ids[i]):] = torch.tensor(ids[i])
                mask[row, width - len(ids[i]):] = 1
            with torch.inference_mode():
                gen = self.model.generate(input_ids=x.to(self.device), attention_mask=mask.to(self.device),
                                          max_new_tokens=self.max_tokens, do_sample=False, pad_token_id=pad)
            for row, i in enumerate(batch):
                out[i] = self.tokenizer.decode(gen[row, width:], skip_special_tokens=True)
        return out


def build_judge(model: str, *, url: str | None = None, backend: str = "vllm", max_tokens: int = 2048,
                concurrency: int = 16, retries: int = 5, api_key_env: str | None = None,
                cache: bool | str | os.PathLike = True, **options: Any) -> Judge:
    """A judge: `url` given → the OpenAI-compatible endpoint serving `model`; else `model` (a path, hub id or
    embedded name such as smollm2-135m-instruct) loaded here on `backend` (vllm | hf)."""
    if url is not None:
        return EndpointJudge(url, model, api_key_env=api_key_env, concurrency=concurrency, retries=retries,
                             max_tokens=max_tokens, cache=cache)
    if backend not in JUDGE_BACKENDS:
        raise ValueError(f"judge backend must be one of {', '.join(JUDGE_BACKENDS)}, got {backend!r}")
    engine = VLLMJudge if backend == "vllm" else HFJudge
    return engine(model, max_tokens=max_tokens, cache=cache, **options)
