"""rmkit's reward function for RL loops (TRL, verl): the rewards `rmkit score` gives offline, a prompt's
completions scored as one shared group, failures reported (never a silent 0), optional normalisation.

    .venv/bin/python -m pytest tests/unit/test_rl_rewards.py -q
"""
from __future__ import annotations

import json
import logging
import shutil

import pytest

from rmkit.evaluate.calibrate import reward_stats
from rmkit.score.calibration import read_reward_stats
from rmkit.integrations import verl
from rmkit.integrations.rewards import RewardError, prompt_groups, Sample
from rmkit.integrations.trl import reward_function
from rmkit.score.scorer import RewardScorer

LONG = "Jane has 12 apples. She gives 4 apples to her friend Mark, then buys 1 more apple. How many now?"
P1 = [{"role": "user", "content": LONG}]
P2 = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hello!"}]
CALL = {"type": "function", "function": {"name": "count_apples", "arguments": {"n": 12}}}
REPLIES = ["Each gets 3 apples.", "The quick brown fox.", "Sure, here is a poem about the sea.", "9"]


def grpo_batch(g: int = 3):
    """TRL's layout: each prompt repeated G times in a row, conversational completions."""
    prompts = [P1] * g + [P2] * g
    completions = [[{"role": "assistant", "content": REPLIES[i % len(REPLIES)]}] for i in range(2 * g)]
    return prompts, completions


@pytest.fixture(scope="module")
def scorer(tiny_llama):
    return RewardScorer.from_pretrained(str(tiny_llama), device="cpu", dtype="float32")


def offline(scorer, prompts, completions):
    return [scorer.score([p + c])[0] for p, c in zip(prompts, completions)]  # each conversation alone


def test_trl_shape_equals_offline_and_shares_each_prompt(scorer):
    fn = reward_function(scorer, name="rm")
    prompts, completions = grpo_batch()
    before = scorer.stats["shared_groups"]
    logged = []
    got = fn(prompts=prompts, completions=completions, completion_ids=[[1]] * 6, trainer_state=None,
             log_metric=lambda k, v: logged.append((k, v)), log_extra=lambda *a: None)
    assert fn.__name__ == "rm" and len(got) == 6
    assert got == pytest.approx(offline(scorer, prompts, completions), abs=1e-5)
    assert scorer.stats["shared_groups"] - before == 2  # one group per prompt: each prompt ran once
    assert logged == [("rm/unscored", 0.0)] and fn.stats["samples"] == 6 and fn.stats["failed"] == 0
    order = [0, 3, 1, 4, 2, 5]  # interleaved prompts: grouped by content, same rewards
    again = fn([prompts[i] for i in order], [completions[i] for i in order])
    assert again == pytest.approx([got[i] for i in order], abs=1e-5)


def test_plain_text_prompts_chat_and_raw(scorer):
    prompts, replies = [LONG, LONG, "Hi"], ["Each gets 3 apples.", "9", "Hello!"]
    chat = reward_function(scorer)(prompts, replies)
    want = [scorer.score([[{"role": "user", "content": p}, {"role": "assistant", "content": c}]])[0]
            for p, c in zip(prompts, replies)]
    assert chat == pytest.approx(want, abs=1e-5)
    raw = reward_function(scorer, text="raw")(prompts, replies)
    assert raw == pytest.approx(scorer.score_texts([p + c for p, c in zip(prompts, replies)]), abs=1e-5)
    with pytest.raises(ValueError, match="text must be"):
        reward_function(scorer, text="html")


def test_a_sample_that_cannot_be_scored_raises_or_gets_the_asked_reward(tiny_llama, caplog):
    sc = RewardScorer.from_pretrained(str(tiny_llama), device="cpu", max_length=100, truncation="skip")
    prompts = [P1, P1, P1, [{"role": "user", "content": "Hi"}]]
    completions = [[{"role": "assistant", "content": "Each gets 3 apples."}],
                   [{"role": "assistant", "content": LONG * 3}],               # over max_length: skipped
                   [{"role": "assistant", "content": "", "tool_calls": [CALL]}],  # the template drops tool_calls
                   [{"role": "assistant", "content": "Hello!"}]]
    with pytest.raises(RewardError) as e:
        reward_function(sc)(prompts, completions)
    assert sorted(e.value.failures) == [1, 2]
    assert "max_length=100" in e.value.failures[1] and "drops tool_calls" in e.value.failures[2]
    with caplog.at_level(logging.WARNING, logger="rmkit"):
        got = reward_function(sc, on_error=-5.0)(prompts, completions)
    assert got[1] == got[2] == -5.0 and "2 of 4 samples could not be scored" in caplog.text
    ok = [0, 3]
    assert [got[i] for i in ok] == pytest.approx(offline(sc, [prompts[i] for i in ok], [completions[i] for i in ok]),
                                                 abs=1e-5)
    assert reward_function(sc, on_error=None)(prompts, completions)[1:3] == [None, None]  # TRL masks these out
    with pytest.raises(ValueError, match="on_error"):
        reward_function(sc, on_error="zero")


def test_normalisation_from_calibration_json_beside_the_model(tiny_llama, tmp_path, scorer):
    model = tmp_path / "rm"
    shutil.copytree(tiny_llama, model)
    prompts, completions = grpo_batch(2)
    raw = reward_function(scorer)(prompts, completions)
    with pytest.raises(FileNotFoundError, match="rmkit calibrate"):
        reward_function(str(model), device="cpu", normalize=True)
    (model / "calibration.json").write_text(json.dumps({"temperature": 1.0, "reward_mean": 1.5, "reward_std": 2.0}))
    got = reward_function(str(model), device="cpu", normalize=True)(prompts, completions)
    assert got == pytest.approx([(r - 1.5) / 2.0 for r in raw], abs=1e-5)
    explicit = reward_function(scorer, normalize=(1.5, 2.0))(prompts, completions)
    assert explicit == pytest.approx(got, abs=1e-6)
    assert reward_function(scorer, normalize=str(model / "calibration.json"))(prompts, completions) == \
        pytest.approx(got, abs=1e-6)
    with pytest.raises(FileNotFoundError):
        reward_function(scorer, normalize=True)  # the fixture's folder holds no calibration.json
    from tiny import build_model, build_tokenizer

    tok = build_tokenizer("llama3")
    with pytest.raises(ValueError, match="normalize=True"):  # built in memory: no folder to read from
        reward_function(RewardScorer(build_model("llama", tok), tok), normalize=True)
    with pytest.raises(ValueError, match="positive std"):
        reward_function(scorer, normalize={"mean": 0.0, "std": 0.0})


def test_reward_stats_by_hand(tmp_path):
    assert reward_stats([1.0, 3.0, float("nan")]) == {"mean": 2.0, "std": 1.0, "n": 2}
    (tmp_path / "calibration.json").write_text(json.dumps({"temperature": 2.0}))
    with pytest.raises(ValueError, match="reward_mean"):
        read_reward_stats(tmp_path)


def test_prompt_groups_keep_first_seen_order():
    samples = [Sample("a", "1"), Sample([{"role": "user", "content": "a"}], "2"), Sample("a", "3"),
               Sample([{"role": "user", "content": "a"}], "4")]
    assert prompt_groups(samples) == [[0, 2], [1, 3]]


def test_verl_compute_score_by_keyword_from_a_thread_pool(tiny_llama, scorer, monkeypatch):
    """verl's NaiveRewardManager calls compute_score by keyword, one rollout per call, from its loop's
    thread pool (reward_loop/reward_manager/naive.py:66-84): one model per process, the calls gathered."""
    from concurrent.futures import ThreadPoolExecutor

    from rmkit.integrations import sources

    loads = []
    real_open = sources.open_source
    monkeypatch.setattr(verl, "open_source", lambda *a, **k: loads.append(1) or real_open(*a, **k))
    monkeypatch.setattr(verl, "_CACHE", {})
    sols = ["Each gets 3 apples.", "9", "The quick brown fox.", "Sure, here is a poem about the sea."] * 2
    infos = [{"prompt": P1} if i < 4 else {"question": "Hello!"} for i in range(8)]
    want = [scorer.score([(P1 if i < 4 else [{"role": "user", "content": "Hello!"}])
                          + [{"role": "assistant", "content": s}]])[0] for i, s in enumerate(sols)]
    kw = {"model": str(tiny_llama), "device": "cpu", "dtype": "float32", "batch_window_ms": 50}
    call = lambda i: verl.compute_score(data_source="d", solution_str=sols[i], ground_truth=None,  # noqa: E731
                                        extra_info={**infos[i], "num_turns": None}, **kw)
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(call, range(8)))
    assert [g["score"] for g in got] == pytest.approx(want, abs=1e-5)
    assert all(g["rmkit_raw"] == g["score"] and g["rmkit_unscored"] == 0.0 for g in got)
    assert len(loads) == 1  # six threads arrived at once: one model
    (gather, _), = verl._CACHE.values()
    assert gather.calls < 8  # concurrent calls scored together


def test_verl_compute_score_reads_a_templated_prompt_and_reports_failures(tiny_llama, scorer):
    kw = {"model": str(tiny_llama), "device": "cpu", "dtype": "float32"}
    chatml = "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"  # a Qwen policy's rendered prompt
    got = verl.compute_score(data_source="d", solution_str="Hi", ground_truth=None,
                             extra_info={"question": chatml}, **kw)
    want = scorer.score([[{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi"}]])[0]
    assert got["score"] == pytest.approx(want, abs=1e-5)
    with pytest.raises(RewardError, match="extra_info holds no prompt"):
        verl.compute_score(data_source="d", solution_str="x", ground_truth=None, extra_info={"index": 3}, **kw)
    flagged = verl.compute_score(data_source="d", solution_str="x", extra_info={"index": 3}, on_error=-3.0, **kw)
    assert flagged == {"score": -3.0, "rmkit_raw": -3.0, "rmkit_unscored": 1.0}
    with pytest.raises(TypeError, match="exactly one"):
        verl.compute_score(data_source="d", solution_str="x", extra_info={"prompt": P1})
    with pytest.raises(ValueError, match="verl needs a number"):
        verl.compute_score(data_source="d", solution_str="x", extra_info={"prompt": P1}, on_error=None, **kw)


def test_rmkit_calibrate_save_stores_the_stats_normalize_reads(tiny_llama, tmp_path, monkeypatch):
    import sys

    from rmkit import cli

    model = tmp_path / "rm"
    shutil.copytree(tiny_llama, model)
    pairs = [{"prompt": f"Question {i}: {LONG}", "chosen": REPLIES[i % 4], "rejected": REPLIES[(i + 1) % 4]}
             for i in range(8)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    monkeypatch.setattr(sys, "argv", ["rmkit", "calibrate", "--model", str(model), "--data", str(data), "--save",
                                      "--output", str(tmp_path / "calib.json"), "--device", "cpu",
                                      "--dtype", "float32"])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 0
    sc = RewardScorer.from_pretrained(str(model), device="cpu")
    from rmkit.data import load_pairs

    stats = reward_stats([x for pair in sc.score_pairs(load_pairs(str(data))) for x in pair])
    assert read_reward_stats(model) == pytest.approx((stats["mean"], stats["std"]), abs=1e-6)
    prompts, completions = grpo_batch(2)
    raw = reward_function(sc)(prompts, completions)
    got = reward_function(sc, normalize=True)(prompts, completions)  # loaded from the folder: reads it
    assert got == pytest.approx([(r - stats["mean"]) / stats["std"] for r in raw], abs=1e-4)


def test_async_reward_function_gives_the_same_rewards(scorer):
    import asyncio

    from trl.trainer.utils import is_async_callable  # how TRL 1.16 decides to await a reward function

    prompts, completions = grpo_batch()
    fn = reward_function(scorer, name="rm_async", asynchronous=True)
    assert is_async_callable(fn) and fn.__name__ == "rm_async"
    got = asyncio.run(fn(prompts=prompts, completions=completions, trainer_state=None))
    assert got == pytest.approx(offline(scorer, prompts, completions), abs=1e-5)


def test_reward_functions_pickle_and_reload_in_the_child(tiny_llama, scorer):
    import pickle

    prompts, completions = grpo_batch(2)
    fn = reward_function(str(tiny_llama), device="cpu", dtype="float32", name="rm")
    want = fn(prompts, completions)
    clone = pickle.loads(pickle.dumps(fn))  # what AsyncGRPOTrainer does to send it to its reward worker
    assert clone._source is None and clone.__name__ == "rm"
    assert clone(prompts, completions) == pytest.approx(want, abs=1e-6)
    remote = reward_function("http://127.0.0.1:9/", api_key="k", asynchronous=True)
    copy = pickle.loads(pickle.dumps(remote))  # no live httpx client travels
    assert copy.fn.source.url == "http://127.0.0.1:9" and copy.fn.source.headers == {"Authorization": "Bearer k"}


def test_none_beside_other_reward_functions_is_warned_and_drop_unscored_keeps_the_row_out(tiny_llama):
    from rmkit.integrations.trl import drop_unscored

    sc = RewardScorer.from_pretrained(str(tiny_llama), device="cpu", max_length=100, truncation="skip")
    with pytest.warns(UserWarning, match="counts as 0 in TRL's sum"):
        rm = reward_function(sc, on_error=None)
    calls = []

    def length(prompts, completions, **kw):
        calls.append(len(prompts))
        return [float(len(c[0]["content"])) for c in completions]

    prompts = [P1, P1, P1]
    completions = [[{"role": "assistant", "content": x}] for x in ("9", LONG * 3, "Each gets 3 apples.")]
    funcs = drop_unscored(rm, length)
    before = sc.stats["scored"]
    other = funcs[1](prompts=prompts, completions=completions)  # TRL may call either first
    mine = funcs[0](prompts=prompts, completions=completions)
    assert mine[1] is None and other[1] is None  # every function None: TRL's unscorable_mask drops the row
    assert other[0] == 1.0 and mine[0] is not None and sc.stats["scored"] - before == 2  # scored once
    with pytest.raises(ValueError, match="on_error=None"):
        drop_unscored(reward_function(sc), length)


def test_auto_device_is_this_ranks_gpu(monkeypatch):
    import torch

    from rmkit.models.load import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("auto") == "cuda:3" and resolve_device("cpu") == "cpu"
    monkeypatch.delenv("LOCAL_RANK")
    assert resolve_device("auto") == "cuda"
