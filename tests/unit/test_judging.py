"""Generative judges under each benchmark's official protocol: verdict parsing as the official scripts parse,
both orders, the official rule for an unparseable verdict, position bias and consistency. The judges here
are scripted (a rule maps each request to an answer), so every expected number is counted by hand."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from rmkit.data.schema import Message, PreferencePair
from rmkit.evaluate import judging
from rmkit.evaluate.judging import (parse_arena_hard, parse_mtbench, parse_rating, parse_vanilla)
from rmkit.evaluate.rewardbench2 import load_rewardbench2
from rmkit.score.judge import AnswerCache, Judge

FIX = Path(__file__).parents[1] / "fixtures" / "eval"


class Scripted(Judge):
    """A judge whose answer to each request is rule(messages); it records what it was asked."""

    def __init__(self, rule, tmp_path=None):
        super().__init__("scripted", 64, tmp_path / "answers.jsonl" if tmp_path else False)
        self.rule = rule
        self.asked: list = []

    def _generate(self, conversations):
        self.asked.extend(conversations)
        return [self.rule(m) for m in conversations]


def _pair(i, chosen, rejected, subset="alpacaeval-easy", prompt="Say something."):
    return PreferencePair(id=str(i), source="rb", prompt=[Message("user", prompt)],
                          chosen=[Message("assistant", chosen)], rejected=[Message("assistant", rejected)],
                          category=subset)


def _answers(user: str) -> tuple[str, str]:
    a = re.search(r"\[The Start of Assistant A's Answer\]\n(.*?)\n\[The End", user, re.S).group(1)
    b = re.search(r"\[The Start of Assistant B's Answer\]\n(.*?)\n\[The End", user, re.S).group(1)
    return a, b


def test_verdicts_are_read_as_the_official_scripts_read_them():
    assert parse_mtbench("so [[B]]") == "B" and parse_mtbench("[[B]] then [[A]]") == "A"  # A is checked first
    assert parse_mtbench("A is better") is None and parse_mtbench(None) is None
    assert parse_rating("Helpful and correct.\n\n9") == 9 and parse_rating("score: 10 ") == 10
    assert parse_rating("8/10") == 10  # reward-bench's regex takes the trailing 10
    assert parse_rating("Rating: 7.") is None and parse_rating("**8**") is None and parse_rating("11") is None
    assert parse_vanilla(" Output (a)\n") == "A>B" and parse_vanilla("Output (b)") == "B>A"
    assert parse_vanilla("Output (a) is better") is None
    assert parse_arena_hard("verdict: [[A>>B]]") == ("A>B", False)
    assert parse_arena_hard("[[A=B]]") == ("A=B", False)
    assert parse_arena_hard("[[A>B]] or maybe [[B>A]]") == (None, False)  # two labels: no retry
    assert parse_arena_hard("no label yet") == (None, True)


def test_rewardbench_both_orders_and_a_judge_that_always_says_A(tmp_path):
    pairs = [_pair(i, f"good answer {i}", f"bad {i}") for i in range(6)]
    judge = Scripted(lambda m: "Assistant A is better. [[A]]")
    res = judging.judge_rewardbench(judge, pairs, n_boot=50)
    # right whenever the chosen reply is shown first, wrong when second: 0.5 per pair
    assert [it["correct"] for it in res["items"]] == [0.5] * 6 and res["score"] == pytest.approx(0.5 / 4)
    j = res["judge"]
    assert j["picks_first"] == 1.0 and j["consistency"] == 0.0 and j["unparseable"] == 0
    assert j["orders"] == {"chosen first": {"score": pytest.approx(0.25)}, "chosen second": {"score": 0.0}}
    # the official prompt: system pair-v2, the chosen reply as A in one request and as B in the other
    assert len(judge.asked) == 12 and all(m[0]["content"] == judging.MTBENCH_SYSTEM for m in judge.asked)
    shown = [_answers(m[1]["content"]) for m in judge.asked[:2]]
    assert shown == [("good answer 0", "bad 0"), ("bad 0", "good answer 0")]


def test_rewardbench_credit_per_pair_and_the_unparseable_half():
    pairs = [_pair(0, "the longer, better answer", "short"), _pair(1, "tiny", "a much longer wrong answer"),
             _pair(2, "x", "y")]

    def longer(messages):  # picks the longer answer; says nothing parseable on pair 2
        a, b = _answers(messages[1]["content"])
        if {a, b} == {"x", "y"}:
            return "I cannot decide."
        return "[[A]]" if len(a) > len(b) else "[[B]]"

    res = judging.judge_rewardbench(Scripted(longer), pairs, n_boot=50)
    assert [it["correct"] for it in res["items"]] == [1.0, 0.0, 0.5]
    assert res["subsets"]["alpacaeval-easy"]["accuracy"] == pytest.approx(1.5 / 3)
    j = res["judge"]
    assert j["unparseable"] == 2 and j["consistency"] == 1.0 and j["picks_first"] == pytest.approx(0.5)


def test_rewardbench_two_turn_prompts_use_the_multi_turn_template_and_longer_ones_score_half():
    two = PreferencePair(id="m", source="rb", prompt=[Message("user", "Q1"), Message("assistant", "A1"),
                                                      Message("user", "Q2")],
                         chosen=[Message("assistant", "good")], rejected=[Message("assistant", "bad")],
                         category="mt-bench-easy")
    three = PreferencePair(id="l", source="rb", prompt=[Message("user", "Q1"), Message("assistant", "A1"),
                                                        Message("user", "Q2"), Message("assistant", "A2"),
                                                        Message("user", "Q3")],
                           chosen=[Message("assistant", "good")], rejected=[Message("assistant", "bad")],
                           category="mt-bench-easy")
    judge = Scripted(lambda m: "[[A]]" if "### Assistant A:\ngood" in m[1]["content"] else "[[B]]")
    res = judging.judge_rewardbench(judge, [two, three], n_boot=20)
    assert [it["correct"] for it in res["items"]] == [1.0, 0.5]
    assert len(judge.asked) == 2 and judge.asked[0][0]["content"] == judging.MTBENCH_MULTI_SYSTEM
    assert "### User:\nQ2" in judge.asked[0][1]["content"]


def test_rewardbench2_ratings_scored_as_reward_bench_scores_them():
    items = load_rewardbench2(FIX / "rewardbench2" / "sample.jsonl")
    rate = {}

    def rater(messages):  # the correct completions of the first item tie with one wrong one; the rest parse
        text = messages[0]["content"]
        completion = text.split("[Response]\n", 1)[1].split("\n\n[Your judgement]")[0]
        rate.setdefault(completion, len(rate))
        return "Fine.\n\n7" if rate[completion] < 2 else f"ok {rate[completion] % 10 + 1}."  # "." : unparseable

    judge = Scripted(rater)
    res = judging.judge_rewardbench2(judge, items, n_boot=20)
    # one request per distinct (prompt, completion): a completion repeated in the data is asked once
    distinct = {(it.subset == "Ties", it.prompt[0].content, c[-1].content) for it in items for c in it.completions}
    assert len(judge.asked) == len(distinct)
    ties = [m for m in judge.asked if "need not consider depth" in m[0]["content"]]
    assert len(ties) == sum(1 for t, _, _ in distinct if t)
    first = items[0]
    # the first two distinct completions rate 7, everything else is unparseable (-1): the first item's correct
    # completion shares the top rating with one other → 1/2
    assert first.subset == "Factuality" and res["items"][0]["credit"] == pytest.approx(0.5)
    completions = [c[-1].content for it in items for c in it.completions]
    assert res["judge"]["ratings"] == len(completions)
    assert res["judge"]["unparseable"] == sum(rate[c] >= 2 for c in completions)


def _jb_pair(i, label, chosen="right answer", rejected="wrong answer"):
    p = _pair(i, chosen, rejected, subset="Knowledge")
    p.meta = {"label": label, "source": "mmlu-pro-math"}
    return p


def test_judgebench_vanilla_both_games_and_the_vote():
    pairs = [_jb_pair(0, "A>B"), _jb_pair(1, "B>A")]

    def always_first(messages):
        return "Output (a)"

    res = judging.judge_judgebench(Scripted(always_first), pairs, n_boot=20)
    # game 1 says A>B, game 2 (reversed) says A>B, mapped back B>A: +1 −1 = 0, never right
    assert res["score"] == 0.0 and [r["decision_BA"] for r in res["items"]] == ["B>A", "B>A"]
    assert res["judge"]["picks_first"] == 1.0 and res["judge"]["consistency"] == 0.0

    def knows(messages):
        text = messages[0]["content"]
        a = text.split("# Output (a):\n", 1)[1].split("\n# Output (b):")[0]
        return "Output (a)" if a == "right answer" else "Output (b)"

    res = judging.judge_judgebench(Scripted(knows), pairs, n_boot=20)
    assert res["score"] == 1.0 and res["judge"]["consistency"] == 1.0
    single = judging.judge_judgebench(Scripted(always_first), pairs, single_game=True, n_boot=20)
    assert single["score"] == 0.5 and single["mode"] == "single game"


def test_judgebench_arena_hard_asks_once_more_when_no_label_comes():
    pairs = [_jb_pair(0, "A>B"), _jb_pair(1, "A>B")]

    def rule(messages):
        if messages[-1]["content"] == judging.ARENA_HARD_FOLLOW_UP:
            return "Then: [[B>>A]]" if "first" in messages[-2]["content"] else "nothing"
        user = messages[1]["content"]
        a = user.split("<|The Start of Assistant A's Answer|>\n", 1)[1].split("\n<|The End")[0]
        return "thinking, first" if a == "right answer" else "[[A=B]]"

    judge = Scripted(rule)
    res = judging.judge_judgebench(judge, pairs, style="arena_hard", n_boot=20)
    # game 1: no label, then B>A (wrong); game 2: a tie: −1 + 0 → wrong
    assert [r["decision_AB"] for r in res["items"]] == ["B>A", "B>A"]
    assert [r["decision_BA"] for r in res["items"]] == ["A=B", "A=B"] and res["score"] == 0.0
    assert sum(1 for m in judge.asked if len(m) == 4) == 1  # the two game-1 requests are the same: asked once
    assert judge.asked[0][0]["content"] == judging.ARENA_HARD_SYSTEM and res["judge"]["ties"] == 2


def test_answers_are_cached_so_a_rerun_asks_nothing(tmp_path):
    pairs = [_pair(i, f"good {i}", f"bad {i}") for i in range(3)]
    first = Scripted(lambda m: "[[A]]", tmp_path)
    judging.judge_rewardbench(first, pairs, n_boot=10)
    again = Scripted(lambda m: pytest.fail("asked again"), tmp_path)
    res = judging.judge_rewardbench(again, pairs, n_boot=10)
    assert again.asked == [] and res["judge"]["answers"] == {"cached": 6, "asked": 0}
    (tmp_path / "answers.jsonl").open("a").write('{"key": "torn')  # a killed write: ignored on load
    assert len(AnswerCache(tmp_path / "answers.jsonl").answers) == 6


def test_benchmarks_without_a_judge_protocol_say_so():
    from typer.testing import CliRunner

    from rmkit.cli import app

    for cmd in ("rmbench", "rmb", "pairwise"):
        args = ["eval", cmd, "--judge", "m", "--output", "x.json"] + (["--data", "d"] if cmd == "pairwise" else [])
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and "judge protocol" in " ".join(result.output.split()), cmd


def test_the_report_shows_the_judge_beside_the_scores(tmp_path):
    from rmkit.evaluate.report import write_report

    pairs = [_pair(i, f"good answer {i}", f"bad {i}") for i in range(4)]
    res = judging.judge_rewardbench(Scripted(lambda m: "[[A]]"), pairs, n_boot=20)
    summary = write_report(res, tmp_path)["summary"].read_text()
    assert "## The judge" in summary and "| picks the answer shown first | 100.0 |" in summary
    assert "| same answer in both orders | 0.0 |" in summary and (tmp_path / "sections.png").exists()


def test_rmkit_compare_takes_a_judge_beside_a_reward_model():
    from rmkit.evaluate.compare import compare_results
    from rmkit.evaluate.rewardbench import evaluate_rewardbench
    from rmkit.score.baselines import BASELINES

    pairs = [_pair(i, "a long and careful answer " * (i % 3 + 1), "short") for i in range(8)]
    judged = judging.judge_rewardbench(Scripted(lambda m: "[[A]]"), pairs, n_boot=20)  # 0.5 a pair
    length = evaluate_rewardbench(BASELINES["length"](), pairs, n_boot=20)                # right on every pair
    cmp = compare_results(length, judged, n_boot=200)
    rows = {r["name"]: r for r in cmp["rows"] + cmp["groups"]}
    assert cmp["n_common_items"] == 8 and set(rows) == {"Overall", "Chat", "alpacaeval-easy"}
    assert (rows["alpacaeval-easy"]["a"], rows["alpacaeval-easy"]["b"], rows["Chat"]["diff"]) == (1.0, 0.5, 0.5)
