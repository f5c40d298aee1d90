"""SmolLM2-135M-Instruct (the embedded chat model) as a generative judge on real RewardBench pairs, run here
by transformers: every request answered, the official rule applied to what it says, and a rerun answered
from the cache. (vLLM and an OpenAI-compatible endpoint: tests/integration/test_judge_endpoint.py.)"""
from __future__ import annotations

import pytest

from rmkit.evaluate import judging
from rmkit.evaluate.rewardbench import load_rewardbench
from rmkit.score.judge import HFJudge

pytestmark = pytest.mark.slow


def test_smollm2_judges_real_rewardbench_pairs_by_the_official_rule(shared_data, tmp_path):
    pairs = load_rewardbench(subsample=3, seed=0)
    judge = HFJudge("smollm2-135m-instruct", max_tokens=24, cache=tmp_path / "answers.jsonl", batch_size=6)
    res = judging.judge_rewardbench(judge, pairs, n_boot=50)
    assert judge.stats["asked"] == 2 * len(pairs) and len(judge.cache.answers) == 2 * len(pairs)
    # each pair's credit is the mean of its two orders, each 1 / 0 / 0.5 by what the verdict says
    for it in res["items"]:
        games = [0.5 if v is None else float(v == want) for v, want in
                 ((it["verdict_chosen_first"], "A"), (it["verdict_chosen_second"], "B"))]
        assert it["correct"] == pytest.approx(sum(games) / 2)
    j = res["judge"]
    assert j["unparseable"] + j["verdicts"] == 2 * len(pairs) and j["failed_requests"] == 0
    assert 0 <= res["score"] <= 1 and res["model"] == "smollm2-135m-instruct"
    again = HFJudge.__new__(HFJudge)  # the same judge reloaded: every answer from the cache, the same numbers
    again.__dict__.update(judge.__dict__, stats={})
    again._generate = lambda convs: pytest.fail("asked again")
    rerun = judging.judge_rewardbench(again, pairs, n_boot=50)
    assert rerun["items"] == res["items"] and again.stats == {"cached": 2 * len(pairs), "asked": 0}
