"""`rmkit curate --config CONFIG.yaml [key=value ...]`: adapts the command line to `curate()`.

Prints the report's markdown; bad input exits with status 2 and a message naming the problem.
"""
from __future__ import annotations

from typing import List, Optional

import typer


def curate_cmd(config: str = typer.Option(..., "--config", "-c", help="recipe YAML"),
               overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides"),
               backend: Optional[str] = typer.Option(None, "--backend", help="the RM-consistency filter's scorer: "
                                                     "hf | vllm (= rm_filter.options.backend=...)"),
               engine: Optional[str] = typer.Option(None, "--engine", help="the RM-consistency filter's engine: "
                                                    "local | ray (= rm_filter.options.engine=...)"),
               actors: Optional[int] = typer.Option(None, "--actors", help="--engine ray: scorer actors "
                                                    "(= rm_filter.options.actors=...)")):
    """Build a curated preference mixture from a YAML recipe (Skywork-Reward style)."""
    from rmkit.curate import curate, load_config
    from rmkit.curate.report import to_markdown
    from rmkit.data.schema import DataError

    try:
        extra = [f"rm_filter.options.{k}={v}" for k, v in
                 (("backend", backend), ("engine", engine), ("actors", actors)) if v is not None]
        cfg = load_config(config, list(overrides or []) + extra)
        result = curate(cfg)
    except (DataError, ValueError, FileNotFoundError, KeyError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    typer.echo(to_markdown(result))
    typer.echo(f"wrote {cfg.output} and {cfg.report}")


def register(app, eval_app) -> None:
    app.command("curate")(curate_cmd)
