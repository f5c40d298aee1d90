"""Generative judges under each benchmark's official judge protocol: the official prompts, the verdict
parsing, and the official rule for a verdict that does not parse; every pairwise item judged in both
answer orders, with the judge's position bias and its consistency across orders reported with intervals.

    from rmkit.score.judge import build_judge
    from rmkit.evaluate.judging import judge_rewardbench
    results = judge_rewardbench(build_judge("smollm2-135m-instruct", backend="hf"), pairs)

Protocols (read from the official code; prompts are reproduced exactly, they are data):
- RewardBench v1 (allenai/reward-bench `rewardbench/generative.py`, `scripts/run_generative.py`): the
  MT-Bench "pair-v2" system prompt and template (its two-turn variant for two-turn prompts), verdict
  "[[A]]" if it appears anywhere, else "[[B]]", else unparseable; a pair scores 1 / 0 / 0.5 (unparseable,
  "effectively a tie"); a prompt of more than two turns scores 0.5 unjudged. The official script judges one
  order per pair, drawn by an unseeded coin; rmkit judges both, and its headline is the mean of the two
  orders' scores: the official score's expectation over that coin, without its noise. Each order's own
  score is reported too (`judge.orders`).
- RewardBench 2, rating mode (`rewardbench/generative_v2.py`, `run_generative_v2.py --score_w_ratings`): each
  completion rated alone from 1 to 10 with `ratings_prompt` (Ties: `ratings_prompt_ties`), the rating read
  from a number 1-10 that ends the answer (else -1), then scored as reward-bench scores ratings: best-of-4
  credit 1/k among k top-rated (an item with every rating unparseable: all tie at -1, 0.25), Ties by its
  weighted formula with -1 kept as a score; that is `rewardbench2.score_items` on the ratings.
- JudgeBench (ScalerLab/JudgeBench `utils/judges.py`, `run_judge.py`, `utils/metrics.py`): the "vanilla"
  prompt (an answer exactly "Output (a)" / "Output (b)") or the "arena_hard" one (a `[[A>B]]`-style label,
  one follow-up turn asking for the label when none is given, several different labels unparseable,
  "A>>B" read as "A>B"); both games always, game 2 mapped back; votes +1 / -1 / 0 (a tie "A=B" or an
  unparseable or failed game), right when they sum above 0 (`judgebench.score_decisions`).
RM-Bench, RMB and the labelled pairwise sets define no judge protocol: `NO_PROTOCOL` says so, and their
commands refuse --judge with that reason.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from rmkit.data.schema import BestOfN, Message, PreferencePair
from rmkit.evaluate import judgebench, rewardbench, rewardbench2
from rmkit.evaluate.common import completeness
from rmkit.evaluate.judge_prompts import (ARENA_HARD_FOLLOW_UP, ARENA_HARD_SYSTEM, ARENA_HARD_TEMPLATE,  # noqa: F401
                                          JUDGEBENCH_VANILLA, MTBENCH_MULTI_SYSTEM, MTBENCH_MULTI_TEMPLATE,
                                          MTBENCH_SYSTEM, MTBENCH_TEMPLATE, RATINGS_PROMPT, RATINGS_PROMPT_TIES)
from rmkit.evaluate.metrics import bootstrap_ci

ARENA_LABEL = re.compile(r"\[\[([AB<>=]+)\]\]")
RATING = re.compile(r"\b([1-9]|10)\b\s*$")
JUDGEBENCH_PROMPTS = ("vanilla", "arena_hard")
MAX_TOKENS = {"rewardbench": 2048, "rewardbench2": 1024, "vanilla": 1024, "arena_hard": 4096}
"""The official generation lengths (reward-bench: 2048 pairwise, 1024 for API ratings; JudgeBench: 1024 for
vanilla, 4096 for arena_hard): the CLI's default for --judge-max-tokens."""
NO_PROTOCOL = {
    "rmbench": "RM-Bench defines no judge protocol: it ranks reward models by the rewards of its chosen / "
               "rejected responses at three style levels",
    "rmb": "RMB's official evaluation scores reward models' rewards; its judge results use prompts its "
           "code does not publish, so rmkit has no official judge protocol to run",
    "pairwise": "the labelled pairwise sets (LLMBar, EvalBiasBench, ...) share no judge protocol: each paper "
                "has its own judge prompts, which rmkit does not reproduce; judge RewardBench or JudgeBench instead",
}


# ---- verdicts ----

def parse_mtbench(answer: str | None) -> str | None:
    """reward-bench's `process_judgement`: "A" if "[[A]]" appears (first), else "B" if "[[B]]", else None."""
    if answer is None:
        return None
    return "A" if "[[A]]" in answer else "B" if "[[B]]" in answer else None


def parse_rating(answer: str | None) -> int | None:
    """reward-bench v2's rating: a number 1-10 that ends the (stripped) answer, else None (scored -1)."""
    m = RATING.search(answer.strip()) if answer else None
    return int(m.group(1)) if m else None


def parse_vanilla(answer: str | None) -> str | None:
    """JudgeBench's vanilla judge: exactly "Output (a)" → "A>B", "Output (b)" → "B>A", else None."""
    text = answer.strip() if answer is not None else None
    return {"Output (a)": "A>B", "Output (b)": "B>A"}.get(text)


def parse_arena_hard(judgment: str) -> tuple[str | None, bool]:
    """JudgeBench's arena_hard `get_score`: (the one distinct label, "A>>B" read "A>B"; else None, whether to
    ask again: only when no label appears at all)."""
    labels = {m for m in ARENA_LABEL.findall(judgment) if m}
    if not labels:
        return None, True
    if len(labels) > 1:
        return None, False
    return labels.pop().strip("\n").replace(">>", ">").strip(), False


# ---- prompts ----

def _turns(pair: PreferencePair, chosen_first: bool) -> tuple[list[Message], list[Message]]:
    a, b = pair.chosen_conversation, pair.rejected_conversation
    a, b = ([m for m in c if m.role != "system"] for c in (a, b))
    return (a, b) if chosen_first else (b, a)


def mtbench_messages(pair: PreferencePair, chosen_first: bool) -> list[dict] | None:
    """The pair-v2 request with the chosen reply as assistant A (or B); None for a prompt of more than two
    turns (reward-bench scores those 0.5 without asking)."""
    a, b = _turns(pair, chosen_first)
    if len(a) == 2:
        user = MTBENCH_TEMPLATE.format(question=a[0].content, answer_a=a[1].content, answer_b=b[1].content)
        system = MTBENCH_SYSTEM
    elif len(a) == 4:
        user = MTBENCH_MULTI_TEMPLATE.format(question_1=a[0].content, answer_a_1=a[1].content,
                                             answer_b_1=b[1].content, question_2=a[2].content,
                                             answer_a_2=a[3].content, answer_b_2=b[3].content)
        system = MTBENCH_MULTI_SYSTEM
    else:
        return None
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def rating_messages(item: BestOfN, k: int, ties: bool) -> list[dict]:
    prompt = RATINGS_PROMPT_TIES if ties else RATINGS_PROMPT
    question = next(m.content for m in item.prompt if m.role == "user")
    return [{"role": "user", "content": prompt.format(prompt=question, completion=item.completions[k][-1].content)}]


def judgebench_messages(style: str, question: str, first: str, second: str) -> list[dict]:
    if style == "vanilla":
        return [{"role": "user", "content": JUDGEBENCH_VANILLA.format(question=question, answer_a=first,
                                                                       answer_b=second)}]
    return [{"role": "system", "content": ARENA_HARD_SYSTEM},
            {"role": "user", "content": ARENA_HARD_TEMPLATE.format(prompt=question, answer_a=first, answer_b=second)}]


# ---- the judge's behaviour ----

def order_summary(picks: Sequence[tuple[str | None, str | None]], answers_missing: int, *, n_boot: int = 1000,
                  seed: int = 0) -> dict[str, Any]:
    """From each pair's picks in its two orders ("first" | "second" | None: unparseable, failed or a tie):
    position bias (how often a verdict picks the answer shown first), consistency (pairs whose two
    verdicts name the same answer, of those with two verdicts), both with 95% bootstrap intervals."""
    shown_first = [float(p == "first") for game in picks for p in game if p is not None]
    both = [float(p1 != p2) for p1, p2 in picks if p1 is not None and p2 is not None]
    out: dict[str, Any] = {"verdicts": len(shown_first), "unparseable": sum(p is None for g in picks for p in g),
                           "failed_requests": answers_missing}
    for name, values in (("picks_first", shown_first), ("consistency", both)):
        out[name] = float(np.mean(values)) if values else None
        out[f"{name}_interval"] = list(bootstrap_ci(values, n_boot, seed)) if values else None
    out["consistent_pairs"] = len(both)
    return out


def _describe(judge, protocol: str, summary: dict[str, Any]) -> dict[str, Any]:
    return {"model": judge.name, "protocol": protocol, "max_tokens": judge.max_tokens,
            "answers": dict(judge.stats), **summary}


# ---- the protocols ----

def judge_rewardbench(judge, pairs: Sequence[PreferencePair], *, n_boot: int = 1000, seed: int = 0,
                      subsample: bool = False) -> dict[str, Any]:
    """RewardBench v1 by reward-bench's generative protocol, both orders (see the module's docstring);
    `complete` says whether the input was the whole filtered split."""
    requests = {(i, first): mtbench_messages(p, first) for i, p in enumerate(pairs) for first in (True, False)}
    asked = [k for k, m in requests.items() if m is not None]
    answers = dict(zip(asked, judge.generate([requests[k] for k in asked])))
    credits, items, picks, per_order = [], [], [], {True: [], False: []}
    for i, p in enumerate(pairs):
        verdicts = {first: parse_mtbench(answers.get((i, first))) for first in (True, False)}
        if requests[(i, True)] is None:  # more than two turns: 0.5 unjudged, as reward-bench does
            game = {True: 0.5, False: 0.5}
        else:  # the chosen reply is A when shown first, B when second; unparseable 0.5
            game = {first: 0.5 if v is None else float(v == ("A" if first else "B")) for first, v in verdicts.items()}
            picks.append(tuple(None if v is None else ("first" if v == "A" else "second") for v in verdicts.values()))
        for first in (True, False):
            per_order[first].append(game[first])
        credits.append((game[True] + game[False]) / 2)
        items.append({"id": p.id, "subset": p.category, "verdict_chosen_first": verdicts[True],
                      "verdict_chosen_second": verdicts[False], "correct": credits[-1]})
    results = rewardbench.score_credits(pairs, credits, items, n_boot=n_boot, seed=seed)
    summary = order_summary(picks, sum(a is None for a in answers.values()), n_boot=n_boot, seed=seed)
    summary["orders"] = {name: {"score": rewardbench.overall_score(rewardbench.credit_sections(pairs, credits_of)[2])}
                         for name, credits_of in (("chosen first", per_order[True]),
                                                  ("chosen second", per_order[False]))}
    results["judge"] = _describe(judge, "reward-bench run_generative.py (MT-Bench pair-v2), both orders: "
                                        "the mean of the two orders' official scores", summary)
    results["model"], results["n_pairs"] = judge.name, len(pairs)
    results.update(completeness({s: v["n"] for s, v in results["subsets"].items()}, rewardbench.FILTERED_COUNTS,
                                subsample=subsample))
    return results


def judge_rewardbench2(judge, items: Sequence[BestOfN], *, n_boot: int = 1000, seed: int = 0,
                       subsample: bool = False) -> dict[str, Any]:
    """RewardBench 2 by reward-bench's rating mode: each completion rated alone (Ties with its own prompt),
    an unparseable rating -1, scored as `rewardbench2.score_items` scores rewards."""
    ties = rewardbench2.TIES.lower()
    requests = [rating_messages(it, k, it.subset.lower() == ties) for it in items for k in range(len(it.completions))]
    answers = judge.generate(requests)
    ratings = [parse_rating(a) for a in answers]
    scores, k = [], 0
    for it in items:
        scores.append([float(r) if r is not None else -1.0 for r in ratings[k:k + len(it.completions)]])
        k += len(it.completions)
    results = rewardbench2.results_from_scores(items, scores, judge.name, n_boot=n_boot, seed=seed,
                                               subsample=subsample)
    results["judge"] = _describe(judge, "reward-bench run_generative_v2.py --score_w_ratings (ratings 1-10)", {
        "ratings": len(ratings), "unparseable": sum(r is None for r in ratings),
        "failed_requests": sum(a is None for a in answers),
        "mean_rating": float(np.mean([r for r in ratings if r is not None])) if any(ratings) else None})
    return results


def _judgebench_games(judge, style: str, games: dict) -> dict:
    """Each game's decision; arena_hard asks once more, in the same conversation, where no label came."""
    answers = dict(zip(games, judge.generate(list(games.values()))))
    if style == "vanilla":
        return {k: parse_vanilla(a) for k, a in answers.items()}
    decided, again = {}, {}
    for k, a in answers.items():
        decided[k], retry = parse_arena_hard("\n" + a) if a is not None else (None, False)
        if retry:
            again[k] = [*games[k], {"role": "assistant", "content": a},
                        {"role": "user", "content": ARENA_HARD_FOLLOW_UP}]
    for k, a in zip(again, judge.generate(list(again.values()))):
        decided[k] = parse_arena_hard("\n" + answers[k] + "\n" + a)[0] if a is not None else None
    return decided


def judge_judgebench(judge, pairs: Sequence[PreferencePair], *, style: str = "vanilla", single_game: bool = False,
                     n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """JudgeBench by its own judge protocol (`style`: vanilla | arena_hard), both games unless `single_game`."""
    if style not in JUDGEBENCH_PROMPTS:
        raise ValueError(f"JudgeBench's judge prompt is one of {', '.join(JUDGEBENCH_PROMPTS)}, got {style!r}")
    games = {}
    for i, p in enumerate(pairs):
        a, b = (p.chosen[-1].content, p.rejected[-1].content)
        a, b = (a, b) if p.meta["label"] == "A>B" else (b, a)  # response_A, response_B as the row has them
        question = next(m.content for m in p.prompt if m.role == "user")
        games[(i, 1)] = judgebench_messages(style, question, a, b)
        if not single_game:
            games[(i, 2)] = judgebench_messages(style, question, b, a)
    decided = _judgebench_games(judge, style, games)
    decisions = [(decided[(i, 1)], None if single_game else judgebench.flip(decided[(i, 2)]))
                 for i in range(len(pairs))]
    results = judgebench.score_decisions(pairs, decisions, n_boot=n_boot, seed=seed)
    first = {"A>B": "first", "B>A": "second"}
    picks = [(first.get(decided[(i, 1)]), first.get(decided.get((i, 2)))) for i in range(len(pairs))]
    summary = order_summary(picks, judge.stats.get("failed", 0), n_boot=n_boot, seed=seed)
    summary["unparseable"] = sum(d is None for d in decided.values())  # order_summary's count holds ties too
    summary["ties"] = sum(d == "A=B" for d in decided.values())
    results["judge"] = _describe(judge, f"JudgeBench run_judge.py ({style} judge), "
                                        + ("single game" if single_game else "both games"), summary)
    results["model"] = judge.name
    return results
