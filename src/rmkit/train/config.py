"""TrainConfig: every knob of `rmkit train`, documented where declared and checked in __post_init__.

    from rmkit.train.config import load_config
    cfg = load_config("configs/train/smollm2-135m-demo.yaml", ["max_steps=20", "lora_r=8"])

YAML files hold the fields below; `key=value` overrides are parsed as YAML scalars (so `lr=1e-4`,
`lora_r=0`, `data=[a.jsonl,b.jsonl]` work). `no`/`off`/`yes`/`on` stay the words typed where the field is a
string (`mixed_precision=no`) and are booleans where it is a bool (`gradient_checkpointing=yes`).
Unknown keys are an error, naming the known ones.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rmkit.data.schema import ERRORS
from rmkit.yaml_config import load_yaml, typed

POLICIES = ("error", "skip", "truncate")
SCHEDULERS = ("cosine", "constant", "linear")
PRECISIONS = ("no", "bf16", "fp16", "auto")
PACKING = ("auto", "shared", "on", "off")
PAIR_MODES = ("pairs", "all")
TRUNK_CACHE = ("auto", "on", "off")
TRUNK_DTYPES = ("bfloat16", "model")


@dataclass
class TrainConfig:
    # ---- model ---------------------------------------------------------------------------------
    model: str = "smollm2-135m"
    """Base: a local path, a hub id, or an embedded name ("smollm2-135m"). A causal LM gets a new score head."""
    attn_implementation: str | None = None
    """None = the model's default (Gemma-2: eager, or flash_attention_2 where installed; never SDPA)."""
    dtype: str = "float32"
    """Weights dtype at load ("float32", "bfloat16"): keep float32 master weights with mixed_precision=bf16
    on one device; bfloat16 for large models under FSDP / DeepSpeed."""
    head_init_std: float | None = None
    """Re-initialise the score head N(0, std) with `seed` (None: keep the checkpoint's, or transformers' init)."""
    trust_remote_code: bool = False
    # ---- data ----------------------------------------------------------------------------------
    data: list[str] = field(default_factory=list)
    """Training sources: files or hub ids, any format `rmkit.data.load_pairs` reads; $VARS are expanded."""
    data_format: str = "auto"
    data_errors: str = "skip"
    """"raise" stops at the first malformed row; "skip" counts and goes on."""
    eval_data: list[str] = field(default_factory=list)
    """Held-out sources. Empty: hold out `eval_size` pairs of `data` (whole prompts, seeded)."""
    eval_size: int = 0
    max_train_pairs: int | None = None
    """Use at most this many training pairs (after the held-out split and the length policy; seeded)."""
    rewardbench_eval: int = 0
    """Also evaluate on a stratified RewardBench v1 subsample of this many pairs (0 = off)."""
    margin_key: str | None = None
    """pair.meta key holding a per-pair margin for the loss (e.g. a score difference); None = no margin."""
    # ---- sequence policy -----------------------------------------------------------------------
    max_length: int = 1024
    truncation: str = "truncate"
    """Over-long pairs, as the scorer: "error" | "skip" (counted) | "truncate" (prompt cut from the left,
    the same cut on both sides). A pair whose two sides become identical is always skipped."""
    packing: str = "auto"
    """"shared": each prompt runs once for all its responses (prefix-shared rows with a 4D mask; exact,
    and padding-free); "on" packs every sequence alone into rows of one flat stream with per-sequence
    position ids; "off" pads; "auto" = shared where the model can take the mask (a `score` head, SDPA or
    eager), else on (flash_attention_2 cannot take a custom mask). Rows hold `pack_row_tokens` tokens
    (0 = the longest group / sequence in the micro-batch; one row for flash_attention_2)."""
    pack_row_tokens: int = 0
    pair_mode: str = "pairs"
    """"pairs": every pair is its own item; "all": the pairs of one prompt become one group of its distinct
    responses (each pair a Bradley-Terry term), and rows with k scored responses (Magpie `responses` +
    `rewards_armorm`, or BestOfN `completions` + `scores`) train on all their ordered pairs. The loss is the
    mean over the micro-batch's pairs; `batch_size` then counts groups."""
    group_by_length: bool = True
    """Batch pairs of similar length together (within shuffled chunks of 64 micro-batches)."""
    oversample: dict[str, int] = field(default_factory=dict)
    """Times a source's pairs appear in every epoch: {"ultrafeedback": 3} (a key matches a pair's `source`
    exactly or up to a "/": "hh-rlhf" covers "hh-rlhf/harmless-base"; 0 leaves a source out; others once).
    The plan repeats pair indices, so the encoded data and the trunk store are unchanged; an epoch is then
    the sum of the repeats, and `num_epochs` counts such epochs."""
    # ---- optimisation --------------------------------------------------------------------------
    batch_size: int = 4
    """Pairs per micro-batch per process (chosen + rejected = 2x sequences in one forward)."""
    grad_accum: int = 1
    num_epochs: float = 1.0
    max_steps: int | None = None
    """Optimizer steps; None = num_epochs over the data."""
    max_minutes: float | None = None
    """Wall-clock budget of this invocation's training loop; when it runs out a checkpoint is written, the
    model exported as it is, and `--resume` goes on (with a fresh budget)."""
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0
    lr_scheduler: str = "cosine"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    center_rewards_coefficient: float = 0.0
    """Adds coef * mean((r_c + r_r)^2) (Eisenstein et al. 2023; TRL suggests 0.01)."""
    mixed_precision: str = "no"
    """"bf16" (autocast; fp32 master weights), "fp16" (GPU), "no" (fp32), "auto": bf16 where this machine's
    bf16 matmul is measured faster than fp32 (`rmkit.models.precision`; CUDA: bf16), else "no". The trunk
    store is built in the same compute dtype; the reward head and the loss stay fp32."""
    gradient_checkpointing: bool = False
    seed: int = 0
    # ---- frozen trunk ---------------------------------------------------------------------------
    freeze_layers: int = 0
    """Freeze the embeddings and decoder layers below K (0 = train everything); LoRA goes on layers K and up."""
    trunk_cache: str = "auto"
    """With freeze_layers > 0: "on" computes the hidden states entering layer K once for every training
    and evaluation sequence (the prompt once per group) into a memory-mapped store, and every step runs
    only layers K and up from it (an error where the run cannot: several processes, no `score` head,
    packing other than shared, an untested model type); "auto" does the same where the run can, else
    notes why in one line and trains without; "off" recomputes the frozen layers every step."""
    trunk_dtype: str = "bfloat16"
    """Store dtype: "bfloat16" (half the disk of fp32; rewards move by ~1e-2, see the README) or "model"
    (the model's dtype: the exact states)."""
    trunk_layer: int | None = None
    """The layer whose input the store holds (None = freeze_layers). Lower than freeze_layers, the frozen
    layers between run forward-only every step: one store serves runs that train the top 4 or the top 2
    layers, so the depth can be chosen on validation without a second store."""
    trunk_dir: str | None = None
    """Where the store lives (None = output_dir/trunk; "$RMKIT_CACHE/..." keeps it across checkouts). It is keyed by the frozen weights, the data, K,
    max_length, the template and the dtype, so a changed run builds a new one beside it."""
    # ---- LoRA ----------------------------------------------------------------------------------
    lora_r: int = 0
    """0 = full fine-tuning; > 0 = LoRA of this rank, the score head trained and saved in full."""
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | str = "all-linear"
    # ---- bookkeeping ---------------------------------------------------------------------------
    output_dir: str = "runs/rm"
    logging_steps: int = 1
    eval_steps: int = 0
    """Evaluate every N optimizer steps (0 = only at the end)."""
    eval_batch_size: int = 8
    save_steps: int = 0
    """Checkpoint (model + optimizer + scheduler + RNG + data position) every N steps; 0 = off."""
    save_total_limit: int = 2
    save_best: bool = False
    """Export the model to output_dir/best at every evaluation (periodic or final) whose held-out accuracy
    beats every earlier one: early stopping on the validation data without keeping every checkpoint."""
    average_last: int = 0
    """At the end, also evaluate the mean of the trained weights over the final model and the checkpoints of
    the last `average_last - 1` evaluations before it (0 or 1: off; it needs save_steps dividing eval_steps
    and save_total_limit large enough to keep them); with save_best it becomes output_dir/best when its
    held-out accuracy beats every evaluation of the run. `--resume average_last=K` on a finished run adds it."""
    final_eval: bool = True
    n_boot: int = 1000

    def __post_init__(self):
        self.data = [expand(d) for d in _as_list(self.data)]  # ${RMKIT_DATA_DIR}/...
        self.eval_data = [expand(d) for d in _as_list(self.eval_data)]
        self.model, self.output_dir = expand(self.model), expand(self.output_dir)
        self.trunk_dir = expand(self.trunk_dir) if self.trunk_dir else self.trunk_dir
        self.adam_betas = tuple(self.adam_betas)
        _one_of("truncation", self.truncation, POLICIES)
        _one_of("lr_scheduler", self.lr_scheduler, SCHEDULERS)
        _one_of("mixed_precision", self.mixed_precision, PRECISIONS)
        _one_of("packing", self.packing, PACKING)
        _one_of("pair_mode", self.pair_mode, PAIR_MODES)
        _one_of("trunk_cache", self.trunk_cache, TRUNK_CACHE)
        _one_of("trunk_dtype", self.trunk_dtype, TRUNK_DTYPES)
        _one_of("dtype", self.dtype, ("float32", "bfloat16", "float16"))
        _one_of("data_errors", self.data_errors, ERRORS)
        for name in ("batch_size", "grad_accum", "max_length", "eval_batch_size", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_size", "rewardbench_eval", "eval_steps", "save_steps", "warmup_steps",
                     "lora_r", "pack_row_tokens", "freeze_layers", "average_last"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not isinstance(self.oversample, dict) or any(
                not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int) or v < 0
                for k, v in self.oversample.items()):
            raise ValueError(f"oversample must map sources to whole numbers >= 0, got {self.oversample!r}")
        if self.trunk_layer is not None and not 0 < self.trunk_layer <= self.freeze_layers:
            raise ValueError(f"trunk_layer must be in 1..freeze_layers ({self.freeze_layers}), got {self.trunk_layer}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1 (or null for num_epochs)")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("warmup_ratio must be in [0, 1)")
        if self.learning_rate <= 0 or self.num_epochs <= 0:
            raise ValueError("learning_rate and num_epochs must be positive")
        if self.center_rewards_coefficient < 0:
            raise ValueError("center_rewards_coefficient must be >= 0")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError("max_minutes must be positive")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value]


def expand(path: str) -> str:
    """$VARS expanded; ${RMKIT_CACHE} is rmkit's cache even when the variable is unset (~/.cache/rmkit),
    so a recipe can keep its runs outside the checkout: a fresh checkout on the same machine resumes them."""
    from rmkit.models.paths import cache_dir

    path = str(path).replace("${RMKIT_CACHE}", str(cache_dir())).replace("$RMKIT_CACHE", str(cache_dir()))
    return os.path.expandvars(path)


def _one_of(name: str, value, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """["lr=1e-4", "data=[a,b]"] → {"lr": 0.0001, "data": ["a", "b"]} (values read as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not key=value")
        out[key.strip()] = load_yaml(value) if value.strip() else None
    return out


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; known: {sorted(known)}")
    hints = typing.get_type_hints(TrainConfig)
    return TrainConfig(**{k: _coerce(typed(v, hints[k], k), hints[k], k) for k, v in values.items()})


def _coerce(value, tp, name: str):
    """YAML 1.1 reads 1e-4 as a string: cast it by the field's declared number type (no/off/yes/on were
    already typed by `typed`: the words for a str field, booleans for a bool one)."""
    arms = typing.get_args(tp) or (tp,)
    if isinstance(value, str) and str not in arms and (float in arms or int in arms):
        try:
            return float(value) if float in arms else int(value)
        except ValueError:
            raise ValueError(f"{name}: expected a number, got {value!r}") from None
    return value


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML recipe (or start from the defaults) and apply key=value overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        loaded = load_yaml(Path(path).read_text(encoding="utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: a training config must be a YAML mapping")
        values.update(loaded or {})
    values.update(parse_overrides(overrides))
    return config_from_dict(values)
