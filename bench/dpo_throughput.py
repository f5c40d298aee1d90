"""DPO implicit-reward throughput: rmkit's `DPOScorer` (each prompt run once for both sides, only response
positions projected to the vocabulary) vs reward-bench's loop (`scripts/run_dpo.py` + `DPOInference`: per pair,
chosen and rejected padded together into one forward of the policy and one of the reference, full logits,
log_softmax, prompt masked with -100 labels, sums). Same models, same pairs, same token ids, one run.

    python bench/dpo_throughput.py [--pairs 64] [--max-tokens 768] [--dtype float32] [--ref perturbed|same]

Policy: SmolLM2-135M-Instruct (the embedded backbone, `rmkit.models.embedded.prepare("smollm2-135m")`,
loaded as a causal LM; its tied lm_head is the input embedding). Reference: a second copy with every weight
perturbed by 1% of its tensor's standard deviation (seeded), or the same weights (`--ref same`: all rewards
0, the compute is the same). Pairs: a stratified RewardBench v1 sample (filtered split, `$RMKIT_DATA_DIR`),
keeping pairs whose longer side is at most --max-tokens tokens. The pairs are split in two halves timed in
the orders A B / B A, so that noise of a busy machine hits both alike. Prints `name: value` lines; the last
is the headline ratio.
"""
from __future__ import annotations

import argparse
import time

import torch

from rmkit.evaluate.rewardbench import load_rewardbench
from rmkit.models import embedded
from rmkit.models.chat import render_ids_with_prompt
from rmkit.models.groups import split_group
from rmkit.score.config import ScorerConfig
from rmkit.score.dpo import DPOScorer, load_causal_lm


def perturbed(model, scale: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() > 1:
                p.add_(torch.randn(p.shape, generator=gen).to(p.dtype) * p.float().std() * scale)
    return model


def rewardbench_loop(policy, ref, tok, rows) -> list[tuple[float, float]]:
    """reward-bench's DPO inference, one pair per step: [chosen; rejected] right-padded, labels -100 over the
    prompt and the padding; for each model the full logits, log_softmax, the labels' log-probs summed."""
    out = []
    pad = tok.pad_token_id or 0
    with torch.inference_mode():
        for pair in rows:
            width = max(len(ids) for ids, _ in pair)
            ids = torch.full((2, width), pad, dtype=torch.long)
            mask = torch.zeros((2, width), dtype=torch.long)
            labels = torch.full((2, width), -100, dtype=torch.long)
            for r, (x, s) in enumerate(pair):
                ids[r, :len(x)] = torch.tensor(x)
                mask[r, :len(x)] = 1
                labels[r, s:len(x)] = torch.tensor(x[s:])
            sums = []
            for model in (policy, ref):
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
                target = labels[:, 1:]
                keep = target != -100
                lp = logits.log_softmax(-1).gather(-1, target.clamp(min=0)[..., None]).squeeze(-1)
                sums.append((lp * keep).sum(-1).float())
            out.append(tuple((sums[0] - sums[1]).tolist()))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=768, help="longest side of a pair kept, in tokens")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--ref", choices=("perturbed", "same"), default="perturbed")
    ap.add_argument("--batch-tokens", type=int, default=4096)
    args = ap.parse_args()
    import transformers

    transformers.logging.set_verbosity_error()  # the backbone's unused score head is reported on load

    cfg = ScorerConfig(dtype=args.dtype, device="cpu", batch_tokens=args.batch_tokens)
    path = embedded.prepare("smollm2-135m")
    policy, tok = load_causal_lm(path, cfg)
    ref, _ = load_causal_lm(path, cfg)
    if args.ref == "perturbed":
        perturbed(ref, 0.01)
    scorer = DPOScorer(policy, tok, ref, cfg, name="smollm2-135m")

    pool = load_rewardbench(subsample=4 * args.pairs, seed=2024)
    pairs, rows = [], []
    for p in pool:
        pr = [render_ids_with_prompt(tok, c) for c in (p.chosen_conversation, p.rejected_conversation)]
        if max(len(x) for x, _ in pr) <= args.max_tokens:
            pairs.append(p)
            rows.append(pr)
        if len(pairs) == args.pairs:
            break
    tokens = sum(len(x) for pr in rows for x, _ in pr)
    response = sum(len(x) - s for pr in rows for x, s in pr)
    print(f"torch threads: {torch.get_num_threads()}  dtype: {scorer.dtype_name}  ref: {args.ref}")
    padded = sum(2 * max(len(x) for x, _ in pr) for pr in rows)
    grouped = sum(split_group([x for x, _ in pr]).length for pr in rows)
    print(f"pairs: {len(pairs)}  tokens (both sides): {tokens}  response tokens: {response}  "
          f"prompt share: {1 - response / tokens:.2f}")
    print(f"tokens per model forward: reward-bench loop {padded} (padded), rmkit {grouped} (prompt once, no "
          f"padding); vocabulary projections: {padded} vs {response}")

    # warm-up, and the two agree on the same ids
    a = scorer.score_pairs(pairs[:1])
    b = rewardbench_loop(policy, ref, tok, rows[:1])
    print(f"warm-up max |reward diff| rmkit vs reward-bench loop: "
          f"{max(abs(x - y) for u, v in zip(a, b) for x, y in zip(u, v)):.2e}")

    half = len(pairs) // 2
    blocks = [(pairs[:half], rows[:half], ("rmkit", "rewardbench")),
              (pairs[half:], rows[half:], ("rewardbench", "rmkit"))]
    times = {"rmkit": 0.0, "rewardbench": 0.0}
    results = {"rmkit": [], "rewardbench": []}
    for ps, rs, order in blocks:
        for name in order:
            t = time.perf_counter()
            r = scorer.score_pairs(ps) if name == "rmkit" else rewardbench_loop(policy, ref, tok, rs)
            times[name] += time.perf_counter() - t
            results[name].extend(r)
    diff = max(abs(x - y) for u, v in zip(results["rmkit"], results["rewardbench"]) for x, y in zip(u, v))
    print(f"max |reward diff| rmkit vs reward-bench loop, all pairs: {diff:.2e}")
    print(f"rmkit stats: {dict(scorer.stats)}")
    for name in ("rewardbench", "rmkit"):
        print(f"{name}: {times[name]:.1f} s  {len(pairs) / times[name]:.2f} pairs/s  "
              f"{2 * tokens / times[name]:.0f} model-tokens/s")
    print(f"ratio rmkit / reward-bench loop (pairs/s): {times['rewardbench'] / times['rmkit']:.2f}x")


if __name__ == "__main__":
    main()
