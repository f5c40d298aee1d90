"""Training throughput, in one run, alternating rounds: TRL's RewardTrainer, rmkit's packed path, rmkit's
prefix-shared path and rmkit from the frozen-trunk store; and scored multi-response rows trained as all
their pairs, shared vs the same pairs run one by one. Same model, pairs, trainable set, precision, batch.

    RMKIT_DATA_DIR=../shared/data nice python bench/train_throughput.py --rounds 2 --out bench/results

Model: the embedded SmolLM2-135M (30 layers), layers below K=26 frozen (embeddings too) in every method,
so all train the same 4 layers, the final norm and the head. Data: the first --pairs pairs of rmkit's
training split (`quality_split`) that fit 384 tokens untruncated, HH-RLHF and UltraFeedback interleaved
half and half (so every method sees exactly the same pairs). 1 epoch, batches of 4 pairs, AdamW lr 1e-4,
cosine, fp32 (this machine's CPU has no fast bf16 matmul: 0.28 GFLOP/s vs 106 in fp32), seed 0. Each run is its own process (peak RSS = its ru_maxrss).
(d) trunk: the store (bf16) is built in the same process and timed apart; its cost is amortised over 1, 2
and 4 epochs. Ranked rows: the Magpie ArmoRM example (5 prompts x 5 scored responses, completions that fit
512 tokens), `pair_mode: all` with shared rows vs all ordered pairs written out and trained as pairs (packed).
Prints `name: value` lines; the headline is the last.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PAIRS, BATCH, MAX_LEN, LR, WARMUP, SEED, K = 32, 4, 384, 1e-4, 2, 0, 26
RANKED_MAX = 512
METHODS = ("trl", "packed", "shared", "trunk")
RANKED = ("ranked_pairs", "ranked_shared")


def freeze(model, k: int = K) -> None:
    from rmkit.train.model import freeze_below

    freeze_below(model, k)


def build_data(workdir: Path, model_dir: Path, n: int) -> Path:
    from collections import Counter

    from rmkit.data.io import write_jsonl_atomic
    from rmkit.models.load import load_tokenizer
    from rmkit.train.data import encode_pair
    from rmkit.train.splits import quality_split

    path = workdir / f"pairs-{n}.jsonl"
    if path.exists():
        return path
    tok, stats = load_tokenizer(str(model_dir)), Counter()
    fits = [p for p in quality_split()[0] if encode_pair(tok, p, MAX_LEN, "skip", stats) is not None]
    hh = [p for p in fits if p.source.startswith("hh-rlhf")]
    uf = [p for p in fits if p.source == "ultrafeedback"]
    keep = [p for pair in zip(hh, uf) for p in pair][:n]
    write_jsonl_atomic(path, (p.to_dict() for p in keep))
    return path


def build_ranked(workdir: Path, model_dir: Path) -> tuple[Path, Path]:
    """The Magpie rows (completions that fit) as BestOfN, and the same ordered pairs as a pairs file."""
    from rmkit.data.io import read_rows, write_jsonl_atomic
    from rmkit.data.sources import magpie
    from rmkit.models.chat import render_ids
    from rmkit.models.load import load_tokenizer
    from rmkit.train.data import ranked_edges

    src = Path(os.environ["RMKIT_DATA_DIR"]) / "magpie-armorm-example" / "example_instructions_5res_armorm.json"
    tok = load_tokenizer(str(model_dir))
    groups, pairs = [], []
    for i, row in read_rows(src):
        b = magpie.parse_group(row, file=str(src), index=i)
        keep = [(c, s) for c, s in zip(b.completions, b.scores)
                if len(render_ids(tok, [*b.prompt, *c])) <= RANKED_MAX]
        prompt = [m.to_dict() for m in b.prompt]
        groups.append({"id": b.id, "prompt": prompt, "completions": [[m.to_dict() for m in c] for c, _ in keep],
                       "scores": [s for _, s in keep]})
        for w, l in ranked_edges([s for _, s in keep]):
            pairs.append({"id": f"{b.id}:{w}>{l}", "prompt": prompt, "chosen": [m.to_dict() for m in keep[w][0]],
                          "rejected": [m.to_dict() for m in keep[l][0]]})
    write_jsonl_atomic(workdir / "ranked.jsonl", groups)
    write_jsonl_atomic(workdir / "ranked_pairs.jsonl", pairs)
    return workdir / "ranked.jsonl", workdir / "ranked_pairs.jsonl"


def rmkit_config(which: str, model_dir: Path, workdir: Path, out: Path, n: int):
    from rmkit.train import TrainConfig

    common = dict(model=str(model_dir), max_length=MAX_LEN, truncation="skip", batch_size=BATCH, num_epochs=1,
                  learning_rate=LR, lr_scheduler="cosine", warmup_steps=WARMUP, mixed_precision="no",
                  seed=SEED, output_dir=str(out), final_eval=False, logging_steps=10 ** 6, freeze_layers=K,
                  trunk_cache="off", group_by_length=False)
    data = [str(workdir / f"pairs-{n}.jsonl")]
    if which == "packed":
        return TrainConfig(data=data, packing="on", **common)
    if which == "shared":
        return TrainConfig(data=data, packing="shared", **common)
    if which == "trunk":
        return TrainConfig(data=data, packing="shared", **{**common, "trunk_cache": "auto"})
    common.update(max_length=RANKED_MAX, batch_size=1)
    if which == "ranked_pairs":
        return TrainConfig(data=[str(workdir / "ranked_pairs.jsonl")], packing="on", **{**common, "batch_size": 8})
    return TrainConfig(data=[str(workdir / "ranked.jsonl")], packing="shared", pair_mode="all", **common)


def run_rmkit(which: str, model_dir: Path, workdir: Path, out: Path, n: int) -> dict:
    from rmkit.train import train

    t0, c0 = time.monotonic(), cpu_seconds()
    summary = train(rmkit_config(which, model_dir, workdir, out, n))
    hist = summary_history(out)
    res = {"tokens": sum(h["tokens"] for h in hist), "seconds": summary["train_seconds"],
           "losses": [h["loss"] for h in hist], "total_seconds": time.monotonic() - t0,
           "cpu_seconds": cpu_seconds() - c0, "pairs": summary["data"]["train"].get("group_pairs",
                                                                                   summary["data"]["train_pairs"]),
           "trainable_params": summary["data"]["trainable_params"]}
    if "trunk" in summary["data"]:
        res["build_seconds"] = summary["data"]["trunk"]["build_seconds"]
        res["store_bytes"] = summary["data"]["trunk"]["bytes"]
    return res


def summary_history(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def run_trl(model_dir: Path, workdir: Path, out: Path, n: int) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    rows = [json.loads(x) for x in (workdir / f"pairs-{n}.jsonl").read_text().splitlines()]
    ds = Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows])
    args = RewardConfig(output_dir=str(out), per_device_train_batch_size=BATCH, num_train_epochs=1,
                        learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=WARMUP, bf16=False,
                        use_cpu=True, max_length=MAX_LEN, gradient_checkpointing=False, report_to=[],
                        logging_steps=1, save_strategy="no", seed=SEED, dataloader_num_workers=0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    freeze(model)
    trainer = RewardTrainer(model=model, args=args, train_dataset=ds,
                            processing_class=AutoTokenizer.from_pretrained(model_dir))
    tds = trainer.train_dataset
    tokens = sum(len(x) for x in tds["chosen_ids"]) + sum(len(x) for x in tds["rejected_ids"])
    t0, c0 = time.monotonic(), cpu_seconds()
    trainer.train()
    seconds, cpu = time.monotonic() - t0, cpu_seconds() - c0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens": tokens, "seconds": seconds, "losses": losses, "pairs": len(tds), "cpu_seconds": cpu,
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(which: str, workdir: Path, tag: str, n: int) -> None:
    import torch

    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 4)))
    model_dir = Path(workdir / "model.txt").read_text().strip()
    out = workdir / f"run-{tag}"
    res = run_trl(Path(model_dir), workdir, out, n) if which == "trl" else \
        run_rmkit(which, Path(model_dir), workdir, out, n)
    res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    res["tokens_per_s"] = res["tokens"] / res["seconds"]
    res["pairs_per_s"] = res["pairs"] / res["seconds"]
    print("RESULT " + json.dumps(res), flush=True)


def spawn(which: str, workdir: Path, tag: str, n: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", which, "--workdir", str(workdir), "--tag", tag, "--pairs", str(n)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"{which} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(line[-1][len("RESULT "):])


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name in METHODS:
        losses = results[name][0]["losses"]
        ax.plot(range(1, len(losses) + 1), losses, label=name)
    ax.set_xlabel(f"optimizer step ({BATCH} pairs)")
    ax.set_ylabel("Bradley-Terry loss")
    ax.set_title(f"SmolLM2-135M, layers >= {K} trained, same pairs: four training paths")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=PAIRS)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--workdir", default="/tmp/rmkit-train-throughput")
    ap.add_argument("--worker", choices=METHODS + RANKED)
    ap.add_argument("--tag", default="0")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir)
    if args.worker:
        return worker(args.worker, workdir, args.tag, args.pairs)
    from rmkit.models.embedded import prepare

    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = prepare("smollm2-135m")
    (workdir / "model.txt").write_text(str(model_dir))
    build_data(workdir, model_dir, args.pairs)
    build_ranked(workdir, model_dir)
    results: dict[str, list] = {k: [] for k in METHODS + RANKED}
    for r in range(args.rounds):
        order = METHODS + RANKED if r % 2 == 0 else tuple(reversed(METHODS)) + tuple(reversed(RANKED))
        for which in order:
            res = spawn(which, workdir, f"{which}-{r}", args.pairs)
            results[which].append(res)
            extra = f", store build {res['build_seconds']:.1f} s" if "build_seconds" in res else ""
            print(f"round {r + 1} {which}: {res['tokens_per_s']:.0f} tok/s, {res['pairs_per_s']:.2f} pairs/s, "
                  f"{res['tokens']} tokens in {res['seconds']:.1f} s{extra}, peak RSS {res['peak_rss_gb']:.2f} GB, "
                  f"trainable {res['trainable_params']}, final loss {res['losses'][-1]:.4f}", flush=True)
    report(results, Path(args.out))


def report(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    med = {k: statistics.median(r["tokens_per_s"] for r in v) for k, v in results.items()}
    sec = {k: statistics.median(r["seconds"] for r in v) for k, v in results.items()}
    (out / "train_throughput.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "train_throughput_loss.png")
    for k in results:
        print(f"{k}_tokens_per_s_median: {med[k]:.0f}")
        print(f"{k}_epoch_seconds_median: {sec[k]:.1f}")
        print(f"{k}_peak_rss_gb: {max(r['peak_rss_gb'] for r in results[k]):.2f}")
    build = statistics.median(r["build_seconds"] for r in results["trunk"])
    print(f"trunk_store_build_seconds_median: {build:.1f}")
    print(f"trunk_store_gb: {results['trunk'][0]['store_bytes'] / 1e9:.3f}")
    for e in (1, 2, 4):
        print(f"trunk_over_trl_amortised_{e}_epochs: {sec['trl'] / ((build + e * sec['trunk']) / e):.2f}")
    print(f"loss_curves_png: {out / 'train_throughput_loss.png'}")
    print(f"packed_over_trl: {med['packed'] / med['trl']:.2f}")
    print(f"ranked_shared_over_ranked_pairs: {sec['ranked_pairs'] / sec['ranked_shared']:.2f}")
    print(f"trunk_over_trl_per_epoch_after_first: {sec['trl'] / sec['trunk']:.2f}")
    print(f"shared_over_packed: {med['shared'] / med['packed']:.2f}")


if __name__ == "__main__":
    main()
