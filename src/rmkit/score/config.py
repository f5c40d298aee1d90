"""The scorer options, the one list (`ScorerConfig`): `build_scorer(**options)` takes them, and every CLI's
scorer flags are generated from them (`rmkit.score.options`). The vLLM backend's own list is
`rmkit.score.vllm_scorer.VLLMConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

POLICIES = ("error", "skip", "truncate")


def option(default: Any, help: str, *, cli: Any = ..., flag: bool = True):
    """A scorer option: its default, the one line of help every CLI shows, and the CLI's default where it
    differs (`cli`). flag=False: an option of the Python API only. `rmkit.score.options` makes the flags."""
    return field(default=default, metadata={"help": help, "cli": default if cli is ... else cli, "flag": flag})


@dataclass
class ScorerConfig:
    """The scorer options, the one list: `build_scorer(**options)` takes them and every CLI's scorer flags
    are generated from them (`rmkit.score.options`). Prefix sharing ("auto") applies wherever the model
    allows it: a decoder with a `score` head, pooling "last", not flash_attention_2."""

    dtype: str = option("float32", "auto (bf16 where this CPU's bf16 matmul is measured faster, else fp32; bf16 "
                        "on CUDA) | float32 (exact reproduction) | bfloat16 | float16", cli="auto")
    attn_implementation: str | None = option(None, "the model's attention (default: its own; Gemma-2 is forced "
                                             "off SDPA to eager or flash_attention_2)")
    max_length: int | None = option(None, "longest sequence scored, in tokens [the model's limit]")
    truncation: str = option("error", "over-long input: error | skip (reward NaN / null, counted) | truncate "
                             "(the prompt cut from the left)")
    batch_tokens: int = option(8192, "padded tokens per forward (vllm: tokens per engine step)")
    max_batch_size: int = option(64, "conversations per forward (vllm: max_num_seqs) [64; vllm: its own]",
                                 cli=None)
    device: str | None = option("auto", "auto | cpu | cuda | cuda:N")
    pooling: str = option("last", "last (the last real token, from the attention mask) | hf (transformers' "
                          "rightmost-non-pad-id rule)")
    padding_side: str = option("right", "right | left", flag=False)
    trust_remote_code: bool = option(False, "run the checkpoint's own modelling code")
    show_progress: bool = option(False, "a progress bar per scoring call", cli=True, flag=False)
    sharing: str = option("auto", "prefix sharing: auto (conversations with the same context run it once; "
                          "exact, padding-free) | off")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "ScorerConfig":
        """The config of keyword options, a name it does not have refused (TypeError) with the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise TypeError(f"unknown scorer options {sorted(unknown)}; known: {sorted(known)}")
        return cls(**options)

    def __post_init__(self):
        if self.truncation not in POLICIES:
            raise ValueError(f"truncation must be one of {POLICIES}, got {self.truncation!r}")
        if self.pooling not in ("last", "hf"):
            raise ValueError("pooling must be 'last' or 'hf'")
        if self.padding_side not in ("left", "right"):
            raise ValueError("padding_side must be 'left' or 'right'")
        if self.sharing not in ("auto", "off"):
            raise ValueError("sharing must be 'auto' or 'off'")
        if self.batch_tokens <= 0 or self.max_batch_size <= 0:
            raise ValueError("batch_tokens and max_batch_size must be positive")
