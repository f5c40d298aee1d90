"""Train rmkit's default reward model (SmolLM2-135M-Instruct + LoRA r=16 with its score head) and test
it against the bar: better than the untrained model AND the length baseline on 600 held-out pairs, by a
paired bootstrap at 95%.

    RMKIT_DATA_DIR=../shared/data nice python bench/quality.py --minutes 25 --out runs/quality
    RMKIT_DATA_DIR=../shared/data nice python bench/quality.py --minutes 25 --out runs/quality --resume

Data: `rmkit.train.splits.quality_split` (600 held-out pairs, 300 HH-RLHF + 300 UltraFeedback, never
trained on; ~9.1k training pairs). `--minutes` is the wall-clock budget of the training loop; a run
that stops on it leaves a checkpoint, and `--resume` goes on from it (the evaluations of the untrained
model and the baseline are cached in the output folder). The result, passed or not, is written to
OUT/quality.json and printed as `name: value` lines; the last one is the verdict.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from rmkit.data.io import write_json_atomic, write_jsonl_atomic

SCORING = dict(dtype="bfloat16", max_length=1024, truncation="truncate", batch_tokens=4096)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/quality")
    ap.add_argument("--minutes", type=float, default=25.0, help="training wall-clock budget")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--rewardbench", type=int, default=150, help="stratified RewardBench v1 pairs (0 = skip)")
    ap.add_argument("--n-boot", type=int, default=2000)
    return ap.parse_args(argv)


def write_split(out: Path) -> tuple[Path, Path, list]:
    from rmkit.train.splits import quality_split

    train, held = quality_split()
    tpath, hpath = out / "data" / "train.jsonl", out / "data" / "heldout.jsonl"
    if not tpath.exists():
        write_jsonl_atomic(tpath, (p.to_dict() for p in train))
        write_jsonl_atomic(hpath, (p.to_dict() for p in held))
    return tpath, hpath, held


def evaluate(scorer, held, rb, n_boot: int) -> dict:
    """Per-pair correctness on the held-out pairs (kept for the paired tests) + RewardBench sections."""
    from rmkit.evaluate.metrics import pairwise_correct
    from rmkit.evaluate.rewardbench import evaluate_rewardbench
    from rmkit.train.evaluation import summarize_pairs

    t0 = time.monotonic()
    rewards = scorer.score_pairs(held)
    res = {"heldout": summarize_pairs(held, rewards, n_boot=n_boot),
           "correct": pairwise_correct([c for c, _ in rewards], [r for _, r in rewards])}
    if rb:
        rbres = evaluate_rewardbench(scorer, rb, n_boot=n_boot)
        res["rewardbench"] = {k: v for k, v in rbres.items() if k != "items"}
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


def cached(path: Path, fn):
    if path.exists():
        return json.loads(path.read_text())
    res = fn()
    write_json_atomic(path, res)
    return res


def train_model(args, base: Path, tpath: Path, out: Path) -> dict:
    from rmkit.train import TrainConfig, train

    cfg = TrainConfig(model=str(base), data=[str(tpath)], max_length=args.max_length, truncation="truncate",
                      batch_size=args.batch_size, num_epochs=args.epochs, max_minutes=args.minutes,
                      learning_rate=args.lr, lr_scheduler="cosine", warmup_steps=10, mixed_precision="bf16",
                      lora_r=args.lora_r, lora_alpha=2 * args.lora_r, seed=0, output_dir=str(out / "run"),
                      save_steps=25, logging_steps=5, final_eval=False)

    def show(m, run):
        if m["step"] % 10 == 0:
            print(f"step {m['step']}/{len(run.plan)} loss {m['loss']:.4f} acc {m['accuracy']:.2f} "
                  f"{m['tokens_per_s']:.0f} tok/s", flush=True)

    return train(cfg, resume=args.resume, progress=show)


def verdict(trained: dict, untrained: dict, length: dict, n_boot: int) -> dict:
    from rmkit.evaluate.metrics import paired_bootstrap

    vs_untrained = paired_bootstrap(trained["correct"], untrained["correct"], n_boot=n_boot)
    vs_length = paired_bootstrap(trained["correct"], length["correct"], n_boot=n_boot)
    passed = all(t["significant"] and t["diff"] > 0 for t in (vs_untrained, vs_length))
    return {"vs_untrained": vs_untrained, "vs_length": vs_length, "passes_bar": passed}


def main(argv=None) -> dict:
    import torch

    from rmkit.evaluate.rewardbench import load_rewardbench
    from rmkit.models.embedded import prepare
    from rmkit.score.baselines import LengthScorer
    from rmkit.score.scorer import RewardScorer

    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    base = prepare("smollm2-135m")
    tpath, _, held = write_split(out)
    rb = load_rewardbench(subsample=args.rewardbench, seed=2024) if args.rewardbench else []
    length = cached(out / "eval_length.json", lambda: evaluate(LengthScorer(), held, rb, args.n_boot))
    summary = train_model(args, base, tpath, out)
    untrained = cached(out / "eval_untrained.json", lambda: evaluate(
        RewardScorer.from_pretrained(base, **SCORING), held, rb, args.n_boot))
    trained = evaluate(RewardScorer.from_pretrained(out / "run" / "model", **SCORING), held, rb, args.n_boot)
    write_json_atomic(out / "eval_trained.json", trained)
    result = {"verdict": verdict(trained, untrained, length, args.n_boot), "train": {
        k: summary[k] for k in ("complete", "steps", "num_steps", "train_seconds")} | {
        "train_pairs": summary["data"]["train_pairs"], "encoding": summary["data"]["train"]},
        "heldout": {n: r["heldout"] for n, r in (("length", length), ("untrained", untrained), ("trained", trained))},
        "rewardbench": {n: r.get("rewardbench") for n, r in (("length", length), ("untrained", untrained),
                                                            ("trained", trained))},
        "args": vars(args), "wall_seconds": round(time.monotonic() - t_start, 1),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}"}
    write_json_atomic(out / "quality.json", result)
    report(result)
    return result


def report(r: dict) -> None:
    for name, h in r["heldout"].items():
        print(f"heldout_accuracy_{name}: {h['accuracy']:.4f} (95% CI {h['ci95'][0]:.3f}-{h['ci95'][1]:.3f}, n={h['n']})")
        for src, b in h.get("by_source", {}).items():
            print(f"  {src}: {b['accuracy']:.4f} (n={b['n']})")
    for name, rb in r["rewardbench"].items():
        if rb:
            print(f"rewardbench_{name}: {rb['score']:.4f} sections {json.dumps({k: round(v, 4) for k, v in rb['sections'].items()})}")
    t = r["train"]
    print(f"trained: {t['steps']}/{t['num_steps']} steps, {t['train_seconds']} s, {t['train_pairs']} pairs in the pool")
    v = r["verdict"]
    for k in ("vs_untrained", "vs_length"):
        print(f"paired_bootstrap_{k}: diff {v[k]['diff']:+.4f} [{v[k]['low']:+.4f}, {v[k]['high']:+.4f}] p={v[k]['p_value']:.3f}")
    print(f"passes_bar: {v['passes_bar']}")


if __name__ == "__main__":
    main()
