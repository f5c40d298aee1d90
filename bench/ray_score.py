"""Ray Data batch scoring (`rmkit score --engine ray`) against the single-process scorer, same pairs.

    RMKIT_DATA_DIR=../shared/data .venv/bin/python bench/ray_score.py --model /path/to/tiny --pairs 2000 \
        --out runs/bench/ray-tiny                       # Ray's overhead per row (a 2-layer model scores ~free)
    RMKIT_DATA_DIR=../shared/data .venv/bin/python bench/ray_score.py --pairs 200 --out runs/bench/ray-135m

Writes the 2,000 HH-RLHF pairs as 8 jsonl shards, scores them (1) in one process with `score_file`,
(2) with 1 Ray actor and (3) with 2 Ray actors (each a full scorer, CPU actors), all in this one run;
reports rows/s, the overhead per row versus one process, the agreement of the rewards, and the
arithmetic (not a measurement) for 26M pairs on 64 actors, from the measured per-actor rate (and from a
per-GPU rate measured elsewhere, given with --gpu-pairs-per-s).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--out", default="runs/bench/ray")
    ap.add_argument("--gpu-pairs-per-s", type=float, default=None,
                    help="a per-GPU pair rate measured elsewhere, for the 26M-pair projection")
    args = ap.parse_args()

    from rmkit.data import load_pairs
    from rmkit.data.io import read_complete_jsonl
    from rmkit.score.ray_engine import score_shards
    from rmkit.score.run import score_file
    from rmkit.score.scorer import RewardScorer

    data = Path(os.environ.get("RMKIT_DATA_DIR", "../shared/data")) / "hh-rlhf" / "helpful-base" / "test.jsonl.gz"
    pairs = load_pairs(str(data), errors="skip")[: args.pairs]
    out = Path(args.out)
    shards = out / "in"
    shards.mkdir(parents=True, exist_ok=True)
    per = -(-len(pairs) // args.shards)
    for k in range(args.shards):
        rows = [p.to_dict() for p in pairs[k * per:(k + 1) * per]]
        (shards / f"part-{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    opts = dict(device="cpu", dtype="float32", max_length=args.max_length, truncation="truncate")
    results = {}

    t = time.monotonic()
    sc = RewardScorer.from_pretrained(args.model, **opts)
    load_s = time.monotonic() - t
    single = out / "single"
    single.mkdir(exist_ok=True)
    t = time.monotonic()
    one = {}
    for f in sorted(shards.iterdir()):
        target = single / f.name
        target.unlink(missing_ok=True)
        score_file(f, target, sc)
        one.update({r["id"]: (r["chosen_reward"], r["rejected_reward"]) for r in read_complete_jsonl(target)})
    wall = time.monotonic() - t
    results["single process"] = {"seconds": round(wall, 1), "load_s": round(load_s, 1),
                                 "pairs_per_s": round(len(one) / wall, 2)}
    for actors in (1, 2):
        target = out / f"ray-{actors}"
        if target.exists():
            for f in target.iterdir():
                f.unlink()
        t = time.monotonic()
        stats = score_shards([shards], target, model=args.model, options=opts, actors=actors, batch_size=32)
        wall = time.monotonic() - t
        got = {r["id"]: (r["chosen_reward"], r["rejected_reward"]) for f in sorted(target.iterdir())
               for r in read_complete_jsonl(f)}
        assert got.keys() == one.keys(), "rows lost or added"
        both = [(a, b) for k in one for a, b in zip(one[k], got[k])]
        skipped = [a is None for a, _ in both] == [b is None for _, b in both]  # over-long: null in both
        diff = max(abs(a - b) for a, b in both if a is not None and b is not None)
        results[f"ray, {actors} actor{'s' if actors > 1 else ''}"] = {
            "seconds": round(wall, 1), "pairs_per_s": round(len(got) / wall, 2), "rows": stats["rows"],
            "max_abs_diff_vs_single": diff, "same_skipped_rewards": skipped,
            "skipped_rewards": sum(a is None for a, _ in both)}
    base = results["single process"]["seconds"] / len(one)
    for name, r in results.items():
        r["seconds_per_pair"] = round(r["seconds"] / len(one), 4)
        r["overhead_per_pair_s"] = round(r["seconds"] / len(one) - base, 4)
    per_actor = results["ray, 1 actor"]["pairs_per_s"]
    rates = {"this run's per-actor rate": per_actor}
    if args.gpu_pairs_per_s:
        rates["--gpu-pairs-per-s"] = args.gpu_pairs_per_s
    results["projection_26M_pairs_64_actors"] = {
        name: f"26,000,000 / (64 x {rate} pairs/s) = {26_000_000 / (64 * rate) / 3600:.1f} h "
              "(arithmetic, not a measurement)" for name, rate in rates.items()}
    print(json.dumps(results, indent=2))
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
