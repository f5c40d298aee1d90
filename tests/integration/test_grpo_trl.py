"""A real RL loop: TRL's GRPOTrainer trains a tiny random Llama policy for 2 steps on CPU with rmkit's
reward function, locally and through `rmkit serve` on a loopback port; the rewards TRL logs for the
completions it sampled are the rewards rmkit gives those conversations offline.

    .venv/bin/python -m pytest tests/integration/test_grpo_trl.py -q
"""
from __future__ import annotations

from contextlib import contextmanager

import pytest

pytestmark = pytest.mark.slow  # TRL GRPO training runs: `pytest -m 'not slow'` skips it, `make test` runs it

from conftest import needs

trl = needs("trl", "rl")
uvicorn = needs("uvicorn", "serve")

from rmkit.integrations.trl import reward_function  # noqa: E402
from rmkit.score.scorer import RewardScorer  # noqa: E402
from rmkit.serve.app import create_app  # noqa: E402
from rmkit.serve.config import ServeConfig  # noqa: E402
from test_serve_http import running  # noqa: E402
from tiny import build_tokenizer  # noqa: E402

TOPICS = ["apples", "the sea", "a fox", "numbers"]
G = 2


class Recorder:
    """The reward function TRL calls, recording each call's completions and rewards."""

    def __init__(self, fn):
        self.fn, self.__name__, self.calls = fn, fn.__name__, []

    def __call__(self, prompts, completions, **kwargs):
        rewards = self.fn(prompts, completions, **kwargs)
        self.calls.append((prompts, completions, rewards))
        return rewards


class AsyncRecorder(Recorder):
    """The same for an async reward function: TRL awaits it (`is_async_callable`)."""

    async def __call__(self, prompts, completions, **kwargs):
        rewards = await self.fn(prompts, completions, **kwargs)
        self.calls.append((prompts, completions, rewards))
        return rewards


@contextmanager
def serving(scorer, api_key: str):
    """rmkit serve on a free loopback port (the serve tests' own `running`), its base URL."""
    with running(create_app(scorer, ServeConfig(api_key=api_key))) as (url, _server, _thread):
        yield url


def train_grpo(reward, tmp_path, conversational: bool):
    import torch
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer("llama3")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    policy = LlamaForCausalLM(cfg)
    prompts = [f"Tell me about {t}." for t in TOPICS]
    ds = Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in prompts] if conversational
                            else prompts})
    args = trl.GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=4, num_generations=G,
                          max_completion_length=8, max_steps=2, use_cpu=True, bf16=False, report_to="none",
                          logging_steps=1, save_strategy="no", seed=0, dataloader_num_workers=0)
    trainer = trl.GRPOTrainer(model=policy, reward_funcs=reward, args=args, train_dataset=ds, processing_class=tok)
    trainer.train()
    return trainer


def check_logged_rewards_are_offline(trainer, rec: Recorder, scorer, conversational: bool):
    name = rec.__name__

    def alone(p, c):
        conv = p + c if conversational else [{"role": "user", "content": p}, {"role": "assistant", "content": c}]
        return scorer.score([conv])[0]

    assert len(rec.calls) == 2  # one generation batch per step, G completions of each prompt
    steps = [h for h in trainer.state.log_history if f"rewards/{name}/mean" in h]
    assert len(steps) == 2, f"TRL logged no rewards/{name}/mean per step: {trainer.state.log_history}"
    for (prompts, completions, rewards), logged in zip(rec.calls, steps, strict=True):
        assert len(prompts) == 4 and len(set(map(str, prompts))) == 4 // G
        want = [alone(p, c) for p, c in zip(prompts, completions)]
        assert rewards == pytest.approx(want, abs=1e-4)
        assert logged[f"rewards/{name}/mean"] == pytest.approx(sum(want) / len(want), abs=1e-4)
        assert logged[f"{name}/unscored"] == 0.0
    # TRL's own per-completion log (the last generation batch): prompt, completion, reward
    logs = trainer._logs
    got = list(logs["rewards"][name])
    want = [alone(p, c) for p, c in zip(logs["prompt"], logs["completion"])]
    assert len(got) == 4 and got == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("conversational", [True, False], ids=["conversational", "plain-text"])
def test_grpo_two_steps_with_the_local_reward_function(tiny_llama, tmp_path, conversational):
    scorer = RewardScorer.from_pretrained(str(tiny_llama), device="cpu", dtype="float32")
    rec = Recorder(reward_function(scorer, name="rmkit"))
    trainer = train_grpo(rec, tmp_path, conversational)
    check_logged_rewards_are_offline(trainer, rec, scorer, conversational)
    assert scorer.stats["shared_groups"] >= 2 * (4 // G)  # every prompt's G completions: the prompt once


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_grpo_two_steps_through_rmkit_serve(tiny_llama, tmp_path, asynchronous):
    scorer = RewardScorer.from_pretrained(str(tiny_llama), device="cpu", dtype="float32")
    offline = RewardScorer.from_pretrained(str(tiny_llama), device="cpu", dtype="float32")
    with serving(scorer, api_key="grpo-key") as url:
        fn = reward_function(url, api_key="grpo-key", timeout=60, retries=1, name="rmkit_remote",
                             asynchronous=asynchronous)
        rec = (AsyncRecorder if asynchronous else Recorder)(fn)
        trainer = train_grpo(rec, tmp_path, conversational=True)
    check_logged_rewards_are_offline(trainer, rec, offline, conversational=True)
    source = (rec.fn.fn if asynchronous else rec.fn).source
    assert source.requests == 2  # one request per step: 4 conversations, 2 prompts x G


def _score_in_child(fn, prompts, completions, out) -> None:
    """AsyncGRPOTrainer's reward worker, reduced to what rmkit meets there: a spawned process with CUDA
    hidden (trl/experimental/async_grpo/async_rollout_worker.py:_scrub_child_env) calling the unpickled
    reward function."""
    import os

    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    out.put(fn(prompts=prompts, completions=completions))


def test_the_reward_function_runs_in_a_spawned_child(tiny_llama):
    import multiprocessing as mp

    fn = reward_function(str(tiny_llama), device="cpu", dtype="float32", name="rmkit")
    prompts = [[{"role": "user", "content": f"Tell me about {t}."}] for t in TOPICS[:2] for _ in range(G)]
    completions = [[{"role": "assistant", "content": f"Reply {i}."}] for i in range(len(prompts))]
    want = fn(prompts, completions)
    ctx = mp.get_context("spawn")  # as AsyncRolloutWorker: every reward function is pickled to the child
    out = ctx.Queue()
    child = ctx.Process(target=_score_in_child, args=(fn, prompts, completions, out))
    child.start()
    got = out.get(timeout=240)
    child.join(timeout=60)
    assert child.exitcode == 0 and got == pytest.approx(want, abs=1e-6)
