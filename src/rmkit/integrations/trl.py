"""An rmkit reward model as a TRL reward function (GRPOTrainer, RLOOTrainer: anything taking `reward_funcs`).

    from rmkit.integrations.trl import reward_function
    reward = reward_function("path/to/rm", dtype="bfloat16")                 # local rmkit scorer
    reward = reward_function("http://rm-host:8000", api_key=KEY, timeout=30)  # `rmkit serve`
    trainer = GRPOTrainer(model=policy, reward_funcs=reward, args=GRPOConfig(...), train_dataset=ds)

TRL's own reward-model path (`reward_funcs="path/to/rm"`) renders every prompt + completion with
whatever template the caller's tokenizer holds, pads them and runs each one whole. Here each
conversation is rendered with the reward model's own chat template straight to ids (no double BOS),
the G completions of a prompt are scored as one group that runs the prompt once, and the reward is
pooled at the true last token: the rewards `rmkit score` gives offline, whatever the batch.

Conversational prompts (lists of messages) and plain-text prompts both work. A plain-text sample is a
user turn and an assistant turn under the reward model's template (text="chat", the default), or the
string prompt + completion tokenized as given (text="raw", TRL's behaviour for plain text).

Options: `normalize` (False | True: the mean / std `rmkit calibrate --save` stored beside the model |
a calibration.json path | (mean, std)); `on_error` ("raise", the default | a number | None: TRL then
leaves that completion out of the advantage) for samples that cannot be scored, each reported;
`name` (what TRL logs the rewards under: `rewards/<name>/mean`); remote: `api_key` (or RMKIT_API_KEY),
`timeout`, `retries`, `batch_size`; local: any RewardScorer option (dtype, device, max_length, ...).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from rmkit.integrations.rewards import (Normalizer, RewardSource, Sample, check_on_error, finish, make_normalizer,
                                        open_source)


class RewardFunction:
    """TRL's reward-function shape: `(prompts, completions, **kwargs) -> list[float | None]`, with a `__name__`."""

    def __init__(self, source: RewardSource, *, name: str = "rmkit", on_error: Any = "raise",
                 normalizer: Normalizer | None = None):
        self.source, self.__name__ = source, name
        self.on_error, self.normalizer = check_on_error(on_error), normalizer
        self.stats: Counter = Counter()
        """calls, samples, failed: what this function has seen so far."""

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        scored = self.source.score([Sample(p, c) for p, c in zip(prompts, completions)])
        self.stats.update(calls=1, samples=len(prompts), failed=len(scored.failures))
        log_metric = kwargs.get("log_metric")  # TRL >= 1.x passes one: averaged and logged per step
        if callable(log_metric):
            log_metric(f"{self.__name__}/unscored", float(len(scored.failures)))
        return finish(scored, on_error=self.on_error, normalizer=self.normalizer, name=self.__name__)


def reward_function(model_or_url: Any, *, name: str = "rmkit", text: str = "chat", normalize: Any = False,
                    on_error: Any = "raise", **options: Any) -> RewardFunction:
    """A TRL reward function over an rmkit reward model: a checkpoint path / hub id / embedded name, a
    scorer already built, or the URL of an `rmkit serve` server (see the module docstring)."""
    source, folder = open_source(model_or_url, text=text, **options)
    if normalize is True and folder is None:
        raise ValueError("normalize=True reads calibration.json beside a local model folder; for a server or a "
                         "hub id pass normalize='path/to/calibration.json' or normalize=(mean, std)")
    return RewardFunction(source, name=name, on_error=on_error, normalizer=make_normalizer(normalize, folder))
