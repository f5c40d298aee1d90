"""The trunk store's two rates against this CPU's matmul rate, in one run: the store build (layers 0..K-1,
forward only) and training from the store (layers K and up, forward + backward + AdamW).

    RMKIT_DATA_DIR=../shared/data python bench/trunk_throughput.py --pairs 96 --out bench/results

Model: the embedded SmolLM2-135M, K=26 (the default recipe's). Data: --pairs pairs drawn (seed 0) from the
recipe's training pool (`quality_split`), HH-RLHF and UltraFeedback in the pool's proportions, encoded as the
recipe does (768 tokens, prompts cut from the left). Rates count shared tokens (each prompt once per pair,
what the store holds).

Store build, every layout on the same groups, alternating over --rounds:
  packed-fp32    the layout before issue 20: chunks of 32 groups in data order, packed into rows as wide
                 as the chunk's longest group, fp32 weights
  packed-bf16    the same rows with the frozen layers in bf16
  per-group-bf16 rmkit now: groups longest first, a chunk's groups in one padding-free row, attention paid
                 per group through the causal kernel (`rmkit.models.group_attention`), bf16 (what
                 `mixed_precision: auto` picks on a CPU with fast bf16)
  per-group-fp32 the same in fp32 (what it picks on a CPU without)
Training: `rmkit.train.train` from the store (batch 16, 1 epoch over the same pairs), mixed_precision "no"
vs "bf16"; its rate is shared tokens over the training loop's seconds (the store build not counted).
"Share" = the useful matmul FLOPs (2 x the layers' Linear weights per token; 3x that for training) per
second over the bf16 matmul rate measured in the same run. Prints `name: value` lines; the last is the
headline.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

K, MAX_LEN, BATCH, CHUNK = 26, 768, 16, 32


def encoded_pairs(tok, n: int, seed: int = 0):
    from rmkit.train.data import encode_pairs
    from rmkit.train.splits import quality_split

    pool = quality_split()[0]
    pairs = random.Random(seed).sample(pool, n)
    return pairs, encode_pairs(tok, pairs, max_length=MAX_LEN, policy="truncate")[0]


def linear_params(layer) -> int:
    import torch

    return sum(m.weight.numel() for m in layer.modules() if isinstance(m, torch.nn.Linear))


def build_packed(stack, config, groups, k, dtype):
    """The pre-issue-20 build: chunks of 32 in data order, packed rows as wide as the chunk's longest."""
    import torch

    from rmkit.models.groups import attention_masks, pack_groups
    from rmkit.train.trunk import frozen_part, run_layers

    part = frozen_part(stack, k, dtype)
    with torch.inference_mode():
        for c in range(0, len(groups), CHUNK):
            batch = pack_groups(groups[c:c + CHUNK], 0)
            masks = attention_masks(config, batch, dtype=dtype)
            hidden = part.embed_tokens(batch["input_ids"])
            run_layers(part, config, hidden, masks, batch["position_ids"], range(k))


def build_per_group(stack, config, groups, k, dtype):
    """rmkit's build: longest first, token-budget forwards, attention per group (`rmkit.train.trunk`)."""
    from rmkit.train.trunk import build_order, forward_groups, frozen_part, sub_batches

    part = frozen_part(stack, k, dtype)
    order = build_order(groups)
    for c in range(0, len(order), CHUNK):
        idx = order[c:c + CHUNK]
        for sl in sub_batches([groups[i].length for i in idx]):
            forward_groups(part, config, [groups[i] for i in idx[sl]], k, 0)


def time_builds(model, groups, rounds: int) -> dict:
    import torch

    from rmkit.train.model import decoder

    stack = decoder(model)
    variants = {"packed-fp32": (build_packed, torch.float32), "packed-bf16": (build_packed, torch.bfloat16),
                "per-group-bf16": (build_per_group, torch.bfloat16),
                "per-group-fp32": (build_per_group, torch.float32)}
    seconds = {name: [] for name in variants}
    for r in range(rounds):
        names = list(variants)[r % len(variants):] + list(variants)[:r % len(variants)]
        for name in names:
            fn, dtype = variants[name]
            t0 = time.perf_counter()
            fn(stack, model.config, groups, K, dtype)
            seconds[name].append(time.perf_counter() - t0)
            print(f"  build {name} round {r}: {seconds[name][-1]:.1f} s", flush=True)
    return {name: min(s) for name, s in seconds.items()}


def time_training(model_dir: str, pairs, workdir: Path) -> dict:
    from rmkit.data.io import write_jsonl_atomic
    from rmkit.train.config import TrainConfig
    from rmkit.train.trainer import train

    data = workdir / "pairs.jsonl"
    write_jsonl_atomic(data, (p.to_dict() for p in pairs))
    out = {}
    for precision in ("no", "bf16"):
        cfg = TrainConfig(model=model_dir, data=[str(data)], max_length=MAX_LEN, truncation="truncate",
                          packing="shared", freeze_layers=K, trunk_cache="on", batch_size=BATCH, num_epochs=1,
                          learning_rate=1e-4, mixed_precision=precision, output_dir=str(workdir / precision),
                          final_eval=False, head_init_std=0.02, logging_steps=1000)
        summary = train(cfg)
        shared = summary["data"]["sharing"]["tokens_shared"]
        out[precision] = {"seconds": summary["train_seconds"], "tokens": shared,
                          "build_seconds": summary["data"]["trunk"]["build_seconds"]}
        print(f"  train {precision}: {shared} tokens in {summary['train_seconds']:.1f} s", flush=True)
    return out


def main(argv=None) -> dict:
    import torch

    from rmkit.models.groups import split_group
    from rmkit.models.load import load_reward_model
    from rmkit.models.precision import cpu_flags, matmul_gflops

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--skip-training", action="store_true")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    fp32, bf16 = matmul_gflops(torch.float32, seconds=2.0), matmul_gflops(torch.bfloat16, seconds=2.0)
    model, tok = load_reward_model("smollm2-135m", dtype="float32")
    pairs, enc = encoded_pairs(tok, args.pairs)
    groups = [split_group(e.responses) for e in enc]
    tokens = sum(g.length for g in groups)
    per_token = 2 * sum(linear_params(model.model.layers[i]) for i in range(K))
    train_per_token = 3 * 2 * sum(linear_params(model.model.layers[i]) for i in range(K, len(model.model.layers)))
    print(f"cpu: {cpu_flags()[0]}, threads {torch.get_num_threads()}, {len(groups)} groups, {tokens} shared tokens")
    print(f"matmul fp32 GFLOP/s: {fp32:.0f}\nmatmul bf16 GFLOP/s: {bf16:.0f}")
    builds = time_builds(model, groups, args.rounds)
    result = {"cpu": cpu_flags()[0], "threads": torch.get_num_threads(), "groups": len(groups), "tokens": tokens,
              "matmul_gflops": {"fp32": round(fp32, 1), "bf16": round(bf16, 1)}, "build": {}, "train": {}}
    for name, s in builds.items():
        rate = tokens / s
        result["build"][name] = {"seconds": round(s, 2), "tokens_per_s": round(rate),
                                 "share_of_bf16": round(rate * per_token / 1e9 / bf16, 3)}
        print(f"build {name} tokens/s: {rate:.0f} ({rate * per_token / 1e9 / bf16:.0%} of bf16 matmul)")
    if not args.skip_training:
        with tempfile.TemporaryDirectory() as tmp:
            trained = time_training(str(model.config._name_or_path), pairs, Path(tmp))
        for name, t in trained.items():
            rate = t["tokens"] / t["seconds"]
            result["train"][name] = {**t, "tokens_per_s": round(rate),
                                     "share_of_bf16": round(rate * train_per_token / 1e9 / bf16, 3)}
            print(f"train mixed_precision={name} tokens/s: {rate:.0f} "
                  f"({rate * train_per_token / 1e9 / bf16:.0%} of bf16 matmul)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "trunk_throughput.json").write_text(json.dumps(result, indent=1) + "\n")
    b = result["build"]
    print(f"build per-group-bf16 / packed-fp32: {b['per-group-bf16']['tokens_per_s'] / b['packed-fp32']['tokens_per_s']:.2f}x")
    return result


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
