"""bf16 vs fp32 scoring of one reward model on RewardBench v1: do they decide the same pairs?

    RMKIT_DATA_DIR=../shared/data python bench/dtype_agreement.py \
        --model ~/.cache/rmkit/runs/smollm2-135m-rm/top8/best --pairs 400

Scores the same pairs (a stratified subsample of the filtered split, or `--pairs 0` for all 2,985) twice with
rmkit's scorer, in float32 and in bfloat16, and reports: the decision agreement (share of pairs whose
chosen-minus-rejected margin has the same sign in both), the largest and the median absolute reward
difference, the largest margin among the pairs decided differently, each dtype's accuracy and RewardBench
score (official scoring; labelled partial on a subsample) and each pass's wall time. Result:
bench/results/dtype_agreement.json and a table.
"""
from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from pathlib import Path

from rmkit.data.io import write_json_atomic


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint folder or embedded name")
    ap.add_argument("--pairs", type=int, default=400, help="stratified subsample size (0: all 2,985)")
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--out", default="bench/results/dtype_agreement.json")
    args = ap.parse_args(argv)

    from rmkit.evaluate.rewardbench import evaluate_rewardbench, load_rewardbench
    from rmkit.models.precision import probe
    from rmkit.score.scorer import RewardScorer

    pairs = load_rewardbench(subsample=args.pairs or None, seed=args.seed)
    runs = {}
    for dtype in ("float32", "bfloat16"):
        scorer = RewardScorer.from_pretrained(args.model, dtype=dtype, max_length=args.max_length,
                                              truncation="skip", show_progress=True)
        t0 = time.perf_counter()
        res = evaluate_rewardbench(scorer, pairs, n_boot=1000, subsample=bool(args.pairs))
        runs[dtype] = {"seconds": round(time.perf_counter() - t0, 1), "score": res["score"],
                       "sections": res["sections"], "complete": res.get("complete"),
                       "items": [(it["chosen_reward"], it["rejected_reward"]) for it in res["items"]]}
    a, b = runs["float32"]["items"], runs["bfloat16"]["items"]
    # by position (RewardBench has a duplicated id); pairs skipped as over-long (NaN) in either are left out
    ids = [i for i in range(len(a)) if not math.isnan(sum(a[i]) + sum(b[i]))]
    diffs = [abs(x - y) for i in ids for x, y in zip(a[i], b[i])]
    same = [(a[i][0] > a[i][1]) == (b[i][0] > b[i][1]) for i in ids]
    flipped = [abs(a[i][0] - a[i][1]) for i, s in zip(ids, same) if not s]
    margins = [abs(a[i][0] - a[i][1]) for i in ids]
    acc = {d: sum(r["items"][i][0] > r["items"][i][1] for i in ids) / len(ids) for d, r in runs.items()}
    out = {
        "model": args.model, "pairs": len(pairs), "compared": len(ids), "subsample": bool(args.pairs),
        "cpu": platform.processor() or platform.machine(), "probe": probe(),
        "decision_agreement": sum(same) / len(ids),
        "max_abs_reward_diff": max(diffs), "median_abs_reward_diff": statistics.median(diffs),
        "median_abs_margin_fp32": statistics.median(margins),
        "largest_margin_flipped": max(flipped, default=0.0),
        "accuracy": acc,
        "rewardbench_score": {d: r["score"] for d, r in runs.items()},
        "sections": {d: r["sections"] for d, r in runs.items()},
        "seconds": {d: r["seconds"] for d, r in runs.items()},
    }
    write_json_atomic(Path(args.out), out)
    part = " (partial: stratified subsample)" if args.pairs else ""
    print(f"{args.model}: {len(ids)} RewardBench pairs{part}")
    print("| | float32 | bfloat16 |\n|---|---:|---:|")
    print(f"| accuracy | {100 * acc['float32']:.1f} | {100 * acc['bfloat16']:.1f} |")
    print(f"| RewardBench score | {100 * runs['float32']['score']:.1f} | {100 * runs['bfloat16']['score']:.1f} |")
    print(f"| seconds | {runs['float32']['seconds']} | {runs['bfloat16']['seconds']} |")
    print(f"decision agreement {100 * out['decision_agreement']:.2f}%; largest |reward diff| "
          f"{out['max_abs_reward_diff']:.4f} (median {out['median_abs_reward_diff']:.4f}; median |fp32 margin| "
          f"{out['median_abs_margin_fp32']:.4f}); largest fp32 margin decided differently "
          f"{out['largest_margin_flipped']:.4f}")
    return out


if __name__ == "__main__":
    main()
