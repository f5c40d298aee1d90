"""RewardBench v1 with the official scoring: `rmkit eval rewardbench --model M --output results.json`.

    from rmkit.evaluate.rewardbench import load_rewardbench, evaluate_rewardbench
    pairs = load_rewardbench(subsample=300, seed=0)       # local copy under $RMKIT_DATA_DIR, else the hub
    results = evaluate_rewardbench(scorer, pairs)         # any Scorer: RewardScorer, LengthScorer, ...

Per-subset accuracy (a tie is wrong); sections count-weighted over subsets (math-prm weighted 984);
overall = plain mean of Chat, Chat Hard, Safety, Reasoning; 95% bootstrap intervals resample items
within each subset.
"""
from __future__ import annotations

import os
import random
from collections import defaultdict
from typing import Any, Sequence

from rmkit.data.schema import DataError, PreferencePair
from rmkit.data.sources import iter_pairs
from rmkit.data.sources import rewardbench as rb_source
from rmkit.evaluate.common import completeness, local_or_hub
from rmkit.evaluate.constants import EXAMPLE_COUNTS, FILTERED_COUNTS, SECTIONS, SUBSET_MAPPING
from rmkit.evaluate.metrics import (overall_score, pairwise_correct, section_scores,
                                    stratified_section_bootstrap)

LOCAL_FILES = ("reward-bench/filtered.jsonl.gz", "reward-bench/rewardbench_filtered.parquet")


def default_source() -> str:
    """The local copy under $RMKIT_DATA_DIR when there is one, else the hub id."""
    return local_or_hub(LOCAL_FILES, rb_source.HUB_ID)


def stratified_subsample(pairs: Sequence[PreferencePair], n: int, seed: int = 0) -> list[PreferencePair]:
    """n pairs, each subset represented in proportion to its size (largest remainders), seeded."""
    by_subset: dict[str, list[PreferencePair]] = defaultdict(list)
    for p in pairs:
        by_subset[p.category or ""].append(p)
    if n >= len(pairs):
        return list(pairs)
    quotas = {s: n * len(v) / len(pairs) for s, v in by_subset.items()}
    take = {s: int(q) for s, q in quotas.items()}
    for s in sorted(quotas, key=lambda s: (-(quotas[s] - take[s]), s))[: n - sum(take.values())]:
        take[s] += 1
    rng = random.Random(seed)
    chosen = {id(p) for s in sorted(by_subset) for p in rng.sample(by_subset[s], take[s])}
    return [p for p in pairs if id(p) in chosen]  # keep the file's order


def load_rewardbench(data: str | os.PathLike | None = None, subsample: int | None = None,
                     seed: int = 0, *, errors: str = "raise", skipped=None) -> list[PreferencePair]:
    """The filtered split (local copy or hub); errors="skip" counts unreadable rows in `skipped` (by field)."""
    source = str(data or default_source())
    pairs = list(iter_pairs(source, format="rewardbench", errors=errors, skipped=skipped))
    if not pairs:
        raise DataError("no rows", file=source)
    unknown = {p.category for p in pairs} - set(EXAMPLE_COUNTS)
    if unknown:
        raise ValueError(f"{data or default_source()}: subsets not in RewardBench v1: {sorted(unknown)}")
    return stratified_subsample(pairs, subsample, seed) if subsample else pairs


def score_results(pairs: Sequence[PreferencePair], rewards: Sequence[tuple[float, float]],
                  n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The official numbers from (chosen, rejected) rewards: subsets, sections, score, intervals, items."""
    correct = pairwise_correct([c for c, _ in rewards], [r for _, r in rewards])
    items = [{"id": p.id, "subset": p.category, "chosen_reward": c, "rejected_reward": r, "correct": ok}
             for p, (c, r), ok in zip(pairs, rewards, correct)]
    return score_credits(pairs, correct, items, n_boot=n_boot, seed=seed)


def credit_sections(pairs: Sequence[PreferencePair], credits: Sequence[float]
                    ) -> tuple[dict[str, list[float]], dict[str, float], dict[str, float]]:
    """(credits by subset, subset accuracy, the official section scores): the headline without intervals."""
    by_subset: dict[str, list[float]] = defaultdict(list)
    for p, ok in zip(pairs, credits):
        by_subset[p.category].append(ok)
    subset_acc = {s: sum(v) / len(v) for s, v in by_subset.items()}
    return by_subset, subset_acc, section_scores(subset_acc, EXAMPLE_COUNTS, SUBSET_MAPPING)


def score_credits(pairs: Sequence[PreferencePair], credits: Sequence[float], items: list[dict[str, Any]], *,
                  n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The official numbers from each pair's credit (1 right, 0 wrong; a judge's 0.5 for an unparseable
    verdict): subset accuracy = mean credit, sections weighted by the official example counts, intervals
    resampling pairs within each subset."""
    by_subset, subset_acc, sections = credit_sections(pairs, credits)
    sec_ci, score_ci = stratified_section_bootstrap(by_subset, EXAMPLE_COUNTS, SUBSET_MAPPING,
                                                    n_boot=n_boot, seed=seed)
    return {
        "benchmark": "rewardbench", "score": overall_score(sections), "sections": sections,
        "subsets": {s: {"accuracy": subset_acc[s], "n": len(by_subset[s])} for s in sorted(by_subset)},
        "intervals": {"level": 0.95, "n_boot": n_boot, "score": list(score_ci),
                      "sections": {k: list(v) for k, v in sec_ci.items()}},
        "items": items,
    }


def evaluate_rewardbench(scorer, pairs: Sequence[PreferencePair], *, n_boot: int = 1000,
                         seed: int = 0, subsample: bool = False) -> dict[str, Any]:
    """Score every pair with `scorer` (a rmkit Scorer) and compute the official numbers; `complete` says
    whether the input was the whole filtered split (else the figure is partial: see `missing_subsets`)."""
    results = score_results(pairs, scorer.score_pairs(pairs), n_boot=n_boot, seed=seed)
    results.update(completeness({s: v["n"] for s, v in results["subsets"].items()}, FILTERED_COUNTS,
                                subsample=subsample))
    results["model"] = getattr(scorer, "name", type(scorer).__name__)
    results["n_pairs"] = len(pairs)
    return results


def leaderboard_row(results: dict[str, Any], model: str | None = None) -> dict[str, str]:
    """The Skywork model card's columns: Model, Score, Chat, Chat Hard, Safety, Reasoning (percent)."""
    row = {"Model": model or results.get("model", "?"), "Score": f"{100 * results['score']:.1f}"}
    row.update({s: f"{100 * results['sections'][s]:.1f}" for s in SECTIONS})
    return row
