"""What a CPU-only CI cannot check: rmkit's scorer and trainer on CUDA, against the same work on the CPU.

    RMKIT_DATA_DIR=../shared/data python bench/gpu_check.py --out gpu_check.json

1. `dtype: auto` on CUDA: the scorer's dtype and training's mixed precision (bf16 where CUDA has it).
2. Tiny random models built from a config (Llama, Qwen2, Qwen3, Gemma-2; tests/tiny.py) score 64 short
   RewardBench pairs on the CPU in fp32 (the reference) and on CUDA in fp32 and in `auto` (bf16), with
   prefix sharing on and off: the largest reward difference, the decision agreement, and the attention
   implementation each model was loaded with (Gemma-2 must not run on SDPA).
3. A tiny Llama trained from a trunk store (freeze_layers=1, 3 epochs of 48 toy pairs) on CUDA in fp32 and in
   `mixed_precision: auto`, and on the CPU in fp32 (a subprocess without CUDA): the losses step by step and
   the precision each run recorded.
Prints `name: value` lines and writes every figure to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration")]


def score_checks(tmp: Path, n_pairs: int) -> dict:
    from tiny import build_tokenizer, save_tiny_model

    from rmkit.evaluate.rewardbench import load_rewardbench
    from rmkit.score.scorer import RewardScorer

    pairs = load_rewardbench(subsample=4 * n_pairs, seed=2024)
    out = {}
    for arch, template in (("llama", "llama3"), ("qwen2", "chatml"), ("qwen3", "chatml"), ("gemma2", "gemma")):
        tok = build_tokenizer(template)
        path = save_tiny_model(tmp / arch, arch, tok, template=template, vocab_size=len(tok) + 8,
                               max_position_embeddings=4096)
        runs = {}
        for name, device, dtype, sharing in (("cpu fp32", "cpu", "float32", "auto"),
                                             ("cuda fp32", "cuda", "float32", "auto"),
                                             ("cuda fp32 unshared", "cuda", "float32", "off"),
                                             ("cuda auto", "cuda", "auto", "auto"),
                                             ("cuda auto unshared", "cuda", "auto", "off")):
            scorer = RewardScorer.from_pretrained(path, device=device, dtype=dtype, sharing=sharing,
                                                  max_length=4096, truncation="skip")
            rewards = scorer.score_pairs(pairs[:n_pairs])
            runs[name] = {"rewards": rewards, "dtype": scorer.dtype_name,
                          "attention": scorer.model.config._attn_implementation,
                          "device": str(next(scorer.model.parameters()).device)}
            del scorer
        ref = runs["cpu fp32"]["rewards"]
        res = {"pairs": len(ref)}
        for name, run in runs.items():
            got = run["rewards"]
            diff = max(abs(a - b) for x, y in zip(got, ref) for a, b in zip(x, y))
            agree = sum((c > r) == (c0 > r0) for (c, r), (c0, r0) in zip(got, ref)) / len(ref)
            res[name] = {"dtype": run["dtype"], "attention": run["attention"], "device": run["device"],
                         "max_abs_diff_vs_cpu_fp32": diff, "decision_agreement": agree}
            print(f"{arch} {name}: dtype {run['dtype']}, attention {run['attention']}, device {run['device']}, "
                  f"max |reward - cpu fp32| {diff:.2e}, decisions {agree:.3f}", flush=True)
        out[arch] = res
    return out


def train_run(tmp: Path, precision: str) -> dict:
    from test_train_tiny import cfg, write_toy
    from tiny import save_tiny_model

    from rmkit.train.trainer import train

    model = save_tiny_model(tmp / "model", "llama")
    toy = write_toy(tmp / "toy.jsonl", 48, seed=1)
    summary = train(cfg(model, toy, tmp / "run", num_epochs=3, freeze_layers=1, trunk_cache="on",
                        trunk_dtype="model", mixed_precision=precision, eval_steps=6,
                        learning_rate=1e-4))
    hist = [json.loads(x) for x in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    return {"losses": [h["loss"] for h in hist], "precision": summary["data"]["precision"],
            "distributed": summary["data"]["distributed"],
            "heldout": summary["eval"]["heldout"]["accuracy"], "cuda": torch.cuda.is_available(),
            "trunk_tokens": summary["data"]["trunk"]["tokens"]}


def train_checks(tmp: Path) -> dict:
    runs = {"cuda fp32": train_run(tmp / "cuda-fp32", "no"), "cuda auto": train_run(tmp / "cuda-auto", "auto")}
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    cpu_out = tmp / "cpu.json"
    subprocess.run([sys.executable, __file__, "--train-cpu", str(cpu_out)], env=env, check=True)
    runs["cpu fp32"] = json.loads(cpu_out.read_text())
    ref = runs["cpu fp32"]["losses"]
    for name, run in runs.items():
        diffs = [abs(a - b) for a, b in zip(run["losses"], ref)]
        run["max_loss_diff_vs_cpu_fp32"] = max(diffs)
        run["steps"] = len(run["losses"])
        print(f"train {name}: precision {run['precision']}, cuda {run['cuda']}, steps {run['steps']}, "
              f"loss {run['losses'][0]:.4f} -> {run['losses'][-1]:.4f}, max |loss - cpu fp32| {max(diffs):.2e}, "
              f"held-out accuracy {run['heldout']:.3f}", flush=True)
    return runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--train-cpu", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.train_cpu:  # the CPU reference run, in a process that sees no GPU
        with tempfile.TemporaryDirectory() as d:
            Path(args.train_cpu).write_text(json.dumps(train_run(Path(d), "no")))
        return
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here")
    from rmkit.models.load import resolve_dtype
    from rmkit.train.trainer import resolve_precision

    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "score_dtype_auto": str(resolve_dtype("auto", "cuda")),
              "train_precision_auto": resolve_precision("auto")[0]}
    print(f"device: {result['device']}  torch {result['torch']}")
    print(f"dtype auto on cuda: scoring {result['score_dtype_auto']}, training {result['train_precision_auto']}")
    with tempfile.TemporaryDirectory() as d:
        result["score"] = score_checks(Path(d), args.pairs)
        result["train"] = train_checks(Path(d))
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
