"""An rmkit reward model as a TRL reward function (GRPOTrainer, RLOOTrainer: anything taking `reward_funcs`).

    from rmkit.integrations.trl import drop_unscored, reward_function
    reward = reward_function("path/to/rm", dtype="bfloat16")                 # local rmkit scorer
    reward = reward_function("http://rm-host:8000", api_key=KEY, timeout=30)  # `rmkit serve`
    reward = reward_function("http://rm-host:8000", asynchronous=True)        # TRL awaits it beside the others
    trainer = GRPOTrainer(model=policy, reward_funcs=reward, args=GRPOConfig(...), train_dataset=ds)
    trainer = GRPOTrainer(..., reward_funcs=drop_unscored(reward_function(rm, on_error=None), format_reward))

TRL's own reward-model path (`reward_funcs="path/to/rm"`) renders every prompt + completion with
whatever template the caller's tokenizer holds, pads them and runs each one whole. Here each
conversation is rendered with the reward model's own chat template straight to ids (no double BOS),
the G completions of a prompt are scored as one group that runs the prompt once, and the reward is
pooled at the true last token: the rewards `rmkit score` gives offline, whatever the batch.
Conversations from tool-calling rollouts (assistant `tool_calls`, `tool` messages) are rendered by the
reward model's template where it supports them; where it drops them, the sample fails with the reason.

Conversational prompts (lists of messages) and plain-text prompts both work. A plain-text sample is a
user turn and an assistant turn under the reward model's template (text="chat", the default), or the
string prompt + completion tokenized as given (text="raw", TRL's behaviour for plain text).

Failures: `on_error` ("raise", the default | a number | None) for samples that cannot be scored, each
reported. None is what TRL reads as "no reward", but TRL drops a completion from the advantage only when
*every* reward function returns None for it; beside other reward functions its None counts as 0 in TRL's
sum, a silent 0 on the raw-logit scale. `drop_unscored(rmkit_fn, *others)` makes every function answer
None where rmkit could not score, so TRL leaves those completions out.

Options: `normalize` (False | True: the mean / std `rmkit calibrate --save` stored beside the model |
a calibration.json path | (mean, std)); `name` (TRL logs `rewards/<name>/mean`); `asynchronous` (an
`async def __call__`: TRL runs it concurrently with its other async reward functions); remote: `api_key`
(or RMKIT_API_KEY), `timeout`, `retries`, `batch_size`; local: any RewardScorer option (dtype, device,
max_length, ...). The function pickles (TRL's AsyncGRPOTrainer spawns its reward workers): the model or
connection is built again, lazily, in the child.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import warnings
from collections import Counter
from typing import Any, Callable

from rmkit.integrations.rewards import (Normalizer, RewardSource, Sample, Scored, check_on_error, finish,
                                        make_normalizer)
from rmkit.integrations.sources import open_source

NONE_BESIDE_OTHERS = ("on_error=None: TRL leaves a completion out of the advantage only when every reward function "
                      "returns None for it; beside other reward functions rmkit's None counts as 0 in TRL's sum "
                      "(nansum), a 0 on the raw-logit scale. Wrap the list in "
                      "rmkit.integrations.trl.drop_unscored(reward, *others) to leave such completions out.")


class RewardFunction:
    """TRL's reward-function shape: `(prompts, completions, **kwargs) -> list[float | None]`, with a `__name__`."""

    def __init__(self, source: RewardSource | None, *, name: str = "rmkit", on_error: Any = "raise",
                 normalizer: Normalizer | None = None, spec: tuple | None = None):
        if source is None and spec is None:
            raise ValueError("give a source, or the spec (model_or_url, options) to open one")
        self._source, self.spec, self.__name__ = source, spec, name
        self.on_error, self.normalizer = check_on_error(on_error), normalizer
        self.stats: Counter = Counter()
        """calls, samples, failed: what this function has seen so far."""
        self._last: tuple[str, Scored] | None = None

    @property
    def source(self) -> RewardSource:
        if self._source is None:  # in a child process, after unpickling
            model_or_url, options = self.spec
            self._source, _ = open_source(model_or_url, **options)
        return self._source

    def __getstate__(self) -> dict:
        state = dict(self.__dict__, _last=None)
        if self.spec is not None:
            state["_source"] = None  # the model / connection is rebuilt in the other process
        return state

    def scored(self, prompts: list, completions: list) -> Scored:
        """The batch's raw rewards and failures, scored once however many functions ask (drop_unscored)."""
        key = _batch_key(prompts, completions)
        if self._last is None or self._last[0] != key:
            self._last = (key, self.source.score(_samples(prompts, completions)))
        return self._last[1]

    async def ascored(self, prompts: list, completions: list) -> Scored:
        """`scored` awaited: a remote source's requests go concurrently over one `httpx.AsyncClient`, a local
        scorer runs in a worker thread."""
        key = _batch_key(prompts, completions)
        if self._last is None or self._last[0] != key:
            source, samples = self.source, _samples(prompts, completions)
            scored = (await source.ascore(samples) if hasattr(source, "ascore")
                      else await asyncio.to_thread(source.score, samples))
            self._last = (key, scored)
        return self._last[1]

    def done(self, scored: Scored, kwargs: dict) -> list[float | None]:
        """What TRL receives for a scored batch; stats and TRL's log_metric updated."""
        self.stats.update(calls=1, samples=len(scored.rewards), failed=len(scored.failures))
        log_metric = kwargs.get("log_metric")  # TRL >= 1.x passes one: averaged and logged per step
        if callable(log_metric):
            log_metric(f"{self.__name__}/unscored", float(len(scored.failures)))
        return finish(scored, on_error=self.on_error, normalizer=self.normalizer, name=self.__name__)

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        return self.done(self.scored(prompts, completions), kwargs)


class AsyncRewardFunction:
    """The same reward as an `async def __call__` (TRL's `is_async_callable`), over `RewardFunction.ascored`."""

    def __init__(self, fn: RewardFunction):
        self.fn, self.__name__ = fn, fn.__name__

    async def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        return self.fn.done(await self.fn.ascored(prompts, completions), kwargs)


def _samples(prompts: list, completions: list) -> list[Sample]:
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
    return [Sample(p, c) for p, c in zip(prompts, completions)]


def _batch_key(prompts: list, completions: list) -> str:
    blob = json.dumps([prompts, completions], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha1(blob.encode()).hexdigest()


class Unscored:
    """Another reward function, answering None wherever rmkit could not score the completion."""

    def __init__(self, fn: Callable, rmkit: RewardFunction):
        self.fn, self.rmkit = fn, rmkit
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list:
        out = list(self.fn(prompts=prompts, completions=completions, **kwargs))
        failed = self.rmkit.scored(prompts, completions).failures
        return [None if i in failed else r for i, r in enumerate(out)]


def drop_unscored(rmkit: RewardFunction, *others: Callable) -> list[Callable]:
    """`reward_funcs` for TRL in which a completion rmkit cannot score gets None from every function, so
    TRL leaves it out of the advantage (`grpo_trainer.py`: a row is dropped only when all are None) instead
    of summing the others with a 0 for rmkit. `rmkit` must be built with on_error=None; the batch is
    scored once, whichever function TRL calls first. Synchronous reward functions only."""
    if not isinstance(rmkit, RewardFunction):
        raise TypeError("drop_unscored takes rmkit's synchronous reward function (reward_function(..., "
                        "asynchronous=False))")
    if rmkit.on_error is not None:
        raise ValueError("drop_unscored needs the rmkit reward function built with on_error=None")
    for fn in others:
        if asyncio.iscoroutinefunction(fn) or asyncio.iscoroutinefunction(getattr(fn, "__call__", None)):
            raise TypeError(f"{getattr(fn, '__name__', fn)} is async: drop_unscored wraps synchronous functions")
    return [rmkit, *(Unscored(fn, rmkit) for fn in others)]


def reward_function(model_or_url: Any, *, name: str = "rmkit", text: str = "chat", normalize: Any = False,
                    on_error: Any = "raise", asynchronous: bool = False, **options: Any):
    """A TRL reward function over an rmkit reward model: a checkpoint path / hub id / embedded name, a
    scorer already built, or the URL of an `rmkit serve` server (see the module docstring)."""
    source, folder = open_source(model_or_url, text=text, **options)
    if normalize is True and folder is None:
        raise ValueError("normalize=True reads calibration.json beside a local model folder; for a server or a "
                         "hub id pass normalize='path/to/calibration.json' or normalize=(mean, std)")
    if on_error is None:
        warnings.warn(NONE_BESIDE_OTHERS, stacklevel=2)
    spec = (model_or_url, dict(options, text=text)) if isinstance(model_or_url, str) else None
    fn = RewardFunction(source, name=name, on_error=on_error, normalizer=make_normalizer(normalize, folder),
                        spec=spec)
    return AsyncRewardFunction(fn) if asynchronous else fn
