"""The fixed data split of rmkit's default reward model (bench/quality.py, `make demo`, `make default-rm`).

    train, held = quality_split()            # from $RMKIT_DATA_DIR (../shared/data)
    train, val = validation_split(pairs, {"hh-rlhf": 300, "ultrafeedback": 150})   # by whole prompts

The files of the default model's recipe are written by `recipes/splits.py` (pool, validation).

Held-out (600 pairs, never trained on): 300 HH-RLHF test pairs (150 harmless-base, 50 each of
helpful-base, helpful-online, helpful-rejection-sampled) and 300 UltraFeedback pairs (all usable
`eval_clean` rows, topped up from `train_clean`), drawn with a fixed seed. Training: every other
shared HH-RLHF test and UltraFeedback `train_clean` pair whose prompt is not held out. Each pair's
`source` names its sub-split ("hh-rlhf/harmless-base", "ultrafeedback"), so results break down by it.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

from rmkit.data import PreferencePair, load_pairs
from rmkit.train.data import has_text, prompt_key

HH_SPLITS = {"harmless-base": 150, "helpful-base": 50, "helpful-online": 50, "helpful-rejection-sampled": 50}
UF_HELDOUT = 300
SEED = 2024


HELDOUT_SHA256 = "0860da19121d724131d445c33f3b355f6de506de4c51fb8daa9be3a0574d69af"
"""`fingerprint(held)` of the 600 held-out pairs on the shared data: a loader change that moved the split would
change every held-out figure's meaning, so the tests pin it."""


def fingerprint(pairs) -> str:
    """sha256 over each pair's source, prompt and final replies, in order."""
    import hashlib

    def reply(p):
        return hashlib.sha256((p.chosen[-1].content + "\x1e" + p.rejected[-1].content).encode()).hexdigest()

    return hashlib.sha256("\n".join(f"{p.source}\t{prompt_key(p)}\t{reply(p)}" for p in pairs).encode()).hexdigest()


def data_dir(root: str | os.PathLike | None = None) -> Path:
    root = root or os.environ.get("RMKIT_DATA_DIR")
    if not root or not Path(root).exists():
        raise FileNotFoundError("the shared data folder is not found: set RMKIT_DATA_DIR (e.g. ../shared/data)")
    return Path(root)


def _load(path: Path, source: str) -> list[PreferencePair]:
    pairs = load_pairs(path, errors="skip")
    for p in pairs:
        p.source = source
    # pairs with an empty reply are left out, as the loaders did when this split was fixed: the held-out
    # 600 (and so every figure measured on them) stay the same pairs
    return [p for p in pairs if p.chosen != p.rejected and has_text(p.chosen) and has_text(p.rejected)]


def quality_split(root: str | os.PathLike | None = None, seed: int = SEED
                  ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(training pairs, held-out pairs), the same on every machine for the same data."""
    root = data_dir(root)
    rng = random.Random(seed)
    held: list[PreferencePair] = []
    pool: list[PreferencePair] = []
    for split, n in HH_SPLITS.items():
        pairs = _load(root / "hh-rlhf" / split / "test.jsonl.gz", f"hh-rlhf/{split}")
        idx = set(rng.sample(range(len(pairs)), n))
        held += [p for i, p in enumerate(pairs) if i in idx]
        pool += [p for i, p in enumerate(pairs) if i not in idx]
    uf_eval = _load(root / "ultrafeedback-binarized-sample" / "eval_clean.jsonl.gz", "ultrafeedback")
    uf_train = _load(root / "ultrafeedback-binarized-sample" / "train_clean.jsonl.gz", "ultrafeedback")
    top_up = set(rng.sample(range(len(uf_train)), max(0, UF_HELDOUT - len(uf_eval))))
    held += uf_eval[:UF_HELDOUT] + [p for i, p in enumerate(uf_train) if i in top_up]
    pool += [p for i, p in enumerate(uf_train) if i not in top_up]
    held_prompts = {prompt_key(p) for p in held}
    train = [p for p in pool if prompt_key(p) not in held_prompts]
    return train, held


def stratified_heldout(held: list[PreferencePair], n: int, seed: int = SEED) -> list[PreferencePair]:
    """A smaller held-out sample with half HH-RLHF and half UltraFeedback (for a quick demo)."""
    hh = [p for p in held if p.source.startswith("hh-rlhf")]
    uf = [p for p in held if not p.source.startswith("hh-rlhf")]
    rng = random.Random(seed)
    return rng.sample(hh, min(len(hh), n // 2)) + rng.sample(uf, min(len(uf), n - n // 2))


def validation_split(pairs: list[PreferencePair], per_source: dict[str, int], seed: int = SEED
                     ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, validation): for each source family (the part of `source` before "/"), hold out >= n pairs
    as whole prompt groups; families not named stay in train. A prompt never lands on both sides."""
    from rmkit.train.data import heldout_split

    train: list[PreferencePair] = []
    val: list[PreferencePair] = []
    families: dict[str, list[PreferencePair]] = {}
    for p in pairs:
        families.setdefault(p.source.split("/")[0], []).append(p)
    unknown = set(per_source) - set(families)
    if unknown:
        raise ValueError(f"--per-source names {sorted(unknown)}, not a source of the input "
                         f"(sources: {sorted(families)})")
    for fam, members in families.items():
        t, v = heldout_split(members, per_source.get(fam, 0), seed)
        train += t
        val += v
    val_keys = {prompt_key(p) for p in val}
    return [p for p in train if prompt_key(p) not in val_keys], val
