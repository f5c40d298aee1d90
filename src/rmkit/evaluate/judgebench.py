"""JudgeBench with its official two-order scoring: `rmkit eval judgebench --model M --output results.json`.

    from rmkit.evaluate.judgebench import load_judgebench, evaluate_judgebench
    pairs = load_judgebench()                     # hub `ScalerLab/JudgeBench` split gpt, or --data FILE
    results = evaluate_judgebench(scorer, pairs)

Rows: `{pair_id, source, question, response_A, response_B, label "A>B" | "B>A"}`. As in
ScalerLab/JudgeBench (`run_judge.py`, `utils/metrics.py`, the reward-model judges in `utils/judges.py`),
each pair is judged in both orders: (A, B) gives "A>B" if r_A > r_B else "B>A"; (B, A) gives
"A>B" if r_B > r_A else "B>A", which is then flipped back. Each decision that matches the label
counts +1, the opposite label −1; the pair is right if the sum is > 0. A reward model scores each
response on its own, so one scoring pass serves both orders; the rule makes a reward tie count as
wrong (the two orders disagree). Accuracy is micro-averaged over pairs (the official number), and
reported per category (Knowledge = mmlu-pro-*, Reasoning = livebench-reasoning, Math =
livebench-math, Coding = livecodebench) and per source. `single_game=True` is the README's mode for
reward models (`run_judge.py --single_game`): the original order only, "A>B" if r_A > r_B else "B>A";
the two modes differ only on reward ties (wrong in two orders, right in one game when the label is B>A).
"""
from __future__ import annotations

import os
from collections import defaultdict
from typing import Any, Sequence

from rmkit.data.schema import DataError, Message, PreferencePair
from rmkit.data.sources.common import get_field
from rmkit.evaluate.common import (add_to_view, build_results, finite, float_pair_rewards, new_view,
                                   read_benchmark, reply_length, scorer_name)

HUB_ID = "ScalerLab/JudgeBench"
SPLIT = "gpt"
LOCAL_FILES = ("judgebench/judgebench_gpt.jsonl", "judgebench/dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl")
LABELS = ("A>B", "B>A")
CATEGORIES = ("Knowledge", "Reasoning", "Math", "Coding")


# ---- pure scoring ----

def flip(decision: str | None) -> str | None:
    return {"A>B": "B>A", "B>A": "A>B"}.get(decision, decision)


def decide(first: float, second: float) -> str:
    """A reward-model judge's verdict on (first, second): "A>B" only on a strictly higher reward."""
    return "A>B" if first > second else "B>A"


def two_order_credit(label: str, reward_a: float, reward_b: float) -> tuple[int, str, str]:
    """(1 if right else 0, decision in order AB, decision in order BA mapped back to A/B)."""
    d1, d2 = decide(reward_a, reward_b), flip(decide(reward_b, reward_a))
    return vote_credit(label, d1, d2), d1, d2


def single_game_credit(label: str, reward_a: float, reward_b: float) -> tuple[int, str]:
    """`run_judge.py --single_game` (the README's mode for reward models): the original order only,
    "A>B" if r_A > r_B else "B>A"; right when that is the label (so a reward tie counts for "B>A")."""
    d = decide(reward_a, reward_b)
    return vote_credit(label, d, None), d


def category_of(source: str) -> str:
    s = source.lower()
    if s.startswith("mmlu-pro"):
        return "Knowledge"
    if "livebench-reasoning" in s:
        return "Reasoning"
    if "livebench-math" in s:
        return "Math"
    if "livecodebench" in s:
        return "Coding"
    return "Other"


# ---- loading ----

def parse_row(row: dict, *, file: str, index: int) -> PreferencePair:
    """A JudgeBench row → PreferencePair with chosen = the label's winner (A/B kept in meta)."""
    where = {"file": file, "row": index}
    label = get_field(row, "label", where)
    if label not in LABELS:
        raise DataError(f"label must be one of {LABELS}, got {label!r}", **where, field="label")
    a, b = (get_field(row, k, where, allow_empty=True) for k in ("response_A", "response_B"))
    source = str(row.get("source") or "unknown")
    good, bad = (a, b) if label == "A>B" else (b, a)
    return PreferencePair(
        id=str(row.get("pair_id", index)), source="judgebench", category=category_of(source),
        prompt=[Message("user", get_field(row, "question", where))],
        chosen=[Message("assistant", good)], rejected=[Message("assistant", bad)],
        meta={"label": label, "source": source})  # a blank response is data (a bad answer)


def load_judgebench(data: str | os.PathLike | None = None, *, errors: str = "raise",
                    skipped=None) -> list[PreferencePair]:
    return read_benchmark(data, LOCAL_FILES, HUB_ID, SPLIT, parse_row, errors, skipped)


# ---- evaluation ----

def score_pairs(pairs: Sequence[PreferencePair], rewards: Sequence[tuple[float, float]], *,
                n_boot: int = 1000, seed: int = 0, single_game: bool = False) -> dict[str, Any]:
    """Official accuracy (two orders, or the original order only with `single_game`), micro overall,
    per category and per source, with intervals: a reward model's decisions in each order, scored by
    `score_decisions`."""
    decisions = []
    for p, (rc, rr) in zip(pairs, rewards):
        ra, rb = (rc, rr) if p.meta["label"] == "A>B" else (rr, rc)
        decisions.append((decide(ra, rb), None if single_game else flip(decide(rb, ra))))
    results = score_decisions(pairs, decisions, rewards, n_boot=n_boot, seed=seed)
    results["n_ties"] = sum(1 for r in results["items"] if r["reward_A"] == r["reward_B"] or
                            r["reward_A"] is None or r["reward_B"] is None)
    return results


def vote_credit(label: str, d1: str | None, d2: str | None) -> int:
    """`compute_final_metrics`: game 2's decision comes mapped back to the A/B of game 1; each decision
    equal to the label votes +1, the opposite label −1, anything else (a tie "A=B", None: an unparseable or
    failed game) 0; right when the votes sum above 0. One game only (d2 None): right when d1 is the label."""
    if d2 is None:
        return int(d1 == label)
    return int(sum(1 if d == label else -1 if d == flip(label) else 0 for d in (d1, d2)) > 0)


def score_decisions(pairs: Sequence[PreferencePair], decisions: Sequence[tuple[str | None, str | None]],
                    rewards: Sequence[tuple[float, float]] | None = None, *, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """The official numbers from each pair's decisions ("A>B" | "B>A" | "A=B" | None) in order AB and, mapped
    back, in order BA (None for a single game): a reward model's (`score_pairs`) or a judge's
    (`rmkit.evaluate.judging`)."""
    units: dict[str, dict[str, float]] = defaultdict(dict)
    records, view = [], new_view()
    for k, (p, (d1, d2)) in enumerate(zip(pairs, decisions)):
        label, src = p.meta["label"], p.meta["source"]
        ok = vote_credit(label, d1, d2)
        units[src][f"{p.id}#{k}"] = float(ok)
        cl, rl = reply_length(p.chosen), reply_length(p.rejected)
        record = {"id": p.id, "source": src, "category": p.category, "label": label, "decision_AB": d1,
                  "decision_BA": d2, "correct": ok, "chosen_len": cl, "rejected_len": rl}
        if rewards is not None:
            rc, rr = rewards[k]
            ra, rb = (rc, rr) if label == "A>B" else (rr, rc)
            record.update(reward_A=finite(ra), reward_B=finite(rb), chosen_reward=finite(rc),
                          rejected_reward=finite(rr))
            add_to_view(view, rc, rr, cl, rl)
        records.append(record)
    sections: dict[str, dict[str, float]] = defaultdict(dict)
    for src, u in sorted(units.items()):
        sections[category_of(src)][src] = float(len(u))  # micro within a category
    order = {c: i for i, c in enumerate(CATEGORIES)}
    sections = {c: sections[c] for c in sorted(sections, key=lambda c: (order.get(c, 99), c))}
    results = build_results("judgebench", units, sections, "micro", records, view,
                            n_boot=n_boot, seed=seed)
    results["mode"] = "two orders" if any(d2 is not None for _, d2 in decisions) else "single game"
    return results


def evaluate_judgebench(scorer, pairs: Sequence[PreferencePair], *, n_boot: int = 1000,
                        seed: int = 0, single_game: bool = False) -> dict[str, Any]:
    rewards = float_pair_rewards(scorer, pairs)
    results = score_pairs(pairs, rewards, n_boot=n_boot, seed=seed, single_game=single_game)
    results["model"] = scorer_name(scorer)
    return results
