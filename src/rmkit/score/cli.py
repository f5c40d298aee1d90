"""`rmkit score INPUT -o OUTPUT --model M`: rewards for a file of conversations, pairs or best-of-N rows
(`prompt` + N `completions`: every reward and the best index), resumable."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def score_cmd(input: List[Path] = typer.Argument(..., help="jsonl / parquet / json / csv (--engine ray: shards "
                                                           "or folders of jsonl / jsonl.gz / parquet)"),
              output: Path = typer.Option(..., "--output", "-o", help="jsonl to write (resumes if present); "
                                                                      "--engine ray: a folder of output shards"),
              model: Optional[str] = typer.Option(None, "--model", "-m"),
              scorer: Optional[str] = typer.Option(None, "--scorer", help="length | random baseline"),
              format: str = typer.Option("auto", "--format", help="input format (auto-detected)"),
              backend: str = typer.Option("hf", "--backend", help="hf | vllm (pip install 'rmkit[vllm]')"),
              engine: str = typer.Option("local", "--engine", help="local (this process) | ray (Ray Data over "
                                                                   "a pool of scorer actors; pip install 'rmkit[ray]')"),
              actors: int = typer.Option(2, "--actors", help="ray: scorer actors (one per GPU on a cluster)"),
              gpus_per_actor: float = typer.Option(0, "--gpus-per-actor", help="ray: GPUs per actor (1 on GPUs)"),
              address: Optional[str] = typer.Option(None, "--address", help="ray: an existing cluster ('auto' "
                                                                            "or ray://host:10001); none: local"),
              dtype: str = typer.Option("auto", "--dtype", help="auto | float32 | bfloat16 | float16"),
              batch_tokens: int = typer.Option(8192, "--batch-tokens"),
              max_length: Optional[int] = typer.Option(None, "--max-length"),
              truncation: str = typer.Option("error", "--truncation", help="error | skip | truncate"),
              pooling: str = typer.Option("last", "--pooling", help="last | hf"),
              chunk_size: int = typer.Option(256, "--chunk-size", help="rows scored per write (ray: per batch)"),
              device: str = typer.Option("auto", "--device"), seed: int = typer.Option(0, "--seed"),
              errors: str = typer.Option("raise", "--errors", help="malformed rows: raise (a named error) | "
                                                                "skip (counted with the reason, left out)")):
    """Score INPUT with a reward model and write one jsonl row per input row (best-of-N rows: every
    completion's reward and the best index)."""
    from rich.console import Console
    from tqdm.auto import tqdm

    opts = {} if scorer else dict(dtype=dtype, batch_tokens=batch_tokens, max_length=max_length,
                                  truncation=truncation, pooling=pooling, device=device)
    if engine == "ray":
        from rmkit.score.ray_engine import score_shards

        with tqdm(desc="rows", unit="row") as bar:
            stats = score_shards(input, output, model=model or scorer, options=opts, backend=backend,
                                 actors=actors, batch_size=chunk_size, num_gpus=gpus_per_actor,
                                 address=address, format=format, errors=errors, progress=bar.update)
        Console(stderr=True).print(f"wrote {output}/: {stats}")
        return
    if engine != "local":
        raise typer.BadParameter(f"--engine must be local or ray, got {engine!r}")
    if len(input) != 1:
        raise typer.BadParameter("the local engine scores one file; several shards need --engine ray")
    from rmkit.score.factory import build_scorer
    from rmkit.score.run import score_file

    sc = build_scorer(model, scorer, seed=seed, backend=backend, **opts)
    with tqdm(desc="rows", unit="row") as bar:
        stats = score_file(input[0], output, sc, chunk_size=chunk_size, format=format, progress=bar.update,
                           errors=errors)
    extra = dict(getattr(sc, "stats", {}) or {})
    extra["dtype"] = getattr(sc, "dtype_name", None)
    Console(stderr=True).print(f"wrote {output}: {stats} {extra}")


def register(app, eval_app) -> None:
    app.command("score")(score_cmd)
