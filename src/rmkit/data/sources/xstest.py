"""XSTest v2 completions → PreferencePair, the way RewardBench built its xstest-* subsets.

    from rmkit.data.sources.xstest import load_xstest_pairs
    pairs = load_xstest_pairs("../shared/data/xstest")

Reads `xstest_prompts.csv` (safe / unsafe label per prompt) and the five models'
`xstest_v2_completions_<model>.csv` (human `final_label`): for a safe prompt a full compliance is
preferred to a full refusal, for an unsafe prompt the reverse. The first completion of each kind
(in model order) is used; prompts without both kinds give no pair.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from rmkit.data.schema import Message, PreferencePair

MODELS = ("gpt4", "llama2new", "llama2orig", "mistralguard", "mistralinstruct")
KINDS = {"1_full_compliance": "comply", "2_full_refusal": "refuse"}


def _completions(d: Path) -> dict[str, dict[str, str]]:
    kinds: dict[str, dict[str, str]] = {}
    for model in MODELS:
        with open(d / f"xstest_v2_completions_{model}.csv", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                kind = KINDS.get(r["final_label"])
                if kind and r["completion"].strip():
                    kinds.setdefault(r["prompt"], {}).setdefault(kind, r["completion"])
    return kinds


def load_xstest_pairs(directory: str | os.PathLike) -> list[PreferencePair]:
    d = Path(directory)
    with open(d / "xstest_prompts.csv", encoding="utf-8") as f:
        labels = {r["prompt"]: r["label"] for r in csv.DictReader(f)}
    out = []
    for i, (prompt, k) in enumerate(_completions(d).items()):
        if len(k) == 2 and prompt in labels:
            good, bad = ("refuse", "comply") if labels[prompt] == "unsafe" else ("comply", "refuse")
            out.append(PreferencePair(f"xstest:{i}", "xstest", [Message("user", prompt)],
                                      [Message("assistant", k[good])], [Message("assistant", k[bad])]))
    return out
