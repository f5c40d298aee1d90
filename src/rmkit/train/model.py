"""The model side of training: a base LM as AutoModelForSequenceClassification(num_labels=1), LoRA,
rewards pooled at each sequence's last real token, and the export to a standard checkpoint.

    model, tok = load_for_training(cfg)          # + LoRA when cfg.lora_r > 0
    fwd = RewardForward(model)                   # fwd(model_or_wrapper, batch) -> fp32 rewards
    export(model, tok, "out/", card="...")       # merged safetensors + tokenizer + README.md

Rewards come from the model's own forward (so DDP / FSDP / DeepSpeed wrappers and peft see a normal
call): a hook on the `score` head keeps its per-token output, and we read it at the positions the
batch names, the last real token of each sequence, as rmkit's scorer does.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from rmkit.models.groups import attention_masks
from rmkit.models.load import check_config, choose_attention, load_tokenizer, resolve_name

log = logging.getLogger("rmkit")
FLASH = "flash_attention_2"


def load_for_training(cfg, device: str = "cpu"):
    """(model in train mode, tokenizer). A causal LM checkpoint gets a fresh one-logit score head."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = resolve_name(cfg.model)
    config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    if getattr(config, "num_labels", 1) != 1 and getattr(config, "architectures", None) and \
            any("SequenceClassification" in a for a in config.architectures):
        check_config(config, cfg.model)  # an existing classifier with a wrong head: refuse
    attn = choose_attention(getattr(config, "model_type", ""), cfg.attn_implementation, device)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=getattr(torch, cfg.dtype), attn_implementation=attn,
        use_safetensors=True, trust_remote_code=cfg.trust_remote_code)
    tok = load_tokenizer(path, trust_remote_code=cfg.trust_remote_code)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if cfg.head_init_std is not None:
        init_head(model, cfg.head_init_std, cfg.seed)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if cfg.freeze_layers:
        freeze_below(model, cfg.freeze_layers)
    if cfg.lora_r > 0:
        model = add_lora(model, cfg)
    return model.train(), tok


def decoder(model) -> torch.nn.Module:
    """The decoder stack (the module holding `embed_tokens` and `layers`) inside a seq-cls model, peft or not."""
    for _, m in model.named_modules():
        if isinstance(getattr(m, "layers", None), torch.nn.ModuleList) and hasattr(m, "embed_tokens"):
            return m
    raise ValueError(f"{type(model).__name__}: no decoder stack with embed_tokens and layers found")


def freeze_below(model, k: int) -> None:
    """Embeddings and decoder layers 0..k-1 stop training (their weights stay as loaded)."""
    stack = decoder(model)
    if not 0 < k < len(stack.layers):
        raise ValueError(f"freeze_layers={k}: the model has {len(stack.layers)} layers (need 0 < K < that)")
    for module in (stack.embed_tokens, *stack.layers[:k]):
        module.requires_grad_(False)


def init_head(model, std: float, seed: int) -> None:
    head = model.score
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * std)
        if head.bias is not None:
            head.bias.zero_()


def add_lora(model, cfg):
    from peft import LoraConfig, get_peft_model

    targets = cfg.lora_target_modules
    extra = {}
    if cfg.freeze_layers:  # LoRA only on the trained layers K and up (peft needs the module names then)
        if isinstance(targets, str):
            targets = sorted({n.split(".")[-1] for n, m in decoder(model).layers.named_modules()
                              if isinstance(m, torch.nn.Linear)})
        extra = {"layers_to_transform": list(range(cfg.freeze_layers, len(decoder(model).layers))),
                 "layers_pattern": "layers"}
    lora = LoraConfig(task_type="SEQ_CLS", r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                      lora_dropout=cfg.lora_dropout, target_modules=targets,
                      modules_to_save=["score"], **extra)
    model = get_peft_model(model, lora)
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def score_module(model) -> torch.nn.Module | None:
    """The reward head (`score`, or peft's wrapper around it): the shortest module path ending in it."""
    found = [(name, m) for name, m in model.named_modules() if name.split(".")[-1] == "score"]
    return min(found, key=lambda x: len(x[0]))[1] if found else None


def attention_of(model) -> str | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "_attn_implementation", None)


def head_linear(model) -> torch.nn.Module | None:
    """The Linear that computes rewards: `score`, or the trained copy inside peft's modules_to_save."""
    head = score_module(model)
    if head is not None and hasattr(head, "modules_to_save"):
        active = head.active_adapter
        head = head.modules_to_save[active if isinstance(active, str) else active[0]]
    return head


def fp32_linear(module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The reward head on x in fp32, outside any autocast (so bf16 mixed precision does not round rewards)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        bias = None if module.bias is None else module.bias.float()
        return F.linear(x.float(), module.weight.float(), bias)


class RewardForward:
    """Per-sequence fp32 rewards of a collated batch (padded or packed) from the model's forward.

    A forward hook on the score Linear recomputes its output in fp32 outside autocast (so bf16 mixed
    precision does not round rewards to 8 bits) and keeps it; rewards are read at `rows`, `cols`.
    """

    def __init__(self, model):
        self.config = model.config
        self.head = head_linear(model)
        self.out: torch.Tensor | None = None
        if self.head is not None:
            self.head.register_forward_hook(self._fp32_and_keep)

    def _fp32_and_keep(self, module, inputs, output):
        self.out = fp32_linear(module, inputs[0])
        return self.out

    def __call__(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        device = next(model.parameters()).device
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "position_ids")
                  if k in batch}
        if "segment" in batch:  # prefix-shared rows: the 4D mask (per layer type) from the segments
            dtype = next(model.parameters()).dtype
            inputs["attention_mask"] = attention_masks(self.config, batch, dtype=dtype, device=device)
        self.out = None
        result = model(**inputs, use_cache=False)
        if self.out is None:  # no separate per-token head (an encoder): its own pooled logits
            if "attention_mask" not in batch:
                raise ValueError("this model has no `score` head; train it with packing=off")
            return result.logits[:, 0].float()
        rows, cols = batch["rows"].to(device), batch["cols"].to(device)
        rewards = self.out[rows, cols, 0]
        self.out = None
        return rewards


def is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def merged_copy(model):
    """The model to save: LoRA merged into the weights (the peft wrapper is gone)."""
    if not is_peft(model):
        return model
    return model.merge_and_unload()


@contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temporary folder next to `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export(model, tokenizer, out_dir: str | os.PathLike, card: str, extra_files: dict | None = None,
           state_dict: dict | None = None) -> Path:
    """Write safetensors weights (LoRA merged; the adapter alone under adapter/), the tokenizer with
    its chat template, config and README.md, atomically. `state_dict`: the full weights gathered from
    a sharded (FSDP / ZeRO-3) model, when there is one."""
    with atomic_dir(out_dir) as tmp:
        if is_peft(model):
            model.save_pretrained(tmp / "adapter", safe_serialization=True)
            tokenizer.save_pretrained(tmp / "adapter")
        merged = merged_copy(model)
        if hasattr(merged.config, "rmkit_untrained_head"):
            merged.config.rmkit_untrained_head = False
        merged.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        for name, src in (extra_files or {}).items():
            if Path(src).exists():
                shutil.copy(src, tmp / name)
    return Path(out_dir)
