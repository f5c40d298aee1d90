"""OpenRLHF 0.11.2's own reward client against `rmkit serve` on a loopback port.

    .venv/bin/python -m pytest tests/integration/test_rl_openrlhf.py -q

OpenRLHF's code runs as released: its prompt preprocessing (`datasets/prompts_dataset.py:preprocess_data`),
its `SingleTurnAgentExecutor.execute` (`utils/agent.py`: tokenize the prompt, generate, decode prompt +
response with special tokens, `_fetch_rewards_via_http` posts one query per request with no header), then
its `SamplesGenerator._process_response_into_experience` and `make_experience_batch` (every reward and
extra_logs value becomes a tensor). Only the policy's generation is scripted: a stand-in for the vLLM
engine whose `generate` returns fixed reply ids. The policy is ChatML (Qwen-style); the reward model is
the tiny Llama-style one, so the server must read the policy's template and re-render. The reward
OpenRLHF receives equals rmkit's offline reward of the same conversation (fp32, 1e-4).
"""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from conftest import needs

needs("aiohttp", "rl-clients")
agent = needs("openrlhf.utils.agent", "rl-clients")
uvicorn = needs("uvicorn", "serve")
vllm = needs("vllm", "vllm")

from openrlhf.datasets.prompts_dataset import preprocess_data  # noqa: E402
from openrlhf.trainer.ppo_utils.experience import make_experience_batch  # noqa: E402
from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator  # noqa: E402

from rmkit.score.scorer import RewardScorer  # noqa: E402
from rmkit.serve.app import create_app  # noqa: E402
from rmkit.serve.config import ServeConfig  # noqa: E402
from test_serve_http import running  # noqa: E402
from tiny import build_tokenizer  # noqa: E402

KEY = "openrlhf-test-key"
QUESTIONS = ["Jane has 12 apples. She gives 4 apples to her friend Mark. How many now?", "Hello! How are you?"]
REPLIES = ["Each gets 3 apples.", "8", "The quick brown fox.", "Sure, here is a poem about the sea."]


class ScriptedPolicy:
    """The vLLM engine's `generate`, as `SingleTurnAgentExecutor.execute` awaits it: fixed reply ids."""

    def __init__(self, replies: dict[int, list[int]]):
        self.replies = replies

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        ids = self.replies[len(prompt_token_ids)]  # which reply: chosen by the prompt's length
        out = SimpleNamespace(token_ids=ids, finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[out])


def rollouts(policy_tok, url: str, replies: list[str], n_tokens: int = 64):
    """One OpenRLHF rollout per (question, reply), run concurrently as its vLLM actors do."""
    eos = policy_tok.convert_tokens_to_ids("<|im_end|>")
    jobs = []
    for q in QUESTIONS:
        prompt, _label = preprocess_data({"input": q}, apply_chat_template=policy_tok.apply_chat_template)
        for r in replies:
            jobs.append((q, prompt, r, policy_tok(r, add_special_tokens=False)["input_ids"] + [eos]))

    async def run():
        executor = agent.SingleTurnAgentExecutor(f"{url}/k/{KEY}/get_reward")
        params = vllm.SamplingParams(max_tokens=n_tokens)
        outs = []
        for q, prompt, _r, ids in jobs:  # one engine per rollout: the reply is the engine's
            n = len(policy_tok(prompt, add_special_tokens=False)["input_ids"])
            outs.append(executor.execute(prompt, "", params, 512, policy_tok, ScriptedPolicy({n: ids})))
        return await asyncio.gather(*outs)

    return jobs, asyncio.run(run())


@pytest.fixture(scope="module")
def scorer(tiny_llama):
    return RewardScorer.from_pretrained(str(tiny_llama), device="cpu", dtype="float32")


def test_openrlhf_receives_rmkits_offline_reward_through_a_capability_url(scorer):
    policy_tok = build_tokenizer("chatml", add_bos=False)
    with running(create_app(scorer, ServeConfig(api_key=KEY, on_error_reward=-10.0))) as (url, _s, _t):
        jobs, outs = rollouts(policy_tok, url, REPLIES)
    want = [scorer.score([[{"role": "user", "content": q}, {"role": "assistant", "content": r}]])[0]
            for q, _p, r, _ids in jobs]
    got = [o["reward"] for o in outs]
    assert all(isinstance(g, list) and len(g) == 1 for g in got), got  # OpenRLHF keeps the list as sent
    assert [g[0] for g in got] == pytest.approx(want, abs=1e-4)
    assert [o["extra_logs"]["rmkit_fallback"] for o in outs] == [[0.0]] * len(jobs)
    experiences = [SamplesGenerator._process_response_into_experience(None, o, max_len=512) for o in outs]
    batch = make_experience_batch(experiences)
    assert batch.rewards.flatten().tolist() == pytest.approx(want, abs=1e-4)
    assert [t.item() for t in batch.info["rmkit_unparsed"]] == [0.0] * len(jobs)  # one tensor per sample


def test_a_sample_rmkit_cannot_score_reaches_openrlhf_as_the_fallback(tiny_llama):
    short = RewardScorer.from_pretrained(str(tiny_llama), device="cpu", dtype="float32", max_length=48)
    policy_tok = build_tokenizer("chatml", add_bos=False)
    long = "The quick brown fox jumps over the lazy dog. " * 8
    with running(create_app(short, ServeConfig(api_key=KEY, on_error_reward=-10.0))) as (url, _s, _t):
        jobs, outs = rollouts(policy_tok, url, ["8", long])
    rewards = [o["reward"][0] for o in outs]
    assert rewards[1] == rewards[3] == -10.0 and all(r != -10.0 for r in (rewards[0], rewards[2]))
    assert [o["extra_logs"]["rmkit_too_long"][0] for o in outs] == [0.0, 1.0, 0.0, 1.0]
    batch = make_experience_batch([SamplesGenerator._process_response_into_experience(None, o, max_len=512)
                                   for o in outs])  # no None reaches torch.tensor: the batch forms
    assert batch.rewards.flatten().tolist()[1] == -10.0
