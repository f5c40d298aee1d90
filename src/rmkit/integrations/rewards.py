"""Samples (a prompt and one completion) to raw rewards, for RL loops: locally through an rmkit scorer,
with each prompt's completions scored as one prefix-shared group, and the failure and normalisation
rules every adapter (TRL, verl) shares.

    source = LocalSource(RewardScorer.from_pretrained("path/to/rm"))     # or client.RemoteSource(url)
    scored = source.score([Sample(prompt, completion) for ...])         # Scored(rewards, failures)
    rewards = finish(scored, on_error="raise", normalizer=None, name="rmkit")

A sample that cannot be scored (over-long under truncation="skip", a role the chat template refuses, a
server that answers 422 for it or never answers) is never a silent 0: `finish` raises `RewardError`
naming each one (on_error="raise", the default), or gives it the reward asked for (a number, or None:
TRL then leaves the completion out of the advantage), and logs every substitution.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Protocol, Sequence

from rmkit.data.schema import Conversation, DataError, to_conversation

log = logging.getLogger("rmkit")
TEXT_MODES = ("chat", "raw")
"""chat: prompt + completion rendered with the reward model's chat template (a plain-text prompt is one
user message, a plain-text completion one assistant message); raw: the string prompt + completion
tokenized as given, as TRL does for plain-text prompts."""


@dataclass(frozen=True)
class Sample:
    prompt: Any
    """A conversation (list of {role, content}) or a string."""
    completion: Any
    """The reply: a list of messages (TRL's conversational completions) or a string."""


class Scored(NamedTuple):
    rewards: list[float]
    """Raw rewards in sample order (NaN where the sample failed)."""
    failures: dict[int, str]
    """Sample index → why it could not be scored."""


class RewardSource(Protocol):
    name: str

    def score(self, samples: Sequence[Sample]) -> Scored: ...


class RewardError(RuntimeError):
    """Samples that could not be scored, each with its reason (on_error="raise")."""

    def __init__(self, name: str, failures: Mapping[int, str], total: int):
        self.failures = dict(failures)
        super().__init__(f"{name}: {len(failures)} of {total} samples could not be scored ({_listing(failures)}); "
                         "pass on_error=<reward> (or None for TRL) to train on without them")


def _listing(failures: Mapping[int, str], most: int = 5) -> str:
    items = sorted(failures.items())
    text = "; ".join(f"sample {i}: {why}" for i, why in items[:most])
    return text + (f"; and {len(items) - most} more" if len(items) > most else "")


# ---- samples → model input -----------------------------------------------------------------------
def check_text_mode(text: str) -> str:
    if text not in TEXT_MODES:
        raise ValueError(f"text must be one of {TEXT_MODES}, got {text!r}")
    return text


def conversation(sample: Sample) -> Conversation:
    """prompt + completion as one conversation (a string prompt is a user turn, a string reply an assistant turn)."""
    return (to_conversation(sample.prompt, where={"field": "prompt"})
            + to_conversation(sample.completion, default_role="assistant", where={"field": "completion"}))


def raw_text(sample: Sample) -> str:
    if not isinstance(sample.prompt, str) or not isinstance(sample.completion, str):
        raise DataError("text='raw' needs string prompts and completions; conversations take text='chat'")
    return sample.prompt + sample.completion


def prompt_key(prompt: Any) -> Any:
    if isinstance(prompt, str):
        return prompt
    return tuple(m.key() for m in to_conversation(prompt))


def prompt_groups(samples: Sequence[Sample]) -> list[list[int]]:
    """Indices of samples with the same prompt, in first-seen order: GRPO's G completions of a prompt."""
    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(samples):
        try:
            key = prompt_key(s.prompt)
        except (AttributeError, TypeError, DataError):  # malformed: it fails on its own when encoded
            key = ("unhashable", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


# ---- the local source ----------------------------------------------------------------------------
class LocalSource:
    """An rmkit scorer (hf or vLLM backend): every prompt's completions scored as one shared group."""

    def __init__(self, scorer, text: str = "chat"):
        self.scorer, self.text = scorer, check_text_mode(text)
        self.name = getattr(scorer, "name", "model")

    def _encode(self, sample: Sample) -> list[int] | None:
        if self.text == "raw":
            return self.scorer.encode_texts([raw_text(sample)])[0]
        return self.scorer.encode([conversation(sample)])[0]

    def score(self, samples: Sequence[Sample]) -> Scored:
        from jinja2.exceptions import TemplateError

        from rmkit.score.scorer import TooLongError

        seqs: list[list[int] | None] = []
        failures: dict[int, str] = {}
        for i, sample in enumerate(samples):
            try:
                ids = self._encode(sample)
            except (DataError, TooLongError, TemplateError) as e:
                ids, failures[i] = None, f"{type(e).__name__}: {e}"
            else:
                if ids is None:
                    failures[i] = f"over max_length={self.scorer.max_length} (truncation='skip')"
            seqs.append(ids)
        rewards = self.scorer.score_ids(seqs, groups=prompt_groups(samples)) if seqs else []
        for i, r in enumerate(rewards):
            if i not in failures and not math.isfinite(r):
                failures[i] = f"the model returned {r}"
        return Scored([float(r) for r in rewards], failures)


# ---- normalisation and the failure policy --------------------------------------------------------
@dataclass(frozen=True)
class Normalizer:
    """(r - mean) / std, with mean and std measured on a reference set (`rmkit calibrate --save`)."""
    mean: float
    std: float

    def __post_init__(self):
        if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
            raise ValueError(f"normalisation needs a finite mean and a positive std, got {self.mean}, {self.std}")

    def __call__(self, reward: float) -> float:
        return (reward - self.mean) / self.std


def make_normalizer(normalize: Any, model_dir: str | os.PathLike | None = None) -> Normalizer | None:
    """normalize: False/None (raw rewards) | True (calibration.json beside the local model) | a path to a
    calibration.json or its folder | (mean, std) | {"mean": m, "std": s}."""
    from rmkit.score.calibration import read_reward_stats

    if normalize is None or normalize is False:
        return None
    if normalize is True:
        if model_dir is None or not os.path.isdir(model_dir):
            raise ValueError("normalize=True reads calibration.json beside a local model folder; for a server "
                             "or a hub id give the file's path or (mean, std)")
        return Normalizer(*read_reward_stats(model_dir))
    if isinstance(normalize, (str, os.PathLike)):
        return Normalizer(*read_reward_stats(normalize))
    if isinstance(normalize, Mapping):
        return Normalizer(float(normalize["mean"]), float(normalize["std"]))
    if isinstance(normalize, Sequence) and len(normalize) == 2:
        return Normalizer(float(normalize[0]), float(normalize[1]))
    raise ValueError(f"normalize must be False, True, a path, (mean, std) or {{'mean', 'std'}}, got {normalize!r}")


def check_on_error(on_error: Any) -> Any:
    if on_error == "raise" or on_error is None:
        return on_error
    if isinstance(on_error, (int, float)) and not isinstance(on_error, bool) and math.isfinite(on_error):
        return float(on_error)
    raise ValueError(f"on_error must be 'raise', None or a finite number, got {on_error!r}")


def finish(scored: Scored, *, on_error: Any = "raise", normalizer: Normalizer | None = None,
           name: str = "rmkit") -> list[float | None]:
    """Rewards to hand back: normalised if asked; a failed sample raises or gets `on_error` (logged)."""
    rewards, failures = scored
    if failures:
        if on_error == "raise":
            raise RewardError(name, failures, len(rewards))
        log.warning("%s: %d of %d samples could not be scored and get reward %s: %s", name, len(failures),
                    len(rewards), on_error, _listing(failures))
    norm = normalizer or (lambda r: r)
    return [on_error if i in failures else norm(r) for i, r in enumerate(rewards)]
