"""Scoring throughput: rmkit's RewardScorer vs the two usual loops, same model, same pairs, one run.

    python bench/score_throughput.py [--pairs 300] [--dtype bfloat16] [--blocks 3]

(a) the Skywork model card demo: one conversation per forward, `apply_chat_template(tokenize=True)`;
(b) reward-bench `run_rm.py` style: fixed batches of 8 in input order, padded, chosen and rejected in
    separate passes, transformers' own forward;
rmkit: length-sorted token-budget batches, mask pooling.
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
from rmkit.score.scorer import RewardScorer, ScorerConfig


def demo_loop(model, tok, convs):
    """(a) one conversation per forward, as the model card does."""
    out = []
    with torch.inference_mode():
        for conv in convs:
            ids = tok.apply_chat_template(conv, tokenize=True, return_tensors="pt", return_dict=True)
            out.append(model(input_ids=ids["input_ids"]).logits[0][0].float().item())
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
                          add_special_tokens=False)
                out.extend(model(**enc).logits[:, 0].float().tolist())
    return list(zip(out_c, out_r))


def matmul_flops(dtype, n=2048, reps=5):
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def model_flops(model, lengths):
    cfg = model.config
    emb = cfg.vocab_size * cfg.hidden_size
    nonemb = sum(p.numel() for p in model.parameters()) - emb
    attn = sum(4 * cfg.num_hidden_layers * cfg.hidden_size * t * t for t in lengths)
    return 2 * nonemb * sum(lengths) + attn


def check_same(model, tok, pairs, n=8):
    convs = [[m.to_dict() for m in p.chosen_conversation] for p in pairs[:n]]
    rej = [[m.to_dict() for m in p.rejected_conversation] for p in pairs[:n]]
    a = demo_loop(model, tok, convs + rej)
    b = rewardbench_loop(model, tok, list(zip(convs, rej)))
    b = [c for c, _ in b] + [r for _, r in b]
    r = RewardScorer(model, tok, ScorerConfig()).score_pairs(pairs[:n])
    r = [c for c, _ in r] + [x for _, x in r]
    return max(abs(x - y) for x, y in zip(a, r)), max(abs(x - y) for x, y in zip(b, r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-tokens", type=int, default=8192)
    args = ap.parse_args()
    pairs = load_rewardbench(subsample=args.pairs, seed=2024)
    model32, tok = load_reward_model(args.model, dtype="float32", device="cpu")
    da, db = check_same(model32, tok, pairs)
    print(f"fp32 max |reward diff| demo-loop vs rmkit: {da:.2e}")
    print(f"fp32 max |reward diff| rewardbench-loop vs rmkit: {db:.2e}")
    del model32
    model, tok = load_reward_model(args.model, dtype=args.dtype, device="cpu")
    scorer = RewardScorer(model, tok, ScorerConfig(batch_tokens=args.batch_tokens))
    seq_len = [len(x) for p in pairs for x in scorer._encode_pair(p)]
    real_tokens = sum(seq_len)
    times = {"rmkit": 0.0, "demo": 0.0, "rewardbench": 0.0}
    rewards = {k: [] for k in times}
    blocks = [pairs[i::args.blocks] for i in range(args.blocks)]
    for bi, block in enumerate(blocks):
        convs = [([m.to_dict() for m in p.chosen_conversation], [m.to_dict() for m in p.rejected_conversation])
                 for p in block]
        runs = {"rmkit": lambda: scorer.score_pairs(block),
                "demo": lambda: list(zip(*[iter(demo_loop(model, tok, [x for c in convs for x in c]))] * 2)),
                "rewardbench": lambda: rewardbench_loop(model, tok, convs)}
        order = list(times)[bi % 3:] + list(times)[:bi % 3]
        for name in order:
            t = time.perf_counter()
            rewards[name].extend(runs[name]())
            times[name] += time.perf_counter() - t
            print(f"block {bi} {name}: {time.perf_counter() - t:.1f}s", flush=True)
    agree = {k: sum((c > r) == (c2 > r2) for (c, r), (c2, r2) in zip(rewards[k], rewards["rmkit"])) / len(pairs)
             for k in ("demo", "rewardbench")}
    flops = model_flops(model, seq_len)
    peak = matmul_flops(getattr(torch, args.dtype))
    print(f"pairs: {len(pairs)}")
    print(f"real tokens: {real_tokens}")
    print(f"dtype: {args.dtype}  threads: {torch.get_num_threads()}")
    for k in times:
        print(f"{k} tokens/s: {real_tokens / times[k]:.0f}  ({times[k]:.1f}s)")
    print(f"decision agreement with rmkit ({args.dtype}): demo {agree['demo']:.3f}, rewardbench {agree['rewardbench']:.3f}")
    print(f"matmul peak ({args.dtype}, 2048^3): {peak / 1e9:.1f} GFLOP/s")
    print(f"rmkit share of matmul peak: {flops / times['rmkit'] / peak:.1%}")
    print(f"ratio rmkit / demo loop: {times['demo'] / times['rmkit']:.2f}x")
    print(f"ratio rmkit / rewardbench loop: {times['rewardbench'] / times['rmkit']:.2f}x")


if __name__ == "__main__":
    main()
