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
from typing import Any, Callable, Optional

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
    return ENGINE_FLAGS + config_flags() + VLLM_FLAGS


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


def scorer_options(*, overrides: bool = False, skip: tuple[str, ...] = ()) -> Callable:
    """Add every scorer flag to a typer command, which receives them as `spec: ScorerSpec` (overrides=True:
    as `scorer_overrides: dict` of the flags given, every default None). `skip`: flags the command does not
    offer (their defaults apply)."""

    def decorate(fn: Callable) -> Callable:
        own = inspect.signature(fn)
        wanted = [f for f in all_flags() if f.name not in skip]
        clash = {f.name for f in wanted} & set(own.parameters)
        if clash:
            raise TypeError(f"{fn.__name__} defines scorer flags itself: {sorted(clash)}")
        added = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                   annotation=Optional[_inner(f.type)] if overrides else f.type,
                                   default=typer.Option(None if overrides else f.default, *f.names,
                                                        help=f.help.replace("[", "\\["),  # not rich markup
                                                        rich_help_panel="Scorer (the same in every command)"))
                 for f in wanted]
        kept = [p for n, p in own.parameters.items() if n not in ("spec", "scorer_overrides")]

        @functools.wraps(fn)
        def command(**kwargs):
            values = {f.name: kwargs.pop(f.name) for f in wanted}
            if overrides:
                return fn(**kwargs, scorer_overrides={k: v for k, v in values.items() if v is not None})
            return fn(**kwargs, spec=ScorerSpec.from_flags(values))

        command.__signature__ = own.replace(parameters=kept + added)
        command.__annotations__ = {**typing.get_type_hints(fn), **{p.name: p.annotation for p in added}}
        for name in ("spec", "scorer_overrides"):
            command.__annotations__.pop(name, None)
        return command

    return decorate
