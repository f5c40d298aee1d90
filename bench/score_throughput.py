"""Scoring throughput: rmkit's prefix-shared scorer vs its unshared scorer vs the usual loops, one run.

    python bench/score_throughput.py [--data rewardbench|hh] [--pairs 300] [--dtype bfloat16] [--blocks 3] [--demo]
    python bench/score_throughput.py --shares      # only the share of prompt tokens per source and its bound
    python bench/score_throughput.py --backend vllm --dtype float32   # vLLM's engine too, same pairs, same run

shared: `RewardScorer` (sharing="auto": each pair's common prefix once, padding-free rows, 4D mask);
rmkit: `RewardScorer(sharing="off")`: length-sorted token-budget batches, mask pooling;
(a) the Skywork model card demo: one conversation per forward, `apply_chat_template(tokenize=True)`;
(b) reward-bench `run_rm.py` style: fixed batches in input order (`--rb-batch`: 64 is run_rm.py's default,
    8 is kinder on a CPU), padded, chosen and rejected in separate passes, transformers' own forward;
vllm (with --backend vllm): `VLLMScorer`, vLLM's engine on the same token ids (its start-up is timed apart);
The pairs are a stratified RewardBench sample split into blocks; each block runs all three methods in
a rotating order (A/B alternation), so machine noise hits them alike. First, the three are checked
to give the same rewards in fp32 on a few pairs. Prints `name: value` lines; the last is the headline.
"""
from __future__ import annotations

import argparse
import time

import torch

from rmkit.evaluate.rewardbench import load_rewardbench
from rmkit.models.load import load_reward_model
from rmkit.score.factory import build_scorer
from rmkit.score.scorer import RewardScorer, ScorerConfig


def demo_loop(model, tok, convs):
    """(a) one conversation per forward, as the model card does."""
    out = []
    with torch.inference_mode():
        for conv in convs:
            ids = tok.apply_chat_template(conv, tokenize=True, return_tensors="pt", return_dict=True)
            out.append(model(input_ids=ids["input_ids"].to(model.device)).logits[0][0].float().item())
    return out


def rewardbench_loop(model, tok, pairs_convs, batch_size=8):
    """(b) fixed batches in input order, padded; chosen and rejected in separate passes."""
    texts_c = [tok.apply_chat_template(c, tokenize=False) for c, _ in pairs_convs]
    texts_r = [tok.apply_chat_template(r, tokenize=False) for _, r in pairs_convs]
    out_c, out_r = [], []
    with torch.inference_mode():
        for texts, out in ((texts_c, out_c), (texts_r, out_r)):
            for i in range(0, len(texts), batch_size):
                enc = tok(texts[i:i + batch_size], padding=True, return_tensors="pt",
                          add_special_tokens=False).to(model.device)
                out.extend(model(**enc).logits[:, 0].float().tolist())
    return list(zip(out_c, out_r))


def matmul_size(device: str) -> tuple[int, int]:
    """(n, repetitions) of the n^3 matmul that measures the peak: larger on a GPU, where 2048^3 is too short."""
    return (8192, 20) if device.startswith("cuda") else (2048, 5)


def matmul_flops(dtype, device="cpu"):
    n, reps = matmul_size(device)
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def model_flops(model, lengths):
    cfg = model.config
    emb = cfg.vocab_size * cfg.hidden_size
    nonemb = sum(p.numel() for p in model.parameters()) - emb
    attn = sum(4 * cfg.num_hidden_layers * cfg.hidden_size * t * t for t in lengths)
    return 2 * nonemb * sum(lengths) + attn


def check_same(model, tok, pairs, n=8, rb_batch=8):
    convs = [[m.to_dict() for m in p.chosen_conversation] for p in pairs[:n]]
    rej = [[m.to_dict() for m in p.rejected_conversation] for p in pairs[:n]]
    a = demo_loop(model, tok, convs + rej)
    b = rewardbench_loop(model, tok, list(zip(convs, rej)), rb_batch)
    b = [c for c, _ in b] + [r for _, r in b]
    r = RewardScorer(model, tok, ScorerConfig()).score_pairs(pairs[:n])
    r = [c for c, _ in r] + [x for _, x in r]
    return max(abs(x - y) for x, y in zip(a, r)), max(abs(x - y) for x, y in zip(b, r))


def prompt_shares(tok, max_length=None) -> dict:
    """Per source: the tokens prefix sharing removes, as a fraction of the pairs' tokens, and its bound."""
    from rmkit.models.chat import render_ids
    from rmkit.models.groups import split_group
    from rmkit.train.splits import quality_split

    train, held = quality_split()
    sources = {"hh-rlhf": [p for p in train + held if p.source.startswith("hh-rlhf")][:1000],
               "ultrafeedback": [p for p in train + held if p.source == "ultrafeedback"][:1000],
               "rewardbench": load_rewardbench()}
    out = {}
    for name, pairs in sources.items():
        whole = shared = 0
        for p in pairs:
            ids = [render_ids(tok, p.chosen_conversation), render_ids(tok, p.rejected_conversation)]
            if max_length and max(map(len, ids)) > max_length:
                continue
            g = split_group(ids)
            whole, shared = whole + g.unshared_length, shared + g.length
        saved = 1 - shared / whole
        out[name] = {"pairs": len(pairs), "prompt_share": 2 * saved, "saved": saved, "bound": 1 / (1 - saved)}
    return out


def load_pairs_for(data: str, n: int):
    if data == "rewardbench":
        return load_rewardbench(subsample=n, seed=2024)
    import random

    from rmkit.train.splits import quality_split

    train, held = quality_split()
    hh = [p for p in held + train if p.source.startswith("hh-rlhf")]
    return random.Random(2024).sample(hh, n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=("rewardbench", "hh"), default="rewardbench")
    ap.add_argument("--demo", action="store_true", help="also time the model-card loop (slow)")
    ap.add_argument("--shares", action="store_true", help="only print the prompt share per source")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--backend", choices=("hf", "vllm"), default="hf", help="vllm: also time vLLM's engine")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--rb-batch", default="8,64", help="batch sizes of the reward-bench-style loop, comma "
                    "separated, each timed as its own method (run_rm.py's default is 64)")
    args = ap.parse_args()
    rb_batches = [int(b) for b in str(args.rb_batch).split(",")]
    if args.shares:
        from rmkit.models.load import load_tokenizer
        from rmkit.models.embedded import prepare

        tok = load_tokenizer(str(prepare(args.model)))
        for name, v in prompt_shares(tok).items():
            print(f"{name}: pairs {v['pairs']}, shared prompt {v['prompt_share']:.1%} of a pair's tokens, "
                  f"sharing removes {v['saved']:.1%} (bound {v['bound']:.2f}x)")
        return
    pairs = load_pairs_for(args.data, args.pairs)
    model32, tok = load_reward_model(args.model, dtype="float32", device=args.device)
    da, db = check_same(model32, tok, pairs, rb_batch=rb_batches[0])
    print(f"fp32 max |reward diff| demo-loop vs rmkit shared: {da:.2e}")
    print(f"fp32 max |reward diff| rewardbench-loop vs rmkit shared: {db:.2e}")
    off = RewardScorer(model32, tok, ScorerConfig(sharing="off")).score_pairs(pairs[:8])
    on = RewardScorer(model32, tok, ScorerConfig()).score_pairs(pairs[:8])
    print(f"fp32 max |reward diff| rmkit unshared vs shared: "
          f"{max(abs(a - b) for x, y in zip(off, on) for a, b in zip(x, y)):.2e}")
    del model32
    model, tok = load_reward_model(args.model, dtype=args.dtype, device=args.device)
    shared = RewardScorer(model, tok, ScorerConfig(batch_tokens=args.batch_tokens))
    scorer = RewardScorer(model, tok, ScorerConfig(batch_tokens=args.batch_tokens, sharing="off"))
    seq_len = [len(x) for p in pairs for x in scorer._encode_pair(p)]
    real_tokens = sum(seq_len)
    times = {"shared": 0.0, "rmkit": 0.0, **{f"rewardbench-b{b}": 0.0 for b in rb_batches}}
    if args.demo:
        times["demo"] = 0.0
    engine = None
    if args.backend == "vllm":
        t = time.perf_counter()
        engine = build_scorer(args.model, backend="vllm", dtype=args.dtype, batch_tokens=args.batch_tokens)
        print(f"vllm engine start: {time.perf_counter() - t:.1f}s", flush=True)
        times["vllm"] = 0.0
    rewards = {k: [] for k in times}
    blocks = [pairs[i::args.blocks] for i in range(args.blocks)]
    for bi, block in enumerate(blocks):
        convs = [([m.to_dict() for m in p.chosen_conversation], [m.to_dict() for m in p.rejected_conversation])
                 for p in block]
        runs = {"shared": lambda: shared.score_pairs(block), "rmkit": lambda: scorer.score_pairs(block),
                "demo": lambda: list(zip(*[iter(demo_loop(model, tok, [x for c in convs for x in c]))] * 2)),
                **{f"rewardbench-b{b}": (lambda b=b: rewardbench_loop(model, tok, convs, b)) for b in rb_batches},
                "vllm": lambda: engine.score_pairs(block)}
        n = len(times)
        order = list(times)[bi % n:] + list(times)[:bi % n]
        for name in order:
            t = time.perf_counter()
            rewards[name].extend(runs[name]())
            times[name] += time.perf_counter() - t
            print(f"block {bi} {name}: {time.perf_counter() - t:.1f}s", flush=True)
    agree = {k: sum((c > r) == (c2 > r2) for (c, r), (c2, r2) in zip(rewards[k], rewards["shared"])) / len(pairs)
             for k in times if k != "shared"}
    flops = model_flops(model, seq_len)
    peak = matmul_flops(getattr(torch, args.dtype), device=args.device)
    print(f"data: {args.data}  pairs: {len(pairs)}")
    print(f"tokens after sharing: {shared.stats['tokens_shared']} of {shared.stats['tokens_unshared']} "
          f"({1 - shared.stats['tokens_shared'] / shared.stats['tokens_unshared']:.1%} removed)")
    print(f"real tokens: {real_tokens}")
    print(f"dtype: {args.dtype}  device: {args.device}  threads: {torch.get_num_threads()}  "
          f"reward-bench batches: {', '.join(map(str, rb_batches))}")
    for k in times:
        print(f"{k} tokens/s: {real_tokens / times[k]:.0f}  ({times[k]:.1f}s)")
    print("decision agreement with shared (" + args.dtype + "): "
          + ", ".join(f"{k} {v:.3f}" for k, v in agree.items()))
    if engine is not None:
        diff = max(abs(a - b) for x, y in zip(rewards["vllm"], rewards["shared"]) for a, b in zip(x, y))
        print(f"max |reward diff| vllm vs shared ({args.dtype}, all {len(pairs)} pairs): {diff:.2e}")
        print(f"ratio shared / vllm: {times['vllm'] / times['shared']:.2f}x")
        engine.close()
    print(f"matmul peak ({args.dtype}, {matmul_size(args.device)[0]}^3): "
          f"{peak / 1e9:.1f} GFLOP/s")
    print(f"shared share of matmul peak (unshared FLOPs): {flops / times['shared'] / peak:.1%}")
    if args.demo:
        print(f"ratio shared / demo loop: {times['demo'] / times['shared']:.2f}x")
    print(f"ratio shared / rmkit unshared: {times['rmkit'] / times['shared']:.2f}x")
    for b in rb_batches:
        print(f"ratio rmkit unshared / rewardbench loop (batch {b}): {times[f'rewardbench-b{b}'] / times['rmkit']:.2f}x")
    for b in rb_batches:
        print(f"ratio shared / rewardbench loop (batch {b}): {times[f'rewardbench-b{b}'] / times['shared']:.2f}x")


if __name__ == "__main__":
    main()
