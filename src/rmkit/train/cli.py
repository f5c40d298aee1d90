"""`rmkit train --config FILE [key=value ...] [--resume]`: the CLI adapts arguments to `train(cfg)`.

    rmkit train --config configs/train/smollm2-135m-demo.yaml max_steps=20 output_dir=runs/x
    accelerate launch --config_file configs/accelerate/ddp.yaml -m rmkit.train.cli --config X.yaml  # GPUs
    torchrun --nproc_per_node 2 -m rmkit.train.cli --config X.yaml     # several CPU processes (gloo)
"""
from __future__ import annotations

import json
import logging
import sys
from typing import List, Optional

import typer


def _progress(metrics: dict, run) -> None:
    n = len(run.plan)
    print(f"step {metrics['step']}/{n}  loss {metrics['loss']:.4f}  acc {metrics['accuracy']:.2f}  "
          f"margin {metrics['margin']:+.3f}  lr {metrics['lr']:.2e}  {metrics['tokens_per_s']:.0f} tok/s",
          flush=True)


def train_cmd(config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML recipe"),
              overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides"),
              resume: bool = typer.Option(False, "--resume", help="go on from the last checkpoint"),
              quiet: bool = typer.Option(False, "--quiet", help="no per-step lines")):
    """Train a Bradley-Terry reward model; writes output_dir/model (safetensors + tokenizer + README.md)."""
    from rmkit.train.config import load_config
    from rmkit.train.trainer import train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("accelerate", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = load_config(config, overrides or [])
    summary = train(cfg, resume=resume, progress=None if quiet else _progress)
    print(json.dumps({"output": f"{cfg.output_dir}/model", "complete": summary["complete"],
                      "steps": summary["steps"], "eval": _short(summary["eval"])}, indent=1))


def _short(results: dict) -> dict:
    out = {}
    if "heldout" in results:
        out["heldout_accuracy"] = results["heldout"]["accuracy"]
        out["heldout_ci95"] = results["heldout"]["ci95"]
    if "rewardbench" in results:
        out["rewardbench_score"] = results["rewardbench"]["score"]
    return out


def register(app, eval_app) -> None:
    app.command("train")(train_cmd)


def main(argv: list[str] | None = None) -> None:
    """Entry point for `python -m rmkit.train.cli` (what `accelerate launch -m` runs)."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_cmd)
    app(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
