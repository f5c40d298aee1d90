"""`rmkit eval <benchmark>`: adapt CLI arguments to each benchmark's entry function.

    rmkit eval rewardbench --scorer length --output results.json
    rmkit eval rewardbench --model smollm2-135m --subsample 300 --dtype bfloat16 --output rb.json
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from rmkit.data.io import write_json_atomic

console = Console(stderr=True)

ModelOpt = typer.Option(None, "--model", "-m", help="reward model: local path, hub id or embedded name")
BaselineOpt = typer.Option(None, "--scorer", help="a model-free baseline instead: length | random")
DataOpt = typer.Option(None, "--data", help="benchmark file (default: local copy under RMKIT_DATA_DIR, else hub)")
OutputOpt = typer.Option(..., "--output", "-o", help="results.json to write")
DtypeOpt = typer.Option("float32", "--dtype", help="float32 | bfloat16 | float16 | auto")
BatchOpt = typer.Option(8192, "--batch-tokens", help="padded tokens per forward")
MaxLenOpt = typer.Option(None, "--max-length", help="longest sequence in tokens")
TruncOpt = typer.Option("error", "--truncation", help="over-long input: error | skip | truncate")
SeedOpt = typer.Option(0, "--seed")
DeviceOpt = typer.Option("auto", "--device")


def scorer_from_cli(model, baseline, *, seed, dtype, batch_tokens, max_length, truncation, device,
                    attn_implementation=None):
    from rmkit.score.factory import build_scorer

    return build_scorer(model, baseline, seed=seed, dtype=dtype, batch_tokens=batch_tokens,
                        max_length=max_length, truncation=truncation, device=device,
                        attn_implementation=attn_implementation, show_progress=True)


def print_row(row: dict[str, str], title: str) -> None:
    table = Table(title=title)
    for col in row:
        table.add_column(col, justify="left" if col == "Model" else "right")
    table.add_row(*row.values())
    Console().print(table)


def rewardbench_cmd(model: Optional[str] = ModelOpt, scorer: Optional[str] = BaselineOpt,
                    data: Optional[str] = DataOpt, subsample: Optional[int] = typer.Option(
                        None, help="stratified by subset, seeded"),
                    output: Path = OutputOpt, seed: int = SeedOpt, dtype: str = DtypeOpt,
                    batch_tokens: int = BatchOpt, max_length: Optional[int] = MaxLenOpt,
                    truncation: str = TruncOpt, device: str = DeviceOpt,
                    attn_implementation: Optional[str] = typer.Option(None, "--attn-implementation"),
                    n_boot: int = typer.Option(1000, "--n-boot")):
    """RewardBench v1 (filtered split) with the official scoring."""
    from rmkit.evaluate.rewardbench import evaluate_rewardbench, leaderboard_row, load_rewardbench

    sc = scorer_from_cli(model, scorer, seed=seed, dtype=dtype, batch_tokens=batch_tokens,
                         max_length=max_length, truncation=truncation, device=device,
                         attn_implementation=attn_implementation)
    pairs = load_rewardbench(data, subsample=subsample, seed=seed)
    console.print(f"RewardBench v1: {len(pairs)} pairs, scorer {sc.name}")
    results = evaluate_rewardbench(sc, pairs, n_boot=n_boot, seed=seed)
    results["scorer_stats"] = dict(getattr(sc, "stats", {}) or {})
    write_json_atomic(output, results)
    print_row(leaderboard_row(results, model or scorer), "RewardBench v1")
    lo, hi = results["intervals"]["score"]
    console.print(f"score {100 * results['score']:.1f} (95% CI {100 * lo:.1f}-{100 * hi:.1f}); "
                  f"wrote {output}")


def register(app, eval_app) -> None:
    eval_app.command("rewardbench")(rewardbench_cmd)
