"""RM-Bench with its official 3×3 scoring: `rmkit eval rmbench --model M --output results.json`.

    from rmkit.evaluate.rmbench import load_rmbench, evaluate_rmbench
    items = load_rmbench()                        # hub `THU-KEG/RM-Bench`, or --data total_dataset.json
    results = evaluate_rmbench(scorer, items)

Rows: `{id, prompt, chosen: [3], rejected: [3], domain}`, styles in the order concise, detailed
plain, detailed markdown. As in THU-KEG/RM-Bench `compute_accuracy`: M[i][j] = share of items where
chosen style i scores strictly above rejected style j; Hard = mean of the upper-right triangle
(chosen plainer than rejected), Normal = the diagonal, Easy = the lower-left triangle. Per domain
(chat, math, code, safety; safety-refuse and safety-response are pooled into safety, as in the
paper); domain score = mean of its 9 cells = mean(Hard, Normal, Easy); overall and the overall
Easy / Normal / Hard = plain means over domains (the leaderboard's overall: the mean of the four domains;
with one missing the results say `complete: false`). The official per-domain files
(`chat_filtered.json`, `code_filtered.json`, `math_filtered.json`, `safety-refuse_filtered.json`,
`safety-response_filtered.json`) have no `domain` field: the domain comes from the file name (or --domain),
and a folder of them is read whole. Each item's 3×3 indicator matrix is stored, and
because every number is a mean over items, intervals resample items within each domain.
"""
from __future__ import annotations

import math
import os
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rmkit.data.schema import DataError, Message, PreferencePair
from rmkit.data.sources.common import get_field
from rmkit.evaluate.common import (add_to_view, build_results, finite, new_view, read_benchmark,
                                   reply_length, scorer_name)
from rmkit.evaluate.metrics import grouped_scores

HUB_ID = "THU-KEG/RM-Bench"
SPLIT = "train"
LOCAL_FILES = ("rm-bench/total_dataset.json", "RM-Bench/total_dataset.json")
STYLES = ("concise", "detailed", "detailed_markdown")
DOMAINS = ("chat", "math", "code", "safety")
LEVELS = ("hard", "normal", "easy")


# ---- pure scoring ----

def item_matrix(chosen: Sequence[float], rejected: Sequence[float]) -> np.ndarray:
    """3×3 indicator: [i][j] = 1 if chosen style i scores strictly above rejected style j."""
    c, r = np.asarray(chosen, float), np.asarray(rejected, float)
    return (c[:, None] > r[None, :]).astype(float)


def levels(matrix: np.ndarray) -> dict[str, float]:
    """Hard (upper-right), Normal (diagonal), Easy (lower-left) accuracy of a 3×3 matrix."""
    m = np.asarray(matrix, float)
    n = m.shape[0]
    off = n * (n - 1) / 2
    return {"hard": float(np.triu(m, 1).sum() / off), "normal": float(np.diag(m).mean()),
            "easy": float(np.tril(m, -1).sum() / off)}


def domain_of(raw: str) -> str:
    return "safety" if raw.startswith("safety") else raw


# ---- loading ----

RAW_DOMAINS = ("chat", "math", "code", "safety-refuse", "safety-response")


def domain_from_name(path: str | os.PathLike) -> str | None:
    """The domain of an official per-domain file (`chat_filtered.json`, `safety-refuse_filtered.json`, ...)."""
    stem = Path(path).name.split(".")[0].lower()
    for d in sorted(RAW_DOMAINS, key=len, reverse=True):
        if stem == d or stem.startswith(d + "_") or stem.startswith(d + "-filtered"):
            return d
    return None


def parse_row(row: dict, *, file: str, index: int, domain: str | None = None) -> list[PreferencePair]:
    """One RM-Bench row → 3 PreferencePairs (one per style; chosen[i] vs rejected[i]). The row's own
    `domain` wins; a per-domain file's rows have none, and take `domain` (from the file name or --domain)."""
    where = {"file": file, "row": index}
    chosen, rejected = (get_field(row, k, where, kind=list) for k in ("chosen", "rejected"))
    for name, v in (("chosen", chosen), ("rejected", rejected)):
        if len(v) != 3 or not all(isinstance(t, str) for t in v):
            raise DataError(f"must be a list of 3 strings (concise, detailed, markdown), "
                            f"got {len(v)} entries", **where, field=name)
    prompt = [Message("user", get_field(row, "prompt", where))]
    if row.get("domain") is None and domain is None:
        raise DataError("missing: a per-domain file needs its domain from its name (chat_filtered.json, ...) "
                        "or --domain chat|math|code|safety-refuse|safety-response", **where, field="domain")
    raw_domain = get_field(row, "domain", where) if row.get("domain") is not None else domain
    meta = {"domain": domain_of(raw_domain), "raw_domain": raw_domain}
    return [PreferencePair(id=f"{row.get('id', index)}", source="rmbench", prompt=prompt,
                           chosen=[Message("assistant", c)], rejected=[Message("assistant", r)],
                           category=domain_of(raw_domain), meta={**meta, "style": s})
            for c, r, s in zip(chosen, rejected, STYLES)]


def load_rmbench(data: str | os.PathLike | None = None, subsample: int | None = None,
                 seed: int = 0, domain: str | None = None, *, errors: str = "raise",
                 skipped=None) -> list[list[PreferencePair]]:
    """Items (each a list of 3 style pairs) from a local file, a folder of the official per-domain files
    (`chat_filtered.json`, ...; the domain from each name) or the hub; `subsample` n per domain; `domain`
    names the domain of a file whose rows carry none."""
    if domain is not None and domain not in RAW_DOMAINS + ("safety",):
        raise ValueError(f"--domain must be one of {', '.join(RAW_DOMAINS)}, got {domain!r}")
    files = [data]
    if data is not None and Path(data).is_dir():
        files = sorted(f for f in Path(data).iterdir() if f.suffix in (".json", ".jsonl"))
        if not files:
            raise DataError("no RM-Bench .json / .jsonl files in this folder", file=str(data))
    items = []
    for f in files:
        dom = domain or (domain_from_name(f) if f is not None else None)
        items += read_benchmark(f, LOCAL_FILES, HUB_ID, SPLIT, partial(parse_row, domain=dom), errors, skipped)
    if subsample:
        rng = np.random.default_rng(seed)
        keep = set()
        for d in sorted({it[0].category for it in items}):
            idx = [k for k, it in enumerate(items) if it[0].category == d]
            keep.update(rng.choice(idx, size=min(subsample, len(idx)), replace=False).tolist())
        items = [it for k, it in enumerate(items) if k in keep]
    return items


# ---- evaluation ----

def score_items(items: Sequence[Sequence[PreferencePair]], chosen_rewards: Sequence[Sequence[float]],
                rejected_rewards: Sequence[Sequence[float]], *, n_boot: int = 1000,
                seed: int = 0) -> dict[str, Any]:
    """Matrices, levels and domain scores from each item's 3 chosen and 3 rejected rewards."""
    per_level: dict[str, dict[str, list[float]]] = {lv: defaultdict(list) for lv in LEVELS}
    units: dict[str, dict[str, float]] = defaultdict(dict)
    matrices: dict[str, list[np.ndarray]] = defaultdict(list)
    records, view = [], new_view()
    for k, (it, cr, rr) in enumerate(zip(items, chosen_rewards, rejected_rewards)):
        dom, m = it[0].category, item_matrix(cr, rr)
        matrices[dom].append(m)
        for lv, v in levels(m).items():
            per_level[lv][dom].append(v)
        units[dom][f"{it[0].id}#{k}"] = float(m.mean())
        cl = [reply_length(p.chosen) for p in it]
        rl = [reply_length(p.rejected) for p in it]
        records.append({"id": it[0].id, "domain": dom, "raw_domain": it[0].meta["raw_domain"],
                        "chosen_rewards": [finite(x) for x in cr],
                        "rejected_rewards": [finite(x) for x in rr], "chosen_lens": cl,
                        "rejected_lens": rl, "matrix": m.astype(int).tolist()})
        for i in range(3):
            for j in range(3):
                add_to_view(view, cr[i], rr[j], cl[i], rl[j])
    order = sorted(units, key=lambda d: (DOMAINS.index(d) if d in DOMAINS else 99, d))
    sections = {d: {d: 1.0} for d in order}
    results = build_results("rmbench", units, sections, "sections", records, view,
                            n_boot=n_boot, seed=seed)
    results["levels"], results["matrices"] = _levels_block(per_level, sections, matrices, n_boot, seed)
    results["intervals"]["matrices"] = _matrix_intervals(matrices, n_boot, seed)
    return results


def _matrix_intervals(matrices: dict[str, list[np.ndarray]], n_boot: int, seed: int) -> dict[str, list]:
    """Per domain, a [low, high] 95% interval for each of the 9 cells, resampling items."""
    rng, out = np.random.default_rng(seed), {}
    for d, ms in sorted(matrices.items()):
        stack = np.stack(ms)                                   # (items, 3, 3)
        idx = rng.integers(0, len(ms), size=(n_boot, len(ms)))
        boots = stack[idx].mean(axis=1)                        # (n_boot, 3, 3)
        lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
        out[d] = [[[float(lo[i, j]), float(hi[i, j])] for j in range(3)] for i in range(3)]
    return out


def _levels_block(per_level, sections, matrices, n_boot, seed):
    """Overall and per-domain Hard / Normal / Easy with intervals, and each domain's mean matrix."""
    out: dict[str, Any] = {"overall": {}, "domains": defaultdict(dict), "intervals": {}}
    for lv in LEVELS:
        s = grouped_scores(per_level[lv], sections, "sections", n_boot=n_boot, seed=seed)
        out["overall"][lv] = s["score"]
        out["intervals"][lv] = {"overall": s["intervals"]["score"], **s["intervals"]["sections"]}
        for d, v in s["sections"].items():
            out["domains"][d][lv] = v
    out["domains"] = dict(out["domains"])
    mats = {d: np.mean(ms, axis=0).tolist() for d, ms in matrices.items()}
    return out, mats


def evaluate_rmbench(scorer, items: Sequence[Sequence[PreferencePair]], *, n_boot: int = 1000,
                     seed: int = 0, subsample: bool = False) -> dict[str, Any]:
    """Score the 6 responses of every item in one call, then compute the official numbers."""
    convs = [c for it in items for p in it for c in (p.chosen_conversation, p.rejected_conversation)]
    flat = [float(x) if x is not None else math.nan for x in scorer.score(convs)]
    chosen = [flat[6 * k:6 * k + 6:2] for k in range(len(items))]
    rejected = [flat[6 * k + 1:6 * k + 6:2] for k in range(len(items))]
    results = score_items(items, chosen, rejected, n_boot=n_boot, seed=seed)
    results["model"] = scorer_name(scorer)
    results.update(domain_completeness(results["sections"], subsample))
    return results


def domain_completeness(sections, subsample: bool = False) -> dict[str, Any]:
    """The leaderboard's overall is the mean of the four domains: with one missing it is partial."""
    missing = [d for d in DOMAINS if d not in sections]
    return {"complete": not missing and not subsample, "missing_subsets": missing, "short_subsets": {},
            "subsample": subsample}
