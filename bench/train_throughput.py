"""rmkit's trainer vs TRL's RewardTrainer in one run: same model, same 200 real pairs, same hyper-parameters
and precision. Prints real (non-pad) training tokens/s, peak RSS and both loss curves (PNG + JSON).

    RMKIT_DATA_DIR=../shared/data nice python bench/train_throughput.py --rounds 2 --out bench/results

Model: a ~30M-parameter Llama (hidden 384, 6 layers) with SmolLM2's tokenizer and a fixed random init:
SmolLM2-135M itself trains at ~300 tokens/s on a 2-core CPU, too slow for 2 x 200 pairs x rounds.
Data: the first 200 pairs of rmkit's training split that fit 512 tokens (no truncation on either side,
so both trainers see exactly the same pairs). Both: 50 steps of 4 pairs, AdamW lr 1e-4, cosine with 5
warm-up steps, bf16 autocast, no gradient checkpointing, seed 0. Each run is its own process (peak RSS
= that process's ru_maxrss); runs alternate rmkit, TRL, rmkit, TRL, ... The headline is the last line.
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

PAIRS, BATCH, MAX_LEN, LR, WARMUP, SEED = 200, 4, 512, 1e-4, 5, 0


def build_model(workdir: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from rmkit.models.embedded import prepare

    out = workdir / "model"
    if (out / "model.safetensors").exists():
        return out
    tok = AutoTokenizer.from_pretrained(prepare("smollm2-135m"))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=384, intermediate_size=1024, num_hidden_layers=6,
                      num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=2048, num_labels=1,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      tie_word_embeddings=True)
    torch.manual_seed(SEED)
    LlamaForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_data(workdir: Path, model_dir: Path) -> Path:
    from collections import Counter

    from rmkit.data.io import write_jsonl_atomic
    from rmkit.models.load import load_tokenizer
    from rmkit.train.data import encode_pair
    from rmkit.train.splits import quality_split

    path = workdir / "pairs.jsonl"
    if path.exists():
        return path
    tok, stats, keep = load_tokenizer(str(model_dir)), Counter(), []
    for p in quality_split()[0]:
        if len(keep) < PAIRS and encode_pair(tok, p, MAX_LEN, "skip", stats) is not None:
            keep.append(p)
    write_jsonl_atomic(path, (p.to_dict() for p in keep))
    return path


def run_rmkit(model_dir: Path, data: Path, out: Path) -> dict:
    from rmkit.train import TrainConfig, train

    cfg = TrainConfig(model=str(model_dir), data=[str(data)], max_length=MAX_LEN, truncation="skip",
                      batch_size=BATCH, num_epochs=1, learning_rate=LR, lr_scheduler="cosine",
                      warmup_steps=WARMUP, mixed_precision="bf16", seed=SEED, output_dir=str(out),
                      final_eval=False, logging_steps=50)
    t0, c0 = time.monotonic(), cpu_seconds()
    summary = train(cfg)
    cpu = cpu_seconds() - c0
    hist = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {"tokens": sum(h["tokens"] for h in hist), "seconds": summary["train_seconds"],
            "losses": [h["loss"] for h in hist], "total_seconds": time.monotonic() - t0, "cpu_seconds": cpu}


def run_trl(model_dir: Path, data: Path, out: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    rows = [json.loads(x) for x in data.read_text().splitlines()]
    ds = Dataset.from_list([{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows])
    args = RewardConfig(output_dir=str(out), per_device_train_batch_size=BATCH, num_train_epochs=1,
                        learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=WARMUP, bf16=True,
                        use_cpu=True, max_length=MAX_LEN, gradient_checkpointing=False, report_to=[],
                        logging_steps=1, save_strategy="no", seed=SEED, dataloader_num_workers=0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    trainer = RewardTrainer(model=model, args=args, train_dataset=ds,
                            processing_class=AutoTokenizer.from_pretrained(model_dir))
    tds = trainer.train_dataset
    tokens = sum(len(x) for x in tds["chosen_ids"]) + sum(len(x) for x in tds["rejected_ids"])
    t0, c0 = time.monotonic(), cpu_seconds()
    result = trainer.train()
    seconds, cpu = time.monotonic() - t0, cpu_seconds() - c0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens": tokens, "seconds": seconds, "losses": losses, "pairs": len(tds), "cpu_seconds": cpu,
            "train_runtime": result.metrics.get("train_runtime")}


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads): steadier than wall time on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(which: str, workdir: Path, tag: str) -> None:
    import torch

    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 4)))
    model_dir, data = workdir / "model", workdir / "pairs.jsonl"
    res = (run_rmkit if which == "rmkit" else run_trl)(model_dir, data, workdir / f"run-{tag}")
    res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    res["tokens_per_s"] = res["tokens"] / res["seconds"]
    res["tokens_per_cpu_s"] = res["tokens"] / res["cpu_seconds"]
    print("RESULT " + json.dumps(res), flush=True)


def spawn(which: str, workdir: Path, tag: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", which, "--workdir", str(workdir), "--tag", tag]
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
    for name, runs in results.items():
        ax.plot(range(1, len(runs[0]["losses"]) + 1), runs[0]["losses"], label=f"{name} (round 1)")
    ax.set_xlabel("optimizer step (4 pairs)")
    ax.set_ylabel("Bradley-Terry loss")
    ax.set_title("Same model, 200 pairs, same hyper-parameters: rmkit vs TRL RewardTrainer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--workdir", default="/tmp/rmkit-train-throughput")
    ap.add_argument("--worker", choices=("rmkit", "trl"))
    ap.add_argument("--tag", default="0")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir)
    if args.worker:
        return worker(args.worker, workdir, args.tag)
    workdir.mkdir(parents=True, exist_ok=True)
    build_data(workdir, build_model(workdir))
    results: dict[str, list] = {"rmkit": [], "trl": []}
    for r in range(args.rounds):
        for which in ("rmkit", "trl"):
            results[which].append(spawn(which, workdir, f"{which}-{r}"))
            res = results[which][-1]
            print(f"round {r + 1} {which}: {res['tokens_per_s']:.0f} tok/s ({res['tokens_per_cpu_s']:.0f} per CPU-s), "
                  f"{res['tokens']} tokens in "
                  f"{res['seconds']:.1f} s, peak RSS {res['peak_rss_gb']:.2f} GB, final loss {res['losses'][-1]:.4f}",
                  flush=True)
    report(results, Path(args.out))


def report(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    med = {k: statistics.median(r["tokens_per_s"] for r in v) for k, v in results.items()}
    rss = {k: max(r["peak_rss_gb"] for r in v) for k, v in results.items()}
    cpu = {k: statistics.median(r["tokens_per_cpu_s"] for r in v) for k, v in results.items()}
    (out / "train_throughput.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "train_throughput_loss.png")
    for k in results:
        print(f"{k}_tokens_per_s_median: {med[k]:.0f}")
        print(f"{k}_tokens_per_cpu_s_median: {cpu[k]:.0f}")
        print(f"{k}_peak_rss_gb: {rss[k]:.2f}")
    print(f"loss_curves_png: {out / 'train_throughput_loss.png'}")
    print(f"speedup_rmkit_over_trl_tokens_per_cpu_s: {cpu['rmkit'] / cpu['trl']:.2f}")
    print(f"rss_ratio_rmkit_over_trl: {rss['rmkit'] / rss['trl']:.2f}")
    print(f"speedup_rmkit_over_trl_tokens_per_s: {med['rmkit'] / med['trl']:.2f}")


if __name__ == "__main__":
    main()
