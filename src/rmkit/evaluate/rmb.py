"""RMB (ICLR 2025) with its official scoring: `rmkit eval rmb --model M --data RMB_dataset --output rmb.json`.

    from rmkit.evaluate.rmb import load_rmb, evaluate_rmb
    items = load_rmb("RMB_dataset")          # the folder of github Zhou-Zoey/RMB-Reward-Model-Benchmark
    results = evaluate_rmb(scorer, items)

The data are JSON lists, one file per scenario, under `Pairwise_set/{Helpfulness,Harmlessness}/...` and
`BoN_set/{Helpfulness,Harmlessness}/...` (49 scenarios in each set: harmlessness S1..S11 and multi, 37
helpfulness sub-scenarios in 12 categories, e.g. `Helpfulness/Chat/Discussion.json`). A pairwise row is
`{pair_uid, conversation_input: [{role, content, language}], chosen: {llm_name, answer, score},
reject: {llm_name, answer, score}, category_path}`; a best-of-N row is `{bon_uid, conversation_input,
bon_best: {llm_name, answer}, loser_list: [{llm_name, answer}, ...], category_path}`, where
`category_path` ("Pairwise_set/Harmlessness/S1", "BoN_set/Helpfulness/Chat/Discussion") names the scenario.

Scoring, as RMB's `eval/scripts/my_run_rm.py`: a pair is right when reward(chosen) > reward(reject)
strictly (a tie, or a missing reward, is wrong). Best-of-N: an item is right only when bon_best outscores
every loser strictly (one loser at or above it makes the item wrong). The leaderboard (paper Table 3) has
four columns, Helpfulness BoN, Helpfulness Pairwise, Harmlessness BoN, Harmlessness Pairwise; each is the
accuracy over all items of that set and goal (micro: the official script divides correct by total over
every file of the folder it is given), and the overall is the plain mean of the four. Per scenario (its
category_path) accuracies are reported as subsets, and per goal the mean of its BoN and Pairwise columns
(so the overall is also the mean of the two goals). Intervals resample items within each scenario.

A missing file of the official layout (EXPECTED_FILES) is listed in `missing_files` and makes the result
partial (`complete: false`): a set or goal left out changes what the overall averages over.
"""
from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rmkit.data.schema import BestOfN, DataError, Message, PreferencePair, check_errors, to_conversation
from rmkit.data.sources.common import get_field
from rmkit.evaluate.common import (add_to_view, build_results, finite, float_pair_rewards, new_view,
                                   parse_each, reply_length, scorer_name)
from rmkit.evaluate.metrics import aggregate, grouped_bootstrap, percentile_interval

SETS = {"Pairwise_set": "pairwise", "BoN_set": "bon"}
GOALS = {"Helpfulness": "helpfulness", "Harmlessness": "harmlessness"}
HARMLESSNESS = ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11", "multi")
"""Harmlessness scenarios: S1..S11 (violent crimes ... sexual content) and multi (multi-turn)."""
HELPFULNESS = {
    "Brainstorming": ("Idea Development", "Problem Solving"),
    "Chat": ("Casual Conversation", "Discussion", "Supportive Conversation"),
    "Classification": ("Content Categorization", "Quality and Compliance Assessment"),
    "Closed QA": ("ContextBased", "OptionBased"),
    "Code": ("Data Management", "Development and Implementation", "Documentation", "Quality and Optimization"),
    "Generation": ("Creative Writing", "Professional Content Generation"),
    "Open QA": ("Factual", "General Explanation", "Hypothetical Scenarios", "Interpretative Analysis",
                "Personal Opinion and Advice", "Technical and Practical Support"),
    "Reasoning": ("Analytical Reasoning", "Critical Thinking", "Human Decision Making", "Logical Deduction",
                  "Pattern Recognition"),
    "Rewrite": ("Paraphrasing", "PostQuality Assessment Rewriting", "Textual ExpansionReduction",
                "Tone Adjustment"),
    "Role Playing": ("General Character", "Specific Character"),
    "Summarization": ("Specialized Summaries", "Standard Summaries"),
    "Translation": ("GeneralExcerpt Language Translation", "Literary and Cultural Translation",
                    "Technical and Scientific Translation"),
}
"""The 37 helpfulness scenarios by category, as the official folders name them."""
SCENARIOS = (*(f"Harmlessness/{s}" for s in HARMLESSNESS),
             *(f"Helpfulness/{c}/{s}" for c, subs in HELPFULNESS.items() for s in subs))
EXPECTED_FILES = tuple(f"{st}/{sc}.json" for st in SETS for sc in SCENARIOS)
"""The official layout of RMB_dataset/ (49 scenarios × {Pairwise_set, BoN_set} = 98 files)."""
SECTIONS = ("Helpfulness BoN", "Helpfulness Pairwise", "Harmlessness BoN", "Harmlessness Pairwise")
"""The leaderboard's four columns, in its order; the overall is their plain mean."""
LOCAL_DIRS = ("RMB_dataset", "RMB-Reward-Model-Benchmark/RMB_dataset", "rmb/RMB_dataset", "rmb")


def section_of(scenario: str) -> str:
    """"BoN_set/Helpfulness/Chat/Discussion" → "Helpfulness BoN"."""
    st, goal = scenario.split("/")[:2]
    return f"{goal} {'BoN' if SETS[st] == 'bon' else 'Pairwise'}"


# ---- pure scoring ----

def pair_correct(chosen: float, rejected: float) -> int:
    """1 when chosen outscores rejected strictly (a tie or a NaN is wrong), as `my_run_rm.py`."""
    return int(chosen > rejected)


def bon_correct(best: float, losers: Sequence[float]) -> int:
    """1 only when the best answer outscores every loser strictly."""
    return int(bool(len(losers)) and all(best > x for x in losers))


# ---- loading ----

def _layout_path(path: Path) -> str | None:
    """The path of a file inside the official layout ("Pairwise_set/Harmlessness/S1.json"), or None."""
    parts = path.resolve().parts
    at = [i for i, p in enumerate(parts) if p in SETS]
    return "/".join(parts[at[-1]:]) if at else None


def _answer(value: Any, where: dict, name: str) -> tuple[str, str | None]:
    """(answer text, llm_name) of a `{llm_name, answer}` object; a blank answer is data (a bad answer)."""
    if not isinstance(value, dict):
        raise DataError(f"expected an object with 'answer', got {type(value).__name__}", **where, field=name)
    if not isinstance(value.get("answer"), str):
        got = "missing" if value.get("answer") is None else f"a {type(value['answer']).__name__}"
        raise DataError(f"'answer' must be a string, got {got}", **where, field=f"{name}.answer")
    return value["answer"], value.get("llm_name")


def _prompt(row: dict, where: dict) -> list[Message]:
    turns = get_field(row, "conversation_input", where, kind=list)
    msgs = [{k: m[k] for k in ("role", "content") if k in m} if isinstance(m, dict) else m for m in turns]
    return to_conversation(msgs, where={**where, "field": "conversation_input"})


def parse_row(row: dict, *, file: str, index: int, layout: str | None = None) -> PreferencePair | BestOfN:
    """One RMB row → a PreferencePair (Pairwise_set) or a BestOfN whose completion 0 is bon_best and the
    rest the loser_list (BoN_set). The scenario is the row's category_path (else the file's place in the
    layout); its first part says which kind of row it must be."""
    where = {"file": file, "row": index}
    scenario = row.get("category_path")
    if scenario is None and layout is not None:
        scenario = layout.removesuffix(".json")
    scenario = get_field({"category_path": scenario}, "category_path", where)
    parts = scenario.strip("/").split("/")
    if len(parts) < 3 or parts[0] not in SETS or parts[1] not in GOALS:
        raise DataError(f"must look like Pairwise_set|BoN_set/Helpfulness|Harmlessness/<scenario>, got "
                        f"{scenario!r}", **where, field="category_path")
    scenario, kind, goal = "/".join(parts), SETS[parts[0]], GOALS[parts[1]]
    prompt = _prompt(row, where)
    meta = {"goal": goal, "kind": kind, "scenario": scenario, "file": file}
    if kind == "pairwise":
        chosen, cm = _answer(get_field(row, "chosen", where, kind=dict), where, "chosen")
        rejected, rm = _answer(get_field(row, "reject", where, kind=dict), where, "reject")
        return PreferencePair(id=str(row.get("pair_uid", index)), source="rmb", prompt=prompt,
                              chosen=[Message("assistant", chosen)], rejected=[Message("assistant", rejected)],
                              category=scenario, meta={**meta, "chosen_model": cm, "rejected_model": rm}
                              ).validate(file=file, row=index)
    best, bm = _answer(get_field(row, "bon_best", where, kind=dict), where, "bon_best")
    losers = get_field(row, "loser_list", where, kind=list)
    if not losers:
        raise DataError("empty: a best-of-N item needs at least one loser", **where, field="loser_list")
    answers = [_answer(x, where, "loser_list") for x in losers]
    return BestOfN(id=str(row.get("bon_uid", index)), source="rmb", prompt=prompt,
                   completions=[[Message("assistant", t)] for t in (best, *(a for a, _ in answers))],
                   correct=[True] + [False] * len(answers), subset=scenario,
                   meta={**meta, "models": [bm, *(m for _, m in answers)]}).validate(file=file, row=index)


def _parse_indexed(index: int, row: dict, *, file: str, layout: str | None) -> PreferencePair | BestOfN:
    return parse_row(row, file=file, index=index, layout=layout)


def rmb_files(data: str | os.PathLike) -> list[Path]:
    """The .json files of RMB under `data` (a file, a set / goal folder, RMB_dataset or the repository)."""
    root = Path(data)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError("no such file or folder", file=str(root))
    files = sorted(f for f in root.rglob("*.json") if _layout_path(f) is not None)
    if not files:
        raise DataError("no RMB files here (expected Pairwise_set/... and BoN_set/... .json files)", file=str(root))
    return files


def default_data() -> Path:
    root = os.environ.get("RMKIT_DATA_DIR")
    for rel in LOCAL_DIRS:
        if root and (Path(root) / rel).is_dir():
            return Path(root) / rel
    raise DataError("RMB has no hub copy: pass --data RMB_dataset (github Zhou-Zoey/RMB-Reward-Model-Benchmark) "
                    "or put it under $RMKIT_DATA_DIR/RMB_dataset")


def load_rmb(data: str | os.PathLike | None = None, *, errors: str = "raise",
             skipped: Counter | None = None) -> list[PreferencePair | BestOfN]:
    """Every pairwise and best-of-N item of the files under `data` (default $RMKIT_DATA_DIR/RMB_dataset),
    file by file in sorted order. errors="skip": a row that does not parse is counted in `skipped`."""
    from rmkit.data.io import read_rows

    check_errors(errors)
    items: list[PreferencePair | BestOfN] = []
    for f in rmb_files(data if data is not None else default_data()):
        parse = partial(_parse_indexed, file=str(f), layout=_layout_path(f))
        items += parse_each(read_rows(f), parse, str(f), errors, skipped)
    return items


# ---- evaluation ----

def completeness(scenarios_seen: set[str]) -> dict[str, Any]:
    """`missing_files`: the official files none of whose items were scored; `missing_subsets`: the
    leaderboard columns left out whole, then the missing files of the columns that are there."""
    missing = [f for f in EXPECTED_FILES if f.removesuffix(".json") not in scenarios_seen]
    seen_sections = {section_of(s) for s in scenarios_seen}
    gone = [s for s in SECTIONS if s not in seen_sections]
    short = [f for f in missing if section_of(f) in seen_sections]
    return {"complete": not missing, "missing_files": missing, "missing_subsets": gone + short,
            "short_subsets": {}, "subsample": False}


def score_items(items: Sequence[PreferencePair | BestOfN], rewards: Sequence[Any], *, n_boot: int = 1000,
                seed: int = 0) -> dict[str, Any]:
    """The official numbers from each item's rewards: (chosen, rejected) for a pair, [best, *losers] for a
    best-of-N item."""
    units: dict[str, dict[str, float]] = defaultdict(dict)
    records, view = [], new_view()
    for k, (it, r) in enumerate(zip(items, rewards)):
        scen, m = it.meta["scenario"], it.meta
        base = {"id": it.id, "kind": m["kind"], "goal": m["goal"], "scenario": scen}
        if isinstance(it, PreferencePair):
            c, rj = r
            ok = pair_correct(c, rj)
            cl, rl = reply_length(it.chosen), reply_length(it.rejected)
            records.append({**base, "chosen_reward": finite(c), "rejected_reward": finite(rj),
                            "chosen_len": cl, "rejected_len": rl, "correct": ok})
            add_to_view(view, c, rj, cl, rl)
        else:
            ok = bon_correct(r[0], r[1:])
            lens = [reply_length(c) for c in it.completions]
            records.append({**base, "best_reward": finite(r[0]), "loser_rewards": [finite(x) for x in r[1:]],
                            "best_len": lens[0], "loser_lens": lens[1:], "correct": ok})
            for x, ln in zip(r[1:], lens[1:]):
                add_to_view(view, r[0], x, lens[0], ln)
        units[scen][f"{it.id}#{k}"] = float(ok)
    order = {s: i for i, s in enumerate(f"{st}/{sc}" for st in SETS for sc in SCENARIOS)}
    units = {s: units[s] for s in sorted(units, key=lambda s: (order.get(s, len(order)), s))}
    sections: dict[str, dict[str, float]] = {}
    for name in (*SECTIONS, *sorted({section_of(s) for s in units} - set(SECTIONS))):
        groups = {s: float(len(u)) for s, u in units.items() if section_of(s) == name}  # micro in a column
        if groups:
            sections[name] = groups
    results = build_results("rmb", units, sections, "sections", records, view, n_boot=n_boot, seed=seed)
    results["goals"], results["intervals"]["goals"] = _goals(units, sections, n_boot, seed)
    results["n_pairs"] = sum(1 for it in items if isinstance(it, PreferencePair))
    results["n_bon"] = len(items) - results["n_pairs"]
    return results


def _goals(units, sections, n_boot: int, seed: int) -> tuple[dict[str, float], dict[str, list]]:
    """Per goal the mean of its BoN and Pairwise columns (those present), with intervals from the same
    resamples as the sections' (same seed)."""
    values = {g: list(u.values()) for g, u in units.items()}
    counts = {g: len(v) for g, v in values.items()}
    point, _ = aggregate({g: float(np.mean(v)) for g, v in values.items()}, counts, sections)
    boots, _ = aggregate(grouped_bootstrap(values, n_boot, seed), counts, sections)
    goals, ivs = {}, {}
    for goal in GOALS:
        cols = [s for s in point if s.startswith(goal + " ")]
        if cols:
            goals[goal.lower()] = float(np.mean([point[s] for s in cols]))
            ivs[goal.lower()] = list(percentile_interval(np.mean([boots[s] for s in cols], axis=0)))
    return goals, ivs


def evaluate_rmb(scorer, items: Sequence[PreferencePair | BestOfN], *, n_boot: int = 1000,
                 seed: int = 0) -> dict[str, Any]:
    """Pairs through `scorer.score_pairs` (chosen and rejected share batches); every answer of every
    best-of-N item in one `scorer.score` call, so an item's answers share their prompt."""
    pairs = [it for it in items if isinstance(it, PreferencePair)]
    bons = [it for it in items if not isinstance(it, PreferencePair)]
    pair_r = iter(float_pair_rewards(scorer, pairs) if pairs else [])
    flat = scorer.score([c for it in bons for c in it.conversations()]) if bons else []
    flat = [float(x) if x is not None else math.nan for x in flat]
    rewards, k = [], 0
    for it in items:
        if isinstance(it, PreferencePair):
            rewards.append(next(pair_r))
        else:
            rewards.append(flat[k:k + len(it.completions)])
            k += len(it.completions)
    results = score_items(items, rewards, n_boot=n_boot, seed=seed)
    results["model"] = scorer_name(scorer)
    results.update(completeness({it.meta["scenario"] for it in items}))
    return results


def run_rmb(scorer, data: str | os.PathLike | None, *, n_boot: int = 1000, seed: int = 0,
            errors: str = "raise", skipped: Counter | None = None) -> dict[str, Any]:
    """What `rmkit eval rmb` runs: load every file under `data`, score, and return the results dict
    (rows skipped under errors="skip" are counted in `skipped`; `finish` marks the result partial)."""
    items = load_rmb(data, errors=errors, skipped=skipped)
    results = evaluate_rmb(scorer, items, n_boot=n_boot, seed=seed)
    results["data"] = str(data) if data is not None else str(default_data())
    return results
