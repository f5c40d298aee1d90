"""Reward computation for GRPO-shaped batches: rmkit's TRL reward function vs TRL's own reward-model path.

    RMKIT_DATA_DIR=../shared/data python bench/grpo_reward.py [--source hh|ultrafeedback] [--batches 3]
        [--prompts-per-batch 2] [--group 8] [--rounds 2] [--max-tokens 512] [--threads 2] [--dtype float32]
        [--model smollm2-135m-rm]

A GRPO generation batch holds P prompts, each with G completions (TRL repeats each prompt G times).
Prompts are real (HH-RLHF helpful-base test: multi-turn histories; or the UltraFeedback sample); each
prompt's G completions are its own chosen and rejected replies plus G - 2 replies to other prompts of
the same set (seeded), so lengths are real. One model object for both methods (`--model`: the shipped
smollm2-135m-rm by default, or any checkpoint path), in one dtype (`--dtype`: float32, the default, or
bfloat16, what `dtype: auto` picks on a CPU with fast bf16), the same batches, one process:

- **trl**: TRL 1.16's `GRPOTrainer._calculate_rewards` for a `PreTrainedModel` in `reward_funcs`,
  mirrored line for line: `trl.data_utils.apply_chat_template` on each prompt + completion, the RM
  tokenizer with `padding=True, padding_side="right", add_special_tokens=False`, one forward of
  `AutoModelForSequenceClassification` over the whole P x G batch, `logits[:, 0]`.
- **rmkit**: `rmkit.integrations.trl.reward_function(scorer)` called as TRL calls it: each prompt's G
  completions one prefix-shared group (the prompt runs once), padding-free packed rows.

Rounds alternate which method runs first (A/B). Before timing, an untimed pass records the largest
reward difference between the two (fp32: rounding only; bf16: the two paths round differently).
Prints `name: value` lines; the last is the headline ratio (trl seconds / rmkit seconds).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

import torch

SOURCES = {"hh": "hh-rlhf/helpful-base/test.jsonl.gz",
           "ultrafeedback": "ultrafeedback-binarized-sample/eval_clean.jsonl.gz"}


def grpo_batches(pairs, tok, *, batches: int, per_batch: int, group: int, max_tokens: int, seed: int):
    """[(prompts, completions)] in TRL's layout (each prompt repeated G times, conversational), from
    pairs whose every prompt + completion fits `max_tokens` (as a GRPO run's max lengths would)."""
    from rmkit.data.schema import conversation_to_dicts

    rng = random.Random(seed)
    replies = [conversation_to_dicts(side) for p in pairs for side in (p.chosen, p.rejected)]
    rng.shuffle(pairs)
    out, prompts, completions = [], [], []

    def length(prompt, reply):
        return len(tok.apply_chat_template(prompt + reply, tokenize=True, return_dict=True)["input_ids"])

    for pair in pairs:
        prompt = conversation_to_dicts(pair.prompt)
        own = [conversation_to_dicts(pair.chosen), conversation_to_dicts(pair.rejected)]
        group_replies = own + rng.sample(replies, group - 2)
        if any(length(prompt, r) > max_tokens for r in group_replies):
            continue
        prompts += [prompt] * group
        completions += group_replies
        if len(prompts) == per_batch * group:
            out.append((prompts, completions))
            prompts, completions = [], []
            if len(out) == batches:
                return out
    raise SystemExit(f"only {len(out)} batches fit max_tokens={max_tokens}")


def trl_rewards(model, tok, prompts, completions) -> list[float]:
    """TRL 1.16 GRPOTrainer._calculate_rewards, the `isinstance(reward_func, nn.Module)` branch."""
    from trl.data_utils import apply_chat_template

    messages = [{"messages": p + c} for p, c in zip(prompts, completions, strict=True)]
    texts = [apply_chat_template(x, tok)["text"] for x in messages]
    reward_inputs = tok(text=texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False)
    reward_inputs = {k: v.to(model.device) for k, v in reward_inputs.items()}
    with torch.inference_mode():
        return model(**reward_inputs).logits[:, 0].float().tolist()


def token_counts(tok, batches) -> dict[str, int]:
    """Tokens TRL's padded batches hold, tokens of every conversation run alone, and of their prompts."""
    from rmkit.data.schema import to_conversation
    from rmkit.models.chat import render_ids_with_prompt

    padded = alone = prompt_tokens = 0
    for prompts, completions in batches:
        rendered = [render_ids_with_prompt(tok, to_conversation(p + c)) for p, c in zip(prompts, completions)]
        padded += len(rendered) * max(len(ids) for ids, _ in rendered)
        alone += sum(len(ids) for ids, _ in rendered)
        prompt_tokens += sum(n for _, n in rendered)
    return {"padded": padded, "alone": alone, "prompt": prompt_tokens}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=sorted(SOURCES), default="hh")
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--prompts-per-batch", type=int, default=2)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="smollm2-135m-rm")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from rmkit.data import load_pairs
    from rmkit.integrations.trl import reward_function
    from rmkit.score.scorer import RewardScorer

    data = Path(os.environ.get("RMKIT_DATA_DIR", "../shared/data")) / SOURCES[args.source]
    scorer = RewardScorer.from_pretrained(args.model, dtype=args.dtype, device="cpu")
    model, tok = scorer.model, scorer.tokenizer  # one model for both methods: same weights, same dtype
    batches = grpo_batches(load_pairs(str(data), errors="skip"), tok, batches=args.batches,
                           per_batch=args.prompts_per_batch, group=args.group, max_tokens=args.max_tokens,
                           seed=args.seed)
    fn = reward_function(scorer, name="rmkit")
    counts = token_counts(tok, batches)

    before = scorer.stats["tokens_shared"]  # untimed first pass: equal rewards, and rmkit's token count
    diffs = [abs(a - b) for p, c in batches for a, b in zip(trl_rewards(model, tok, p, c), fn(p, c))]
    counts["shared"] = scorer.stats["tokens_shared"] - before
    methods = {"trl": lambda p, c: trl_rewards(model, tok, p, c), "rmkit": lambda p, c: fn(p, c)}
    times = {name: [] for name in methods}
    for r in range(args.rounds):
        order = list(methods) if r % 2 == 0 else list(methods)[::-1]
        for name in order:
            start = time.perf_counter()
            for prompts, completions in batches:
                methods[name](prompts, completions)
            times[name].append(time.perf_counter() - start)

    n = sum(len(p) for p, _ in batches)
    trl_s, rmkit_s = statistics.median(times["trl"]), statistics.median(times["rmkit"])
    print(f"model: {args.model}")
    print(f"source: {args.source} ({SOURCES[args.source]})")
    print(f"batches: {len(batches)} x {args.prompts_per_batch} prompts x G={args.group} = {n} completions per round")
    print(f"rounds: {args.rounds} (alternating order), threads: {args.threads}, dtype: {args.dtype}")
    print(f"tokens_alone: {counts['alone']}")
    print(f"prompt_share_of_tokens: {counts['prompt'] / counts['alone']:.3f}")
    print(f"tokens_trl_padded: {counts['padded']}")
    print(f"tokens_rmkit_shared: {counts['shared']}")
    print(f"max_abs_reward_diff: {max(diffs):.2e}")
    for name in methods:
        print(f"{name}_seconds_per_round: {statistics.median(times[name]):.2f} ({', '.join(f'{t:.2f}' for t in times[name])})")
        print(f"{name}_completions_per_s: {n / statistics.median(times[name]):.2f}")
    print(f"speedup_rmkit_vs_trl: {trl_s / rmkit_s:.2f}x")


if __name__ == "__main__":
    main()
