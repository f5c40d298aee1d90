"""An rmkit reward model as verl's custom reward function (verl 0.9: any registered reward manager).

    # verl 0.9 reads the function only under `reward.` (verl/trainer/ppo/reward.py:get_custom_reward_fn):
    reward.custom_reward_function.path=$(python -c 'import rmkit.integrations.verl as m; print(m.__file__)')
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.model=/path/to/rm     # or .url=http://rm-host:8000 (+ .api_key)

The top-level `custom_reward_function.*` keys of older verl are ignored by 0.9's `main_ppo`, which then
falls back to its rule rewards for known data sources without an error: use the keys above.

verl's reward manager (naive, dapo, ...) calls `compute_score(data_source=, solution_str=, ground_truth=,
extra_info=, **reward_kwargs)` by keyword, one rollout per call, from a thread pool. `solution_str` is the
response alone, so the prompt is read from `extra_info`: its `prompt` (chat messages, as in verl's
datasets) or `raw_prompt`, else `question` (a string: one user turn, or text in a chat template, which is
read back into messages). One scorer or client is built per process (under a lock), and the calls that
arrive together are scored as one batch (`Coalescer`): a prompt's rollouts run it once, or ride in one
HTTP request to `rmkit serve`.

The answer is `{"score": reward, "rmkit_raw": raw logit, "rmkit_unscored": 0.0 | 1.0}`: verl logs each key
(a bare float would be logged as `acc`). `score` is the raw reward, or normalised with `normalize=...`. A
rollout that cannot be scored raises (on_error="raise", the default) or gets the number given as
`on_error` (logged and flagged in `rmkit_unscored`): verl needs a number for every rollout.
"""
from __future__ import annotations

import math
import threading
from typing import Any, Mapping

from rmkit.data.schema import DataError
from rmkit.integrations.coalesce import Coalescer
from rmkit.integrations.rewards import Sample, Scored, check_on_error, finish, make_normalizer
from rmkit.integrations.sources import open_source

PROMPT_KEYS = ("prompt", "raw_prompt", "question")
VERL_KWARGS = ("reward_router_address", "reward_model_tokenizer")
"""What verl's reward manager adds when it runs a reward model of its own; accepted and not used."""
_LOCK = threading.Lock()
_CACHE: dict[tuple, tuple] = {}


def prompt_of(extra_info: Any) -> Any:
    if isinstance(extra_info, Mapping):
        for key in PROMPT_KEYS:
            value = extra_info.get(key)
            if value is not None and len(value):
                return list(value) if not isinstance(value, str) else value
    raise DataError(f"extra_info holds no prompt (looked for {', '.join(PROMPT_KEYS)}): verl does not pass the "
                    "prompt to a custom reward function, so put it in extra_info when preparing the data")


def sample_of(prompt: Any, solution: str) -> Sample:
    """A sample from verl's prompt and response; a prompt string in a known chat template (ending with the
    assistant's generation header) is read back into messages with the response as the reply."""
    from rmkit.models.chat_parse import ParseError, detect_family, parse_rendered

    if isinstance(prompt, str) and detect_family(prompt) is not None:
        try:
            messages = parse_rendered(prompt + solution)
        except ParseError as e:
            raise DataError(f"the prompt in extra_info is chat-template text rmkit cannot read: {e}") from e
        return Sample([m.to_dict() for m in messages[:-1]], [messages[-1].to_dict()])
    return Sample(prompt, solution)


def _setup(model: Any, url: str | None, options: dict) -> tuple[Coalescer, Any, Any]:
    """(the process's coalescer over its scorer or client, normaliser, on_error), built once per config."""
    for key in VERL_KWARGS:
        options.pop(key, None)
    if (model is None) == (url is None):
        raise TypeError("give exactly one of model=<checkpoint> or url=<rmkit server> in reward_kwargs")
    on_error = check_on_error(options.pop("on_error", "raise"))
    if on_error is None:
        raise ValueError("verl needs a number for every rollout: on_error must be 'raise' or a number")
    normalize = options.pop("normalize", False)
    window_s = float(options.pop("batch_window_ms", 5.0)) / 1000
    key = (model, url, str(normalize), window_s, tuple(sorted((k, str(v)) for k, v in options.items())))
    with _LOCK:  # verl's threads arrive together: one model per process, never one per thread
        if key not in _CACHE:
            source, folder = open_source(url or model, **options)
            _CACHE[key] = (Coalescer(source, window_s=window_s), make_normalizer(normalize, folder))
    gather, normalizer = _CACHE[key]
    return gather, normalizer, on_error


def compute_score(data_source: Any = None, solution_str: str | None = None, ground_truth: Any = None,
                  extra_info: Any = None, *, model: Any = None, url: str | None = None,
                  **options: Any) -> dict[str, float]:
    """verl's custom reward function: {"score", "rmkit_raw", "rmkit_unscored"} for prompt + solution_str."""
    gather, normalizer, on_error = _setup(model, url, options)
    try:
        sample = sample_of(prompt_of(extra_info), solution_str if solution_str is not None else "")
    except DataError as e:
        raw, failure = math.nan, f"DataError: {e}"
    else:
        raw, failure = gather.score(sample)
    failures = {} if failure is None else {0: failure}
    [score] = finish(Scored([raw], failures), on_error=on_error, normalizer=normalizer, name="rmkit-verl")
    return {"score": float(score), "rmkit_raw": float(score if failures else raw),
            "rmkit_unscored": float(bool(failures))}
