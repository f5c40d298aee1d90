"""Labelled pairwise sets: `rmkit eval pairwise --data FILE_OR_DIR --model M --output results.json`.

    from rmkit.evaluate.pairwise import load_labelled_pairs, evaluate_pairwise
    pairs = load_labelled_pairs("../shared/data/llmbar")        # a file or a folder of files
    results = evaluate_pairwise(scorer, pairs)

Any file with a prompt, two responses and a label. Recognised layouts (by columns):
  LLMBar         {input, output_1, output_2, label: 1 | 2}
  EvalBiasBench  {instruction, response1, response2, label: 1 | 2, bias}  (answer order shuffled, seeded)
  Auto-J         {prompt, "response 1", "response 2", label: 0 | 1 | 2 (tie), scenario}
  generic        prompt|question|instruction|input + response_a/b | response_A/B | response1/2 |
                 output_1/2 | answer_a/b, and label (or winner / preference) 1/2, "A"/"B", "A>B"/"B>A",
                 "model_a"/"model_b", or a tie ("A=B", "tie")
A pair is right when the better response gets the strictly higher reward. With tie-labelled pairs
(Auto-J) the headline is Auto-J's official agreement over all rows (a model says "tie" only on equal
rewards; per group over all its rows too), and the accuracy on the non-tie rows is `non_tie_accuracy`. Groups: the file name, or the row's bias / scenario
group / subset; overall = accuracy over all pairs (micro), each group with its interval.
"""
from __future__ import annotations

import math
import os
import random
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rmkit.data.io import SUFFIXES, is_local, read_rows
from rmkit.data.schema import DataError, Message, PreferencePair
from rmkit.evaluate.common import (add_to_view, build_results, finite, float_pair_rewards, new_view,
                                   parse_each, reply_length, scorer_name)
from rmkit.evaluate.metrics import bootstrap_ci

PROMPT_KEYS = ("prompt", "question", "instruction", "input", "query")
RESPONSE_KEYS = (("output_1", "output_2"), ("response1", "response2"), ("response 1", "response 2"),
                 ("response_a", "response_b"), ("response_A", "response_B"), ("answer_a", "answer_b"),
                 ("completion_a", "completion_b"))
LABELS = {"1": "A", "2": "B", "a": "A", "b": "B", "a>b": "A", "b>a": "B", "a<b": "B", "b<a": "A",
          "a=b": "tie", "tie": "tie", "model_a": "A", "model_b": "B", "tie(bothbad)": "tie"}
LABEL_KEYS = ("label", "winner", "preference")
AUTOJ_LABELS = {0: "A", 1: "B", 2: "tie"}
# Auto-J scenario → group (GAIR-NLP/auto-j codes/leaderboard/utils_constants.py `scenario_group`)
AUTOJ_GROUPS = {
    "Summarization": ["post_summarization", "text_summarization", "note_summarization"],
    "Exam Questions": ["math_reasoning", "solving_exam_question_with_math",
                       "solving_exam_question_without_math"],
    "Code": ["code_simplification", "code_generation", "explaining_code", "code_correction_rewriting",
             "code_to_code_translation"],
    "Rewriting": ["text_simplification", "language_polishing", "instructional_rewriting",
                  "text_correction", "paraphrasing"],
    "Creative Writing": ["writing_song_lyrics", "writing_social_media_post", "writing_blog_post",
                         "writing_personal_essay", "creative_writing", "writing_advertisement",
                         "writing_marketing_materials", "writing_presentation_script", "counterfactual"],
    "Functional Writing": ["writing_product_description", "writing_job_application",
                           "writing_news_article", "writing_biography", "writing_email",
                           "writing_legal_document", "writing_technical_document",
                           "writing_scientific_paper", "functional_writing", "writing_cooking_recipe"],
    "General Communication": ["asking_how_to_question", "open_question", "analyzing_general",
                              "explaining_general", "seeking_advice", "recommendation",
                              "value_judgement", "verifying_fact", "chitchat", "roleplay", "planning",
                              "brainstorming"],
    "NLP Tasks": ["ranking", "text_to_text_translation", "data_analysis",
                  "classification_identification", "title_generation", "question_generation",
                  "reading_comprehension", "keywords_extraction", "information_extraction",
                  "topic_modeling", "others"],
}
SCENARIO_GROUP = {s: g for g, ss in AUTOJ_GROUPS.items() for s in ss}


# ---- parsing ----

def parse_label(value: Any, *, autoj: bool = False, where: Mapping[str, Any] | None = None) -> str:
    """'A', 'B' or 'tie' from 1/2, A/B, "A>B"/"B>A", "A=B"/"tie" (Auto-J: 0/1/2)."""
    where = dict(where or {})
    if autoj:
        if isinstance(value, (int, str)) and str(value).strip() in ("0", "1", "2"):
            return AUTOJ_LABELS[int(value)]
        raise DataError(f"Auto-J label must be 0, 1 or 2, got {value!r}", **where, field="label")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataError(f"unreadable label {value!r}", **where, field="label")
    text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    key = text.strip().lower().replace(" ", "")
    if key not in LABELS:
        raise DataError(f"label must be 1/2, A/B, 'A>B'/'B>A' or a tie ('A=B'), got {value!r}",
                        **where, field="label")
    return LABELS[key]


def detect_layout(row: Mapping[str, Any], where: dict) -> tuple[str, str, str]:
    """(prompt key, response-1 key, response-2 key) for a row."""
    prompt = next((k for k in PROMPT_KEYS if k in row), None)
    resp = next((ks for ks in RESPONSE_KEYS if ks[0] in row and ks[1] in row), None)
    if prompt is None or resp is None:
        raise DataError(f"need a prompt ({'/'.join(PROMPT_KEYS)}) and two responses "
                        f"({', '.join('/'.join(k) for k in RESPONSE_KEYS)}); got columns {sorted(row)}",
                        **where, field="prompt" if prompt is None else "response")
    return prompt, resp[0], resp[1]


def _text(row: Mapping[str, Any], key: str, where: dict, *, allow_blank: bool = False) -> str:
    """A text field; a response may be blank (a real, bad answer: LLMEval² has one), a prompt not."""
    v = row.get(key)
    if not isinstance(v, str) or not (v.strip() or allow_blank):
        raise DataError("missing or empty text", **where, field=key)
    return v


def parse_row(row: Mapping[str, Any], *, file: str, index: int, group: str,
              shuffle_seed: int | None = None) -> PreferencePair:
    """One labelled row → PreferencePair (chosen = the better response; a tie keeps A as chosen)."""
    where = {"file": file, "row": index}
    pk, ka, kb = detect_layout(row, where)
    lk = next((k for k in LABEL_KEYS if row.get(k) is not None), None)
    if lk is None:
        raise DataError(f"missing (looked for {', '.join(LABEL_KEYS)})", **where, field="label")
    label = parse_label(row[lk], autoj=ka == "response 1", where=where)
    a, b = _text(row, ka, where, allow_blank=True), _text(row, kb, where, allow_blank=True)
    swapped = False
    if shuffle_seed is not None and random.Random(f"{shuffle_seed}:{file}:{index}").random() < 0.5:
        a, b, swapped = b, a, True  # present B first; the label follows the answer
        label = {"A": "B", "B": "A"}.get(label, label)
    good, bad = (b, a) if label == "B" else (a, b)
    return PreferencePair(
        id=str(row.get("id", row.get("pair_id", index))), source="pairwise", category=_group(row, group),
        prompt=[Message("user", _text(row, pk, where))], chosen=[Message("assistant", good)],
        rejected=[Message("assistant", bad)],
        meta={"label": label, "tie": label == "tie", "swapped": swapped, "file": Path(file).name,
              "row": index})


def _group(row: Mapping[str, Any], default: str) -> str:
    if row.get("scenario"):
        return SCENARIO_GROUP.get(row["scenario"], str(row["scenario"]))
    for key in ("_group", "bias", "subset", "category"):
        if isinstance(row.get(key), str) and row[key]:
            return row[key]
    return default


def _files(source: str | os.PathLike) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith(SUFFIXES))
        if not files:
            raise DataError(f"no data files ({', '.join(SUFFIXES)}) in the folder", file=str(path))
        return files
    return [path]


def load_labelled_pairs(source: str | os.PathLike, *, seed: int = 0, shuffle: bool | None = None,
                        errors: str = "raise", skipped=None) -> list[PreferencePair]:
    """Pairs from a file, a folder of files, or a hub id. `shuffle=None` shuffles the answer order
    (seeded) only where the label is constant (EvalBiasBench: always response1)."""
    if not is_local(source):
        return _load_one(str(source), f"hub:{source}", str(source), seed, shuffle, errors, skipped)
    out = []
    for f in _files(source):
        out.extend(_load_one(str(f), str(f), f.name.split(".")[0], seed, shuffle, errors, skipped))
    return out


def _load_one(source: str, file: str, group: str, seed: int, shuffle: bool | None, errors: str = "raise",
              skipped=None) -> list[PreferencePair]:
    rows = list(read_rows(source))
    if not rows:
        raise DataError("no rows", file=file)
    if shuffle is None:
        shuffle = isinstance(rows[0][1], Mapping) and "response1" in rows[0][1] and \
            len({str(r.get("label")) for _, r in rows if isinstance(r, Mapping)}) == 1

    def parse(i, r):
        if not isinstance(r, Mapping):
            raise DataError("a row must be a JSON object", file=file, row=i)
        return parse_row(r, file=file, index=i, group=group, shuffle_seed=seed if shuffle else None)

    return parse_each(rows, parse, file, errors, skipped)


# ---- evaluation ----

def score_pairs(pairs: Sequence[PreferencePair], rewards: Sequence[tuple[float, float]], *,
                n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Accuracy on non-tie pairs (micro, per group) with intervals; tie pairs reported apart."""
    units: dict[str, dict[str, float]] = defaultdict(dict)
    agree_units: dict[str, dict[str, float]] = defaultdict(dict)
    records, view, tie_margins = [], new_view(), []
    for k, (p, (rc, rr)) in enumerate(zip(pairs, rewards)):
        cl, rl = reply_length(p.chosen), reply_length(p.rejected)
        ok = None if p.meta["tie"] else int(rc > rr)
        records.append({"id": p.id, "group": p.category, "file": p.meta["file"], "row": p.meta["row"],
                        "label": p.meta["label"], "swapped": p.meta["swapped"],
                        "chosen_reward": finite(rc), "rejected_reward": finite(rr),
                        "chosen_len": cl, "rejected_len": rl, "correct": ok})
        unit = f"{p.meta['file']}:{p.meta['row']}"
        agree_units[p.category][unit] = float(rc == rr) if ok is None else float(ok)
        if ok is None:
            tie_margins.append(abs(rc - rr))
            continue
        units[p.category][unit] = float(ok)
        add_to_view(view, rc, rr, cl, rl)
    if not tie_margins:
        sections = {g: {g: float(len(u))} for g, u in sorted(units.items())}
        results = build_results("pairwise", units, sections, "micro", records, view, n_boot=n_boot, seed=seed)
        results["metric"] = "accuracy"
        results["ties"] = {"n": 0}
        return results
    # Tie-labelled rows (Auto-J): the headline is the official agreement over ALL rows, a tie predicted only
    # on equal rewards (GAIR-NLP/auto-j codes/leaderboard/pairwise_eval.py), per group over all its rows too;
    # the accuracy on the non-tie rows is kept apart, under its own name.
    sections = {g: {g: float(len(u))} for g, u in sorted(agree_units.items())}
    results = build_results("pairwise", agree_units, sections, "micro", records, view, n_boot=n_boot, seed=seed)
    results["metric"] = "agreement over all rows (ties included; a tie predicted on equal rewards)"
    results["ties"] = _ties_block(records, tie_margins, view, n_boot, seed)
    if units:
        sec = {g: {g: float(len(u))} for g, u in sorted(units.items())}
        non_tie = build_results("pairwise", units, sec, "micro", [], view, n_boot=n_boot, seed=seed)
        results["non_tie_accuracy"] = {k: non_tie[k] for k in ("score", "sections", "subsets", "intervals")}
    return results


def _ties_block(records, tie_margins, view, n_boot, seed) -> dict[str, Any]:
    """Tie-labelled pairs: count, reward gaps, and Auto-J's agreement over all pairs."""
    if not tie_margins:
        return {"n": 0}
    gaps = np.abs(np.asarray(view["chosen_reward"]) - np.asarray(view["rejected_reward"]))
    agree = [int(r["chosen_reward"] == r["rejected_reward"]) if r["correct"] is None else r["correct"]
             for r in records]
    return {"n": len(tie_margins), "mean_abs_reward_gap": float(np.nanmean(tie_margins)),
            "mean_abs_reward_gap_non_tie": float(np.nanmean(gaps)) if gaps.size else math.nan,
            "agreement_all_pairs": float(np.mean(agree)),
            "agreement_all_pairs_interval": list(bootstrap_ci(agree, n_boot, seed))}


def evaluate_pairwise(scorer, pairs: Sequence[PreferencePair], *, n_boot: int = 1000,
                      seed: int = 0) -> dict[str, Any]:
    rewards = float_pair_rewards(scorer, pairs)
    results = score_pairs(pairs, rewards, n_boot=n_boot, seed=seed)
    results["model"] = scorer_name(scorer)
    return results
