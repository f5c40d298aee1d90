"""An rmkit reward model as a verl custom reward function.

    # verl config (per sample, any reward manager):
    custom_reward_function.path=$(python -c 'import rmkit.integrations.verl as m; print(m.__file__)')
    custom_reward_function.name=compute_score
    +custom_reward_function.reward_kwargs.model=/path/to/rm        # or .url=http://rm-host:8000 (+ .api_key)
    # the prompt run once per group of rollouts: reward_model.reward_manager=batch, name=compute_score_batch

verl calls `compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)` per
rollout (the batch manager: `compute_score_batch(data_sources, solution_strs, ground_truths,
extra_infos)`). Neither passes the prompt, so it is read from `extra_info`: its `prompt` (the chat
messages, as in verl's datasets) or `raw_prompt`, else `question` (a string, one user turn): add it to
`extra_info` when preparing the data. The reward is the raw logit (normalised with `normalize=...`). The
scorer or client is built once per worker process and reused. A rollout that cannot be scored raises
(on_error="raise"), or gets the number given as `on_error` (logged): verl needs a number per rollout.

Serving instead: `rmkit serve` answers verl's reward-loop request (POST /classify with
{model, input, use_activation: false}, or /v1/embeddings for the SGLang engine) with the same rewards.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from rmkit.data.schema import DataError
from rmkit.integrations.rewards import Sample, check_on_error, finish, make_normalizer, open_source

PROMPT_KEYS = ("prompt", "raw_prompt", "question")
VERL_KWARGS = ("reward_router_address", "reward_model_tokenizer")
"""What verl's reward loop adds to every call; accepted and not used."""
_CACHE: dict[tuple, tuple] = {}


def prompt_of(extra_info: Any) -> Any:
    if isinstance(extra_info, Mapping):
        for key in PROMPT_KEYS:
            value = extra_info.get(key)
            if value is not None and len(value):
                return list(value) if not isinstance(value, str) else value
    raise DataError(f"extra_info holds no prompt (looked for {', '.join(PROMPT_KEYS)}): verl does not pass the "
                    "prompt to a custom reward function, so put it in extra_info when preparing the data")


def _setup(model: Any, url: str | None, options: dict) -> tuple:
    for key in VERL_KWARGS:
        options.pop(key, None)
    if (model is None) == (url is None):
        raise TypeError("give exactly one of model=<checkpoint> or url=<rmkit server> in reward_kwargs")
    on_error = check_on_error(options.pop("on_error", "raise"))
    if on_error is None:
        raise ValueError("verl needs a number for every rollout: on_error must be 'raise' or a number")
    normalize = options.pop("normalize", False)
    key = (model, url, normalize if not isinstance(normalize, (list, dict)) else str(normalize),
           tuple(sorted((k, str(v)) for k, v in options.items())))
    if key not in _CACHE:
        source, folder = open_source(url or model, **options)
        _CACHE[key] = (source, make_normalizer(normalize, folder))
    source, normalizer = _CACHE[key]
    return source, normalizer, on_error


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Sequence[Any], *, model: Any = None, url: str | None = None,
                        **options: Any) -> list[float]:
    """verl's batch reward manager: one reward per rollout; rollouts of the same prompt share its forward."""
    source, normalizer, on_error = _setup(model, url, options)
    samples = [Sample(prompt_of(info), text) for info, text in zip(extra_infos, solution_strs, strict=True)]
    return finish(source.score(samples), on_error=on_error, normalizer=normalizer, name="rmkit-verl")


def compute_score(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None, *,
                  model: Any = None, url: str | None = None, **options: Any) -> float:
    """verl's per-rollout custom reward function: the raw (or normalised) reward of prompt + solution_str."""
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info], model=model, url=url,
                               **options)[0]
