"""verl 0.9.1's own reward path on CPU, driving rmkit's custom reward function: the trainer config Hydra
composes from verl's ppo_trainer.yaml, verl's loader (`load_reward_manager` -> `get_custom_reward_fn` ->
`load_extern_object`), verl's NaiveRewardManager decoding the rollout's token ids and calling
`compute_score` by keyword from its thread pool, 2 prompts x G=4 rollouts awaited together on one event
loop as verl's reward loop does. The reward verl receives is the reward rmkit gives the same conversation
offline.

    .venv/bin/python -m pytest tests/integration/test_rl_verl.py -q

verl's wheel asks for torch 2.11 and transformers <5.11, so it goes in with --no-deps, beside rmkit[ray]
(ray 2.60.0: `import verl` imports ray), with only what its reward path imports:

    pip install --no-deps verl==0.9.1
    pip install --no-deps tensordict==0.10.0 pyvers==0.1.0    # tensordict's _C links no torch; pyvers pins packaging<26
    pip install hydra-core==1.3.8 codetiming==1.4.0 aiohttp==3.14.5
"""
from __future__ import annotations

import asyncio
import math
from collections import defaultdict

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # verl's Hydra config and reward loop: `pytest -m 'not slow'` skips it, `make test` runs it
import torch

from conftest import needs

verl = needs("verl", "rl-clients")
hydra = needs("hydra", "rl-clients")

from hydra import compose, initialize_config_module  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.experimental.reward_loop import RewardLoopWorker  # noqa: E402
from verl.experimental.reward_loop.reward_manager import NaiveRewardManager  # noqa: E402
from verl.trainer.ppo.reward import get_custom_reward_fn, load_reward_manager  # noqa: E402
from verl.utils.dataset.rl_dataset import collate_fn  # noqa: E402

import rmkit.integrations.verl as rmkit_verl  # noqa: E402
from rmkit.score.scorer import RewardScorer  # noqa: E402
from tiny import build_tokenizer  # noqa: E402

G = 4
LONG = "Jane has 12 apples. She gives 4 apples to her friend Mark, then buys 1 more apple. How many now?"
P1 = [{"role": "user", "content": LONG}]
P2 = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hello!"}]
REPLIES = {  # G per prompt; unicode and odd spacing go through the policy tokenizer's byte-level BPE
    0: ["Each gets 3 apples.", "9", "Jane keeps 9 apples and Mark has 4.", "Каждый получит 3 яблока 🍎"],
    1: ["Hello! How can I help you today?", "Sure, here is a poem about the sea and the sky.",
        "def main(): return 42", "  two leading spaces,\ta tab\nand a new line"],
}
FN_PATH = rmkit_verl.__file__


def verl_config(*overrides: str):
    """verl's trainer config as `python -m verl.trainer.main_ppo k=v ...` builds it: @hydra.main(config_path=
    "config", config_name="ppo_trainer") (verl/trainer/main_ppo.py:166) composes ppo_trainer.yaml and its
    defaults list (verl/trainer/config/ppo_trainer.yaml:8-37, reward@reward: reward/reward.yaml at :37) from
    the installed package; offline, no Ray."""
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        return compose(config_name="ppo_trainer", overrides=list(overrides))


def rmkit_overrides(model, *, path: str = FN_PATH, policy=None) -> list[str]:
    over = [
        # verl/trainer/config/reward/reward.yaml:11 (default null); read at verl/trainer/ppo/reward.py:70-71
        f"reward.custom_reward_function.path='{path}'",
        # reward/reward.yaml:13; read at ppo/reward.py:75 and loaded by load_extern_object (:79)
        "reward.custom_reward_function.name=compute_score",
        # not in reward/reward.yaml, so Hydra needs '+' (without it: "Could not override ... To append to
        # your config use +..."); read at ppo/reward.py:81 and merged over every call's kwargs (:32-38)
        f"+reward.custom_reward_function.reward_kwargs.model='{model}'",
        # the offline reference below runs on the CPU (device="auto" would pick a GPU where there is one)
        "+reward.custom_reward_function.reward_kwargs.device=cpu",
        # reward/reward.yaml:18-19 (these are the defaults; set as the docs set them); ppo/reward.py:91-94
        "reward.reward_manager.source=register",
        "reward.reward_manager.name=naive",
    ]
    # model/hf_model.yaml:10: the policy tokenizer RewardLoopWorker decodes with (reward_loop.py:121-125)
    if policy is not None:
        over.append(f"actor_rollout_ref.model.path='{policy}'")
    return over


@pytest.fixture(scope="module")
def scorer(tiny_llama):
    return RewardScorer.from_pretrained(str(tiny_llama), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def policy_tok():
    return build_tokenizer("llama3")


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory, policy_tok):
    path = tmp_path_factory.mktemp("policy-tokenizer")
    policy_tok.save_pretrained(path)
    return path


def offline(scorer, prompt, reply) -> float:
    return scorer.score([prompt + [{"role": "assistant", "content": reply}]])[0]


def dataset_batch(prompt_key: str = "prompt") -> DataProto:
    """What verl's RLHFDataset.__getitem__ (verl/utils/dataset/rl_dataset.py:386-411) gives for 2 parquet rows
    that carry the prompt in extra_info, collated by verl's collate_fn (:41-69) and repeated G times
    interleaved as the trainer does before rollout (verl/trainer/ppo/ray_trainer.py:1491)."""
    rows = []
    for i, prompt in enumerate([P1, P2]):
        extra = {"split": "train", "index": i}
        extra[prompt_key] = prompt if prompt_key != "question" else prompt[-1]["content"]
        rows.append({"data_source": "rmkit/chat", "prompt": prompt, "ability": "chat",
                     "reward_model": {"style": "model", "ground_truth": ""}, "extra_info": extra,
                     "raw_prompt": prompt, "dummy_tensor": torch.tensor([0], dtype=torch.uint8), "index": i,
                     "tools_kwargs": {}, "interaction_kwargs": {}})
    return DataProto.from_single_dict(collate_fn(rows)).repeat(repeat_times=G, interleave=True)


def response_ids(tok, reply: str, k: int) -> list[int]:
    """A sampled reply as the policy emits it: the text's tokens, then the end of turn and/or EOS (special
    tokens, which NaiveRewardManager's decode(skip_special_tokens=True) drops)."""
    ids = tok(reply, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == reply, "the policy tokenizer does not round-trip the reply"
    ends = [[tok.eos_token_id], [tok.convert_tokens_to_ids("<|end|>"), tok.eos_token_id]]
    return ids + ends[k % 2]


def prompt_ids(tok, messages) -> list[int]:
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def agent_loop_item(tok, kwargs: dict, reply_ids: list[int]) -> DataProto:
    """The one-rollout DataProto verl's agent loop sends its reward loop worker
    (_compute_score, verl/experimental/agent_loop/agent_loop.py:967-1026): unpadded
    prompt + response, attention_mask all ones, the dataset row's fields as non-tensor entries."""
    prompts = torch.tensor(prompt_ids(tok, kwargs["raw_prompt"]), dtype=torch.int64)
    responses = torch.tensor(reply_ids, dtype=torch.int64)
    input_ids = torch.cat([prompts, responses])
    batch = TensorDict({"prompts": prompts[None], "responses": responses[None], "input_ids": input_ids[None],
                        "attention_mask": torch.ones_like(input_ids)[None],
                        "position_ids": torch.arange(len(input_ids))[None]}, batch_size=1)
    non_tensor = {k: np.fromiter([v], dtype=object, count=1) for k, v in kwargs.items()}
    non_tensor.update({"__num_turns__": np.array([2]), "tool_extra_fields": np.fromiter([{}], dtype=object, count=1),
                       "prompt_len": np.array([len(prompts)]), "response_len": np.array([len(responses)])})
    return DataProto(batch=batch, non_tensor_batch=non_tensor)


def padded_rollout(tok, gen: DataProto, replies: list[list[int]], prompt_length: int = 128,
                   response_length: int = 96) -> DataProto:
    """The rollout batch after verl's agent loop post-processing (agent_loop.py:753-780): prompts left-padded,
    responses right-padded with the pad token, attention_mask = prompt mask + response mask."""
    def pad(ids, length, side):
        tok.padding_side = side
        out = tok.pad({"input_ids": [ids]}, padding="max_length", max_length=length, return_tensors="pt",
                      return_attention_mask=True)
        return out["input_ids"], out["attention_mask"]

    rows = defaultdict(list)
    for i, reply in enumerate(replies):
        p, pm = pad(prompt_ids(tok, gen.non_tensor_batch["raw_prompt"][i]), prompt_length, "left")
        r, rm = pad(reply, response_length, "right")
        rows["prompts"].append(p)
        rows["responses"].append(r)
        rows["input_ids"].append(torch.cat([p, r], 1))
        rows["attention_mask"].append(torch.cat([pm, rm], 1))
    batch = TensorDict({k: torch.cat(v) for k, v in rows.items()}, batch_size=len(replies))
    batch["response_mask"] = batch["attention_mask"][:, prompt_length:]
    non_tensor = {k: v for k, v in gen.non_tensor_batch.items()}
    return DataProto(batch=batch, non_tensor_batch=non_tensor)


def rollout_replies(tok):
    """G replies per prompt in the interleaved order of dataset_batch: (prompt index, reply text, ids)."""
    return [(i, REPLIES[i][k], response_ids(tok, REPLIES[i][k], k)) for i in range(2) for k in range(G)]


def check_results(results, scorer, rollouts):
    """verl's reward == rmkit's offline reward; compute_score answered the dict contract with numeric extras,
    the same keys for every rollout (verl stacks them with np.array per key: reward_loop.py:365-369)."""
    want = [offline(scorer, [P1, P2][i], text) for i, text, _ in rollouts]
    got = [r["reward_score"] for r in results]
    assert got == pytest.approx(want, abs=1e-4)
    assert len({round(w, 4) for w in want}) > 1  # distinct rewards: a mix-up of rollouts would show
    for r in results:
        extra = r["reward_extra_info"]
        assert "score" in extra, f"compute_score returned a bare number, not {{'score': ...}}: {extra}"
        assert extra["score"] == r["reward_score"]
        for key, value in extra.items():
            assert isinstance(value, (int, float, np.number)) and math.isfinite(value), \
                f"reward_extra_info[{key!r}] = {value!r} is not a finite number"
    assert len({tuple(sorted(r["reward_extra_info"])) for r in results}) == 1
    return want


@pytest.mark.parametrize("path", ["file", "pkg"])
def test_naive_reward_manager_runs_rmkit_compute_score_concurrently(tiny_llama, scorer, policy_tok, monkeypatch,
                                                                    path):
    """load_reward_manager(config, tokenizer) -> NaiveRewardManager with rmkit's function; 8 run_single
    awaited together as RewardLoopWorker.compute_score_batch does (reward_loop.py:138-143) and as concurrent
    agent loops do; the scorer is built once though 8 threads call compute_score at the same time."""
    # a file path or pkg://module: both verl/utils/import_utils.py:170-189
    fn_path = FN_PATH if path == "file" else "pkg://rmkit.integrations.verl"
    cfg = verl_config(*rmkit_overrides(tiny_llama, path=fn_path))
    assert cfg.reward.custom_reward_function.reward_kwargs == {"model": str(tiny_llama), "device": "cpu"}
    fn = get_custom_reward_fn(cfg)
    assert fn is not None and fn.args[0].__name__ == "compute_score" and fn.args[1]["model"] == str(tiny_llama)
    if path == "pkg":  # imported, not re-executed from the file: the process's module (and its scorer)
        assert fn.args[0] is rmkit_verl.compute_score
    built = []
    real = RewardScorer.from_pretrained.__func__
    monkeypatch.setattr(RewardScorer, "from_pretrained",
                        classmethod(lambda cls, *a, **kw: built.append(a) or real(cls, *a, **kw)))

    gen = dataset_batch()
    rollouts = rollout_replies(policy_tok)
    items = [agent_loop_item(policy_tok, {k: v[j] for k, v in gen.non_tensor_batch.items()}, ids)
             for j, (_, _, ids) in enumerate(rollouts)]

    async def reward_loop():
        # built inside the running loop, as in verl's reward loop worker: RewardManagerBase keeps
        # get_event_loop() (reward_manager/base.py:47), runs compute_score with loop.run_in_executor (naive.py:75)
        manager = load_reward_manager(cfg, policy_tok)
        assert type(manager) is NaiveRewardManager and not manager.is_async_reward_score
        return await asyncio.gather(*(asyncio.create_task(manager.run_single(d)) for d in items))

    results = asyncio.run(reward_loop())
    check_results(results, scorer, rollouts)
    # verl re-executes the file for each load_reward_manager (a fresh module: its scorer is built here);
    # pkg:// reuses the imported module, whose scorer an earlier test may have built already
    assert len(built) == 1 if path == "file" else len(built) <= 1, \
        f"RewardScorer.from_pretrained ran {len(built)} times for one reward manager (8 concurrent first calls)"


def test_reward_loop_worker_on_the_padded_rollout_batch(tiny_llama, scorer, policy_tok, policy_dir):
    """verl's RewardLoopWorker (the Ray actor class, run here in-process): it reads the policy tokenizer from
    actor_rollout_ref.model.path, loads the reward manager, scores the padded rollout batch sample by sample
    (compute_score_batch), and verl's assemble_rm_scores (reward_manager/base.py:62-82) puts each reward on
    the last real response token."""
    cfg = verl_config(*rmkit_overrides(tiny_llama, policy=policy_dir), "reward.num_workers=1")
    gen = dataset_batch("raw_prompt")  # the prompt under extra_info["raw_prompt"] this time
    rollouts = rollout_replies(policy_tok)
    data = padded_rollout(policy_tok, gen, [ids for _, _, ids in rollouts])

    async def worker():
        w = RewardLoopWorker(cfg, reward_router_address=None)
        return await w.compute_score_batch(data)

    results = asyncio.run(worker())
    want = check_results(results, scorer, rollouts)
    rm_scores = NaiveRewardManager.assemble_rm_scores(data, [r["reward_score"] for r in results])
    last = data.batch["attention_mask"][:, data.batch["prompts"].size(1):].sum(1) - 1
    assert last.tolist() == [len(ids) - 1 for _, _, ids in rollouts]
    assert rm_scores[torch.arange(len(data)), last].tolist() == pytest.approx(want, abs=1e-4)
    assert rm_scores.abs().sum(1).tolist() == pytest.approx([abs(w) for w in want], abs=1e-4)  # zero elsewhere


def test_question_string_in_extra_info(tiny_llama, scorer, policy_tok):
    """extra_info["question"] (a string: one user turn) when the data carries no chat messages."""
    cfg = verl_config(*rmkit_overrides(tiny_llama))
    gen = dataset_batch("question")
    rollouts = rollout_replies(policy_tok)[:: G]  # one rollout per prompt
    items = [agent_loop_item(policy_tok, {k: v[j * G] for k, v in gen.non_tensor_batch.items()}, ids)
             for j, (_, _, ids) in enumerate(rollouts)]

    async def reward_loop():
        manager = load_reward_manager(cfg, policy_tok)
        return await asyncio.gather(*(manager.run_single(d) for d in items))

    results = asyncio.run(reward_loop())
    want = [offline(scorer, [{"role": "user", "content": [P1, P2][i][-1]["content"]}], text)
            for i, text, _ in rollouts]
    assert [r["reward_score"] for r in results] == pytest.approx(want, abs=1e-4)


def test_the_legacy_top_level_key_is_not_read(tiny_llama, policy_tok):
    """The trap: ppo_trainer.yaml still holds a top-level `custom_reward_function` (legacy_reward_impl.yaml:1-3,
    in the defaults at ppo_trainer.yaml:34), so Hydra accepts `custom_reward_function.path=...` without a
    word, but get_custom_reward_fn reads only `reward.custom_reward_function` (ppo/reward.py:70). verl
    0.9.1's main_ppo never migrates it (migrate_legacy_reward_impl, reward_loop.py:39-90, is called only by
    experimental/fully_async_policy/fully_async_main.py:237): the trainer falls back to verl's rule-based
    default_compute_score, which raises for an unknown data_source and silently scores a known one."""
    cfg = verl_config(f"custom_reward_function.path='{FN_PATH}'", "custom_reward_function.name=compute_score",
                      f"+custom_reward_function.reward_kwargs.model='{tiny_llama}'")
    assert cfg.custom_reward_function.path == FN_PATH and cfg.reward.custom_reward_function.path is None
    assert get_custom_reward_fn(cfg) is None
    gen = dataset_batch()
    ids = response_ids(policy_tok, "Each gets 3 apples.", 0)
    item = agent_loop_item(policy_tok, {k: v[0] for k, v in gen.non_tensor_batch.items()}, ids)

    async def run(data_source):
        manager = load_reward_manager(cfg, policy_tok)
        item.non_tensor_batch["data_source"] = np.fromiter([data_source], dtype=object, count=1)
        return await manager.run_single(item)

    with pytest.raises(NotImplementedError, match="Reward function is not implemented"):
        asyncio.run(run("rmkit/chat"))
    silent = asyncio.run(run("openai/gsm8k"))  # verl's GSM8K rule, not the reward model: 0.0 for no "####"
    assert silent["reward_score"] == 0.0 and silent["reward_extra_info"] == {"acc": 0.0}
