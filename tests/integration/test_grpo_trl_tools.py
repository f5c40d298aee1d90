"""TRL 1.16's GRPOTrainer with tools in the rollout and two reward functions, rmkit's among them.

    .venv/bin/python -m pytest tests/integration/test_grpo_trl_tools.py -q

TRL's own tool loop runs (`_tool_call_loop`: parse the tool call with the Qwen response schema TRL sets,
call the tool, render its result, generate again); only the policy's sampling is scripted
(`_generate_single_turn` returns fixed ids: a tool call for even rollouts, a plain answer for odd ones),
since a random tiny policy never writes a valid tool call. The reward functions then receive TRL's
tool-rollout completions: an assistant `tool_calls` turn, a `tool` message, the final answer.
- A reward model whose chat template renders tools (TRL's Qwen2.5 template): rmkit's rewards are the
  offline rewards of the whole conversation, tool turns included (fp32, 1e-4).
- A reward model whose template drops tool_calls (the tiny Llama-style one): those completions cannot be
  scored; under `drop_unscored` every reward function answers None for them, and TRL leaves them out of
  the advantage (advantage 0, reward NaN in its logs) instead of summing the other function with a 0.
"""
from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.slow  # TRL GRPO training runs: `pytest -m 'not slow'` skips it, `make test` runs it

from conftest import needs

trl = needs("trl", "rl")

from rmkit.integrations.trl import drop_unscored, reward_function  # noqa: E402
from rmkit.score.scorer import RewardScorer  # noqa: E402
from test_grpo_trl import Recorder  # noqa: E402
from tiny import build_tokenizer, save_tiny_model  # noqa: E402

CALL = '<tool_call>\n{"name": "count_apples", "arguments": {"n": 12}}\n</tool_call>'
QUESTIONS = ["How many apples does Jane have?", "How many apples are left?"]


def count_apples(n: int) -> int:
    """Count the apples after one more is bought.

    Args:
        n: apples before
    """
    return n + 1


def apples_mentioned(prompts, completions, **kwargs):
    """A second reward function: 1.0 when the final answer names apples."""
    return [float("apples" in c[-1].get("content", "")) for c in completions]


def qwen_tokenizer():
    from trl.chat_template_utils import qwen2_5_chat_template

    tok = build_tokenizer("chatml", add_bos=False)
    tok.chat_template = qwen2_5_chat_template  # renders tool calls and tool results
    return tok


def train_with_tools(reward_funcs, tmp_path):
    import torch
    from datasets import Dataset
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = qwen_tokenizer()
    end = tok.convert_tokens_to_ids("<|im_end|>")
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      pad_token_id=tok.pad_token_id, eos_token_id=end)
    torch.manual_seed(0)
    ds = Dataset.from_dict({"prompt": [[{"role": "user", "content": q}] for q in QUESTIONS]})
    args = trl.GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=4, num_generations=2,
                          max_completion_length=256, max_steps=1, use_cpu=True, bf16=False, report_to="none",
                          logging_steps=1, save_strategy="no", seed=0, dataloader_num_workers=0)
    trainer = trl.GRPOTrainer(model=Qwen2ForCausalLM(cfg), reward_funcs=reward_funcs, args=args, train_dataset=ds,
                              processing_class=tok, tools=[count_apples])
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"] + [end]  # noqa: E731

    def scripted(prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if num_generations == 1:  # TRL's call after a tool result: the final answer
            return [ids("There are 13 apples.") for _ in prompt_ids], None
        return [ids(CALL if i % 2 == 0 else "Twelve.") for i in range(len(prompt_ids))], None

    trainer._generate_single_turn = scripted
    trainer.train()
    return trainer


def test_grpo_with_tools_and_two_reward_functions_gets_offline_rewards(tmp_path):
    rm = save_tiny_model(tmp_path / "rm", "qwen2", tok=qwen_tokenizer())
    scorer = RewardScorer.from_pretrained(str(rm), device="cpu", dtype="float32")
    rec = Recorder(reward_function(scorer, name="rmkit"))
    trainer = train_with_tools([rec, apples_mentioned], tmp_path)
    (prompts, completions, rewards), = rec.calls
    assert [len(c) for c in completions] == [3, 1, 3, 1]  # tool call, tool result, answer | plain answer
    assert completions[0][1] == {"role": "tool", "name": "count_apples", "content": "13"}
    want = [scorer.score([p + c])[0] for p, c in zip(prompts, completions)]
    assert rewards == pytest.approx(want, abs=1e-4)
    assert trainer._logs["rewards"]["rmkit"] == pytest.approx(want, abs=1e-4)
    assert list(trainer._logs["rewards"]["apples_mentioned"]) == [1.0, 0.0, 1.0, 0.0]


def test_rows_the_reward_model_cannot_render_are_left_out_of_the_advantage(tiny_llama, tmp_path):
    scorer = RewardScorer.from_pretrained(str(tiny_llama), device="cpu", dtype="float32")  # drops tool_calls
    with pytest.warns(UserWarning, match="counts as 0"):
        rm = reward_function(scorer, name="rmkit", on_error=None)
    trainer = train_with_tools(drop_unscored(rm, apples_mentioned), tmp_path)
    logs = trainer._logs
    got = list(logs["rewards"]["rmkit"])
    assert all(math.isnan(got[i]) for i in (0, 2)) and all(math.isnan(logs["rewards"]["apples_mentioned"][i])
                                                           for i in (0, 2))
    assert [logs["advantages"][i] for i in (0, 2)] == [0.0, 0.0]  # TRL's unscorable rows: no learning signal
    want = [scorer.score([logs["prompt"][i] + logs["completion"][i]])[0] for i in (1, 3)]
    assert [got[i] for i in (1, 3)] == pytest.approx(want, abs=1e-4)
    assert rm.stats["failed"] == 2
