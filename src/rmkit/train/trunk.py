"""The frozen-trunk activation store: layers below K run once per sequence, not once per epoch.

    rmkit train --config configs/train/smollm2-135m-rm.yaml          # freeze_layers: 26, trunk_cache: auto

With `freeze_layers: K` the embeddings and layers 0..K-1 never change, so their output, the hidden state
entering layer K, is the same every epoch. `TrunkStore.build` computes it once for every training and
evaluation group (the prompt once per group: the rows are prefix-shared, `rmkit.models.groups`) into a
memory-mapped file under the output folder, beside its index; each training step then reads its groups'
states and runs only layers K and up, the final norm and the score head (`TrunkRunner`).

The store is keyed (folder name) by a hash of the frozen weights, the encoded data, K, max_length, the
chat template and the store dtype: a changed run builds a new store, an unchanged one (a resume, a second
session) reuses it. The build is resumable chunk by chunk (a kill loses at most the chunk in flight),
prints its disk size first and refuses to start without the room. Stored in bfloat16 it takes half the disk
of fp32 and the states are rounded to 8 bits of mantissa (the rewards of an untrained SmolLM2-135M head moved
by at most ~0.016); `trunk_dtype: model` stores the exact states.

Runs in one process (the top layers are called directly, outside a DDP wrapper): more processes are refused.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import torch

from rmkit.data.io import write_json_atomic
from rmkit.models.group_attention import ONE_ROW, layered, per_group, row_tokens_for, run_layers  # noqa: F401 (run_layers: re-exported)
from rmkit.models.groups import Group, pack_groups, split_group
from rmkit.train.collate import edge_index
from rmkit.train.model import decoder, fp32_linear, head_linear

log = logging.getLogger("rmkit")
NUMPY = {torch.bfloat16: np.int16, torch.float16: np.float16, torch.float32: np.float32}
CHUNK_GROUPS = 32
"""Groups per resumable chunk of the build (in build order: longest first)."""
BUILD_TOKENS = 16384
"""Padded tokens per forward of the build (rows x width): a chunk of long groups runs in several forwards."""
LAYOUT = "by-length-1"
"""How the build lays groups out (in the store's key: a store built in another order is not resumed)."""
TESTED = ("llama", "qwen2", "qwen3", "gemma2")
"""Model types whose layers `run_layers` drives exactly (tested); others get a clear error, not a guess."""


def frozen_fingerprint(stack, k: int) -> str:
    """sha256 over the frozen weights (embeddings and layers below k), in order."""
    h = hashlib.sha256()
    for module in (stack.embed_tokens, *stack.layers[:k]):
        for name, t in module.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(groups: Sequence[Group]) -> str:
    h = hashlib.sha256()
    for g in groups:
        h.update(np.asarray(g.prefix, dtype=np.int64).tobytes() + b"|")
        for s in g.suffixes:
            h.update(np.asarray(s, dtype=np.int64).tobytes() + b",")
        h.update(b";")
    return h.hexdigest()


@dataclass
class TrunkStore:
    """Hidden states entering layer `k` for `groups`, token by token in shared layout, memory-mapped."""
    folder: Path
    groups: list[Group]
    offsets: np.ndarray
    hidden: int
    dtype: torch.dtype
    states: np.ndarray | None = None

    @property
    def tokens(self) -> int:
        return int(self.offsets[-1])

    @property
    def nbytes(self) -> int:
        return self.tokens * self.hidden * torch.finfo(self.dtype).bits // 8

    @classmethod
    def plan(cls, root: Path, key: str, groups: list[Group], hidden: int, dtype: torch.dtype) -> "TrunkStore":
        offsets = np.zeros(len(groups) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([g.length for g in groups])
        return cls(root / key[:16], groups, offsets, hidden, dtype)

    def read(self, i: int) -> torch.Tensor:
        """The stored states of group i: (its shared-layout tokens, hidden), in the store dtype."""
        block = torch.from_numpy(np.array(self.states[self.offsets[i]:self.offsets[i + 1]]))
        return block.view(self.dtype) if self.dtype == torch.bfloat16 else block

    def open(self, mode: str) -> None:
        self.states = np.memmap(self.folder / "states.bin", dtype=NUMPY[self.dtype], mode=mode,
                                shape=(max(self.tokens, 1), self.hidden))

    def done_chunks(self, key: str) -> int:
        index = self.folder / "index.json"
        if not index.exists():
            return 0
        meta = json.loads(index.read_text())
        return int(meta["done_chunks"]) if meta.get("key") == key else 0

    def write_index(self, key: str, done: int, total: int) -> None:
        write_json_atomic(self.folder / "index.json", {
            "key": key, "done_chunks": done, "chunks": total, "chunk_groups": CHUNK_GROUPS,
            "groups": len(self.groups), "tokens": self.tokens, "hidden": self.hidden,
            "dtype": str(self.dtype).replace("torch.", ""), "bytes": self.nbytes})


def check_room(folder: Path, nbytes: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    existing = (folder / "states.bin").stat().st_size if (folder / "states.bin").exists() else 0
    free = shutil.disk_usage(folder).free
    log.warning("trunk store %s: %.2f GB on disk (%.2f GB free)", folder, nbytes / 1e9, free / 1e9)
    if nbytes - existing > free * 0.95:
        raise OSError(f"the trunk store needs {nbytes / 1e9:.2f} GB under {folder}, only {free / 1e9:.2f} GB "
                      "free; free some space, set trunk_dir elsewhere, or use trunk_dtype=bfloat16")


def frozen_part(stack, k: int, dtype: torch.dtype) -> SimpleNamespace:
    """The embeddings and layers below k, in `dtype` (a copy where the weights are in another dtype: the
    store of an fp32 model built in bf16 compute), with the model's own rotary embedding (kept in fp32)."""
    if stack.embed_tokens.weight.dtype == dtype:
        return SimpleNamespace(embed_tokens=stack.embed_tokens, layers=stack.layers, rotary_emb=stack.rotary_emb)
    embed = copy.deepcopy(stack.embed_tokens).to(dtype)
    layers = [copy.deepcopy(stack.layers[i]).to(dtype) for i in range(k)]
    return SimpleNamespace(embed_tokens=embed, layers=layers, rotary_emb=stack.rotary_emb)


def build_order(groups: Sequence[Group]) -> list[int]:
    """The order the build runs groups in: longest first (stable), so that a chunk's groups have about the
    same length and each can take a row of its own with little padding."""
    return sorted(range(len(groups)), key=lambda i: -groups[i].length)


def sub_batches(lengths: Sequence[int], budget: int = BUILD_TOKENS) -> list[slice]:
    """Consecutive slices of a longest-first list whose (count x first length) stays within `budget`."""
    out, start = [], 0
    for i in range(1, len(lengths) + 1):
        if i == len(lengths) or (i - start + 1) * lengths[start] > budget:
            out.append(slice(start, i))
            start = i
    return out


@torch.inference_mode()
def forward_groups(part, config, groups: Sequence[Group], k: int, pad_id: int) -> list[torch.Tensor]:
    """The hidden states entering layer k of each group (its shared-layout tokens x hidden), in the dtype
    of `part`."""
    device = part.embed_tokens.weight.device
    batch = pack_groups(groups, pad_id, row_tokens=row_tokens_for(config, device))
    hidden = part.embed_tokens(batch["input_ids"].to(device))
    hidden = layered(part, config, batch, groups, hidden, range(k))
    return [hidden[r, start:end] for r, start, end in batch["spans"].tolist()]


def build_store(model, config, groups: list[Group], k: int, root: Path, key_parts: dict, dtype: torch.dtype,
                pad_id: int, show_progress: bool = True, compute: torch.dtype | None = None) -> TrunkStore:
    """Compute (or finish computing) the store of `groups`; returns it opened for reading. `compute`: the
    dtype layers 0..k-1 run in (None: the weights' own)."""
    stack = decoder(model)
    compute = compute or stack.embed_tokens.weight.dtype
    parts = {**key_parts, "weights": frozen_fingerprint(stack, k), "data": data_fingerprint(groups), "k": k,
             "dtype": str(dtype), "compute": str(compute), "layout": LAYOUT}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    store = TrunkStore.plan(root, key, groups, stack.config.hidden_size, dtype)
    order = build_order(groups)
    chunks = [order[i:i + CHUNK_GROUPS] for i in range(0, len(order), CHUNK_GROUPS)]
    done = store.done_chunks(key)
    if done < len(chunks):
        check_room(store.folder, store.nbytes)
        store.open("r+" if done else "w+")
        if not done:
            write_json_atomic(store.folder / "key.json", parts)
        _fill(store, model, config, frozen_part(stack, k, compute), chunks, done, k, key, pad_id, show_progress)
        del store.states
    else:
        log.warning("trunk store %s: reused (%d groups, %d tokens)", store.folder, len(groups), store.tokens)
    store.open("r")
    return store


def _fill(store, model, config, part, chunks, done, k, key, pad_id, show_progress) -> None:
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    bar = tqdm(total=store.tokens, initial=sum(store.groups[i].length for c in chunks[:done] for i in c),
               desc=f"trunk store (layers < {k})", unit="tok", unit_scale=True, disable=not show_progress)
    for c in range(done, len(chunks)):
        idx = chunks[c]
        for part_idx in sub_batches([store.groups[i].length for i in idx]):
            members = idx[part_idx]
            states = forward_groups(part, config, [store.groups[i] for i in members], k, pad_id)
            for gi, block in zip(members, states):
                block = block.to(store.dtype).cpu()
                raw = block.view(torch.int16) if store.dtype == torch.bfloat16 else block
                store.states[store.offsets[gi]:store.offsets[gi + 1]] = raw.numpy()
            bar.update(sum(store.groups[i].length for i in members))
        store.states.flush()
        store.write_index(key, c + 1, len(chunks))
    bar.close()
    model.train(was_training)


class TrunkRunner:
    """Training and evaluation from the store: batches carry stored states, forwards run layers K and up."""

    def __init__(self, store: TrunkStore, where: dict, k: int, model, config, compute: torch.dtype | None = None,
                 row_tokens: int = 0):
        self.store, self.where, self.k = store, where, k
        self.compute, self.row_tokens = compute, row_tokens
        self.stack, self.config = decoder(model), config
        self.head = head_linear(model)

    @staticmethod
    def unsuitable(model, processes: int, packing: str, has_head: bool) -> str | None:
        """Why a run cannot train from a store (None: it can)."""
        if processes > 1:
            return "trunk_cache runs in one process"
        if not has_head or packing != "shared":
            return "trunk_cache needs a decoder with a `score` head and packing=shared (or auto)"
        kind = getattr(model.config, "model_type", "")
        if kind not in TESTED:
            return f"trunk_cache is tested for {list(TESTED)}, not {kind!r}"
        return None

    @classmethod
    def build(cls, cfg, model, tok, items, *, processes: int, packing: str, has_head: bool,
              compute: torch.dtype | None, strict: bool = True) -> "tuple[TrunkRunner | None, dict]":
        """(the runner with its store built or reused over `items`, what it holds) for the unwrapped `model`.
        Where the run cannot use a store: an error when `strict` (trunk_cache: on), else a one-line note and
        None (trunk_cache: auto: the plain path)."""
        why = cls.unsuitable(model, processes, packing, has_head)
        if why is not None:
            if strict:
                raise ValueError(f"{why}: use trunk_cache=off (or auto, which falls back)")
            log.warning("%s: training without a store (trunk_cache: auto)", why)
            return None, {"used": False, "why": why}
        where: dict = {}
        groups = []
        for item in items:
            if item.responses not in where:
                where[item.responses] = len(groups)
                groups.append(split_group(item.responses))
        dtype = next(model.parameters()).dtype if cfg.trunk_dtype == "model" else torch.bfloat16
        compute = compute or next(model.parameters()).dtype
        root = Path(cfg.trunk_dir or Path(cfg.output_dir) / "trunk")
        parts = {"max_length": cfg.max_length, "template": tok.chat_template or ""}
        t0 = time.monotonic()
        k = cfg.trunk_layer or cfg.freeze_layers
        store = build_store(model, model.config, groups, k, root, parts, dtype, tok.pad_token_id or 0,
                            compute=compute)
        stats = {"used": True, "build_seconds": round(time.monotonic() - t0, 2), "folder": str(store.folder),
                 "groups": len(groups), "tokens": store.tokens, "bytes": store.nbytes,
                 "dtype": str(dtype).replace("torch.", ""), "compute": str(compute).replace("torch.", ""), "layer": k}
        return cls(store, where, k, model, model.config, compute, cfg.pack_row_tokens), stats

    def collate(self, items) -> dict:
        """The shared-layout batch of `items` with their stored states in `hidden` (rows, W, H)."""
        ids = [self.where[it.responses] for it in items]
        device = self.stack.embed_tokens.weight.device
        rows = ONE_ROW if per_group(self.config, device) else self.row_tokens
        batch = pack_groups([self.store.groups[i] for i in ids], 0, rows)
        batch["groups"] = [self.store.groups[i] for i in ids]
        hidden = torch.zeros((*batch["input_ids"].shape, self.store.hidden), dtype=self.store.dtype)
        for (r, start, end), gi in zip(batch["spans"].tolist(), ids):
            hidden[r, start:end] = self.store.read(gi)
        batch["hidden"] = hidden
        batch.update(edge_index(items))
        return batch

    def forward(self, batch: dict) -> torch.Tensor:
        """fp32 rewards: layers K and up (those below freeze_layers forward-only: no weight of theirs needs a
        gradient, and their input, from the store, needs none either), the final norm and the score head (in
        fp32) on the stored states. With a bf16 compute dtype over fp32 weights, the layers run under bf16
        autocast (fp32 master weights and gradients; the head stays fp32)."""
        device = self.stack.embed_tokens.weight.device
        dtype = self.stack.norm.weight.dtype
        hidden = batch["hidden"].to(device=device, dtype=dtype)
        lower = self.compute is not None and self.compute != dtype
        with torch.autocast(device_type=device.type, dtype=self.compute or dtype, enabled=lower):
            hidden = layered(self.stack, self.config, batch, batch["groups"], hidden,
                             range(self.k, len(self.stack.layers)))
            pooled = self.stack.norm(hidden)[batch["rows"].to(device), batch["cols"].to(device)]
        return fp32_linear(self.head, pooled)[:, 0]
