"""The scorer flags of every CLI, made once: from `build_scorer`'s own arguments, `ScorerConfig`'s fields
and the vLLM-only options. A command asks for them with a decorator and receives one `ScorerSpec`:

    @scorer_options()
    def rewardbench_cmd(data: str = ..., *, spec: ScorerSpec):
        scorer = spec.build()

`rmkit eval *`, `rmkit calibrate`, `rmkit score` and `rmkit serve` take them; `rmkit curate` takes the same
flags as overrides of its recipe's `rm_filter.options` (`scorer_options(overrides=True)`: every default None).
"""
from __future__ import annotations

import functools
import inspect
import types
import typing
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional, Sequence

import typer

from rmkit.score.config import ScorerConfig
from rmkit.score.local import BACKENDS


@dataclass(frozen=True)
class Flag:
    name: str
    type: Any
    default: Any
    names: tuple[str, ...]
    help: str


def _optional(tp: Any) -> Any:
    """`X | None` as typing.Optional[X], which every typer release reads."""
    args = typing.get_args(tp)
    if (isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return Optional[inner]
    return tp


def _inner(tp: Any) -> Any:
    """X of Optional[X], else tp."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) is typing.Union and len(args) == 1 else tp


ENGINE_FLAGS = (
    Flag("model", Optional[str], None, ("--model", "-m"), "reward model: local path, hub id or embedded name"),
    Flag("baseline", Optional[str], None, ("--scorer",), "a model-free baseline instead: length | random"),
    Flag("backend", str, "hf", ("--backend",), f"{' | '.join(BACKENDS)}: transformers, or vLLM's engine (the same "
                                                "ids and raw logits; pip install 'rmkit[vllm]')"),
    Flag("engine", str, "local", ("--engine",), "local (this process) | ray (a pool of scorer actors; "
                                                "pip install 'rmkit[ray]')"),
    Flag("actors", int, 2, ("--actors",), "--engine ray: scorer actors (one per GPU on a cluster)"),
    Flag("gpus_per_actor", float, 0.0, ("--gpus-per-actor",), "--engine ray: GPUs each actor holds"),
    Flag("address", Optional[str], None, ("--address",), "--engine ray: an existing cluster ('auto' or "
                                                         "ray://host:10001; RAY_ADDRESS) [a local Ray]"),
    Flag("seed", int, 0, ("--seed",), "seed (the random baseline, subsamples, bootstrap)"),
)
DPO_FLAGS = (
    Flag("ref_model", Optional[str], None, ("--ref-model",), "a DPO policy's implicit reward: --model is the "
         "policy, this its reference; reward = beta * (log pi(y|x) - log pi_ref(y|x)) over the response tokens"),
    Flag("ref_free", Optional[str], None, ("--ref-free",), "a DPO policy without a reference: sum | avg | norm "
         "(reward-bench's ref_free_type)"),
    Flag("beta", Optional[float], None, ("--beta",), "DPO: the beta scaling the implicit reward [1, as "
         "reward-bench]"),
)
VLLM_FLAGS = (
    Flag("tensor_parallel_size", Optional[int], None, ("--tensor-parallel-size",), "vllm: GPUs per model"),
    Flag("gpu_memory_utilization", Optional[float], None, ("--gpu-memory-utilization",),
         "vllm: fraction of device memory"),
)


def config_flags() -> tuple[Flag, ...]:
    """One flag per ScorerConfig field that has one, its type, CLI default and help from the field."""
    hints = typing.get_type_hints(ScorerConfig)
    return tuple(Flag(f.name, _optional(hints[f.name]), f.metadata["cli"], ("--" + f.name.replace("_", "-"),),
                      f.metadata["help"]) for f in fields(ScorerConfig) if f.metadata.get("flag"))


def all_flags() -> tuple[Flag, ...]:
    return ENGINE_FLAGS + config_flags() + DPO_FLAGS + VLLM_FLAGS


ENGINE_NAMES = {f.name for f in ENGINE_FLAGS}


@dataclass(frozen=True)
class ScorerSpec:
    """What the scorer flags said: a model (or baseline), where it runs, and its options."""

    model: str | None = None
    baseline: str | None = None
    backend: str = "hf"
    engine: str = "local"
    actors: int = 2
    gpus_per_actor: float = 0.0
    address: str | None = None
    seed: int = 0
    options: dict = None  # type: ignore[assignment]

    @classmethod
    def from_flags(cls, values: dict[str, Any]) -> "ScorerSpec":
        given = {k: v for k, v in values.items() if k in ENGINE_NAMES}
        options = {k: v for k, v in values.items() if k not in ENGINE_NAMES and v is not None}
        return cls(**given, options=options)

    @property
    def name(self) -> str | None:
        """The model or baseline: results' Model column."""
        return self.model or self.baseline

    @property
    def model_options(self) -> dict[str, Any]:
        """The options a model takes (a baseline takes none), progress shown."""
        return {} if self.baseline else {"show_progress": True, **self.options}

    def build(self, **extra: Any):
        """The scorer, through `build_scorer` (the one factory)."""
        from rmkit.score.factory import build_scorer

        return build_scorer(self.model, self.baseline, seed=self.seed, backend=self.backend, engine=self.engine,
                            actors=self.actors, gpus_per_actor=self.gpus_per_actor, address=self.address,
                            **{**self.model_options, **extra})


def with_flags(flags: Sequence[Flag], arg: str, value: Callable[[dict], Any], *, panel: str,
               optional: bool = False) -> Callable:
    """A decorator adding `flags` to a typer command, which receives what they say as one keyword argument
    `arg` = value({flag name: given value}). optional=True: every flag's default is None."""

    def decorate(fn: Callable) -> Callable:
        own = inspect.signature(fn)
        clash = {f.name for f in flags} & set(own.parameters)
        if clash:
            raise TypeError(f"{fn.__name__} defines scorer flags itself: {sorted(clash)}")
        added = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                   annotation=Optional[_inner(f.type)] if optional else f.type,
                                   default=typer.Option(None if optional else f.default, *f.names,
                                                        help=f.help.replace("[", "\\["),  # not rich markup
                                                        rich_help_panel=panel))
                 for f in flags]
        kept = [p for n, p in own.parameters.items() if n != arg]

        @functools.wraps(fn)
        def command(**kwargs):
            given = {f.name: kwargs.pop(f.name) for f in flags}
            return fn(**kwargs, **{arg: value(given)})

        command.__signature__ = own.replace(parameters=kept + added)
        command.__annotations__ = {**typing.get_type_hints(fn), **{p.name: p.annotation for p in added}}
        command.__annotations__.pop(arg, None)
        return command

    return decorate


def scorer_options(*, overrides: bool = False, skip: tuple[str, ...] = ()) -> Callable:
    """Add every scorer flag to a typer command, which receives them as `spec: ScorerSpec` (overrides=True:
    as `scorer_overrides: dict` of the flags given, every default None). `skip`: flags the command does not
    offer (their defaults apply)."""
    wanted = [f for f in all_flags() if f.name not in skip]
    panel = "Scorer (the same in every command)"
    if overrides:
        return with_flags(wanted, "scorer_overrides", lambda v: {k: x for k, x in v.items() if x is not None},
                          panel=panel, optional=True)
    return with_flags(wanted, "spec", ScorerSpec.from_flags, panel=panel)


JUDGE_FLAGS = (
    Flag("judge", Optional[str], None, ("--judge",), "a generative judge instead of a reward model: a chat model "
         "(path, hub id or embedded name, e.g. smollm2-135m-instruct), or with --judge-url the model the endpoint "
         "serves"),
    Flag("judge_url", Optional[str], None, ("--judge-url",), "an OpenAI-compatible endpoint (vLLM, SGLang, a "
         "hosted API; .../v1); its key from RMKIT_JUDGE_API_KEY, else OPENAI_API_KEY"),
    Flag("judge_api_key_env", Optional[str], None, ("--judge-api-key-env",), "the environment variable holding "
         "the endpoint's key"),
    Flag("judge_backend", str, "vllm", ("--judge-backend",), "a local judge's engine: vllm | hf"),
    Flag("judge_max_tokens", Optional[int], None, ("--judge-max-tokens",), "longest answer [the benchmark's "
         "official length]"),
    Flag("judge_concurrency", int, 16, ("--judge-concurrency",), "--judge-url: requests in flight"),
    Flag("judge_retries", int, 5, ("--judge-retries",), "--judge-url: tries after the first (backoff 1, 2, 4 "
         "... 30 s); a request still failing counts as an unparseable verdict"),
)


@dataclass(frozen=True)
class JudgeSpec:
    """What the judge flags said (`judge` None: no judge, the scorer flags apply)."""

    judge: str | None = None
    judge_url: str | None = None
    judge_api_key_env: str | None = None
    judge_backend: str = "vllm"
    judge_max_tokens: int | None = None
    judge_concurrency: int = 16
    judge_retries: int = 5

    def build(self, default_max_tokens: int):
        from rmkit.score.judge import build_judge

        return build_judge(self.judge, url=self.judge_url, backend=self.judge_backend,
                           max_tokens=self.judge_max_tokens or default_max_tokens, concurrency=self.judge_concurrency,
                           retries=self.judge_retries, api_key_env=self.judge_api_key_env)


def judge_options() -> Callable:
    """Add the judge flags to a typer command, which receives them as `judging: JudgeSpec`."""
    return with_flags(JUDGE_FLAGS, "judging", lambda v: JudgeSpec(**v), panel="Judge (a generative judge)")
