"""`rmkit score INPUT -o OUTPUT --model M`: rewards for a file of conversations, pairs or best-of-N rows
(`prompt` + N `completions`: every reward and the best index), resumable. The scorer flags are every CLI's
(`rmkit.score.options`)."""
from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from rmkit.score.options import ScorerSpec, scorer_options


@scorer_options()
def score_cmd(input: List[Path] = typer.Argument(..., help="jsonl / parquet / json / csv (--engine ray: shards "
                                                           "or folders of jsonl / jsonl.gz / parquet)"),
              output: Path = typer.Option(..., "--output", "-o", help="jsonl to write (resumes if present); "
                                                                      "--engine ray: a folder of output shards"),
              format: str = typer.Option("auto", "--format", help="input format (auto-detected)"),
              chunk_size: int = typer.Option(256, "--chunk-size", help="rows scored per write (ray: per batch)"),
              errors: str = typer.Option("raise", "--errors", help="malformed rows: raise (a named error) | "
                                                                "skip (counted with the reason, left out)"),
              *, spec: ScorerSpec = None):
    """Score INPUT with a reward model and write one jsonl row per input row (best-of-N rows: every
    completion's reward and the best index)."""
    from rich.console import Console
    from tqdm.auto import tqdm

    if spec.engine == "ray":
        from rmkit.score.ray_engine import score_shards

        with tqdm(desc="rows", unit="row") as bar:
            stats = score_shards(input, output, model=spec.name, options=spec.options if spec.model else {},
                                 backend=spec.backend, actors=spec.actors, batch_size=chunk_size,
                                 num_gpus=spec.gpus_per_actor, address=spec.address, format=format,
                                 errors=errors, progress=bar.update)
        Console(stderr=True).print(f"wrote {output}/: {stats}")
        return
    if spec.engine != "local":
        raise typer.BadParameter(f"--engine must be local or ray, got {spec.engine!r}")
    if len(input) != 1:
        raise typer.BadParameter("the local engine scores one file; several shards need --engine ray")
    from rmkit.score.run import score_file

    sc = spec.build(show_progress=False)
    with tqdm(desc="rows", unit="row") as bar:
        stats = score_file(input[0], output, sc, chunk_size=chunk_size, format=format, progress=bar.update,
                           errors=errors)
    extra = dict(getattr(sc, "stats", {}) or {})
    extra["dtype"] = getattr(sc, "dtype_name", None)
    Console(stderr=True).print(f"wrote {output}: {stats} {extra}")


def register(app, eval_app) -> None:
    app.command("score")(score_cmd)
