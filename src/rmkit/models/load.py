"""Load a reward model + tokenizer ready for scoring: `load_reward_model(name_or_path, ...)`.

    model, tok = load_reward_model("Skywork/Skywork-Reward-Llama-3.1-8B-v0.2", dtype="bfloat16")
    model, tok = load_reward_model("smollm2-135m")      # the embedded default (prepared on first use)

Rules (each tested): num_labels must be 1; Gemma-2 never runs on SDPA (eager, or flash_attention_2
when installed on a GPU); weights from safetensors only; no trust_remote_code unless asked; a pad
token is set for batching only (rmkit pools from the attention mask, never from the pad id).
"""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

log = logging.getLogger("rmkit")

DTYPES = ("float32", "bfloat16", "float16", "auto")
NO_SDPA = {"gemma2"}  # logit soft-capping is lost under SDPA


def resolve_device(device: str | None) -> str:
    """"auto": this process's GPU (cuda:LOCAL_RANK under torchrun / accelerate / TRL on several GPUs, so
    that each rank keeps its reward model beside its policy), else the CPU."""
    import torch

    if device in (None, "auto"):
        if not torch.cuda.is_available():
            return "cpu"
        rank = os.environ.get("LOCAL_RANK")
        if rank is None or not rank.strip().isdigit():
            return "cuda"
        return f"cuda:{int(rank) % max(1, torch.cuda.device_count())}"
    return device


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype == "auto":  # measured: bf16 on a CPU whose bf16 matmul beats fp32, fp32 elsewhere
        from rmkit.models.precision import auto_dtype

        return auto_dtype(device)
    return getattr(torch, dtype)


def choose_attention(model_type: str, requested: str | None, device: str) -> str | None:
    """The attention implementation to load with; refuses SDPA for models that must not use it."""
    if model_type in NO_SDPA:
        if requested == "sdpa":
            raise ValueError(f"{model_type} must not run on SDPA (its attention logit soft-capping is "
                             "lost); use attn_implementation='eager' or 'flash_attention_2'")
        if requested:
            return requested
        flash = importlib.util.find_spec("flash_attn") is not None and device.startswith("cuda")
        return "flash_attention_2" if flash else "eager"
    return requested


def resolve_name(name_or_path: str | os.PathLike) -> str:
    """Local paths stay (a part written by `rmkit models export` is built onto its backbone once); embedded
    names ("smollm2-135m") are prepared on first use; else a hub id."""
    from rmkit.models import embedded, trained

    if Path(name_or_path).exists():
        return str(trained.build_path(name_or_path)) if trained.is_part(name_or_path) else str(name_or_path)
    if str(name_or_path) in embedded.known():
        return str(embedded.prepare(str(name_or_path)))
    return str(name_or_path)


def check_config(config, name: str) -> None:
    num_labels = getattr(config, "num_labels", None)
    if num_labels != 1:
        raise ValueError(f"{name}: a reward model has one output (num_labels=1); this checkpoint has "
                         f"num_labels={num_labels}. Train or convert it to a single-logit head first.")


def load_tokenizer(path: str, *, trust_remote_code: bool = False, revision: str | None = None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
    if tok.pad_token_id is None:  # only used as a filler value: pooling reads the attention mask
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def load_reward_model(name_or_path: str | os.PathLike, *, dtype: str = "float32",
                      attn_implementation: str | None = None, device: str | None = "auto",
                      trust_remote_code: bool = False, revision: str | None = None):
    """Return (model, tokenizer), the model in eval mode on `device`."""
    from transformers import AutoModelForSequenceClassification

    model, tok = _load(AutoModelForSequenceClassification, name_or_path, dtype, attn_implementation, device,
                       trust_remote_code, revision, check=check_config)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if getattr(model.config, "rmkit_untrained_head", False):
        log.warning("%s has an UNTRAINED score head (random init): its rewards carry no preference "
                    "signal until it is trained", name_or_path)
    return model, tok


def load_causal_lm(name_or_path: str | os.PathLike, *, dtype: str = "float32",
                   attn_implementation: str | None = None, device: str | None = "auto",
                   trust_remote_code: bool = False, revision: str | None = None):
    """(model, tokenizer) of a causal LM (a DPO policy or its reference), loaded as a reward model is."""
    from transformers import AutoModelForCausalLM

    return _load(AutoModelForCausalLM, name_or_path, dtype, attn_implementation, device, trust_remote_code,
                 revision)


def _load(auto_class, name_or_path, dtype, attn_implementation, device, trust_remote_code, revision, check=None):
    """`auto_class.from_pretrained` of a local folder, embedded name or hub id, safetensors only, with the
    attention implementation `choose_attention` allows; in eval mode on the device, with its tokenizer."""
    from transformers import AutoConfig

    path = resolve_name(name_or_path)
    device = resolve_device(device)
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
    if check is not None:
        check(config, str(name_or_path))
    attn = choose_attention(getattr(config, "model_type", ""), attn_implementation, device)
    model = auto_class.from_pretrained(path, dtype=resolve_dtype(dtype, device), attn_implementation=attn,
                                       use_safetensors=True, trust_remote_code=trust_remote_code, revision=revision)
    tok = load_tokenizer(path, trust_remote_code=trust_remote_code, revision=revision)
    return model.to(device).eval(), tok
