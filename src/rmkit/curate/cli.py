"""`rmkit curate --config CONFIG.yaml [key=value ...]`: adapts the command line to `curate()`.

Prints the report's markdown; bad input exits with status 2 and a message naming the problem. The scorer
flags (every CLI's, `rmkit.score.options`) override the recipe's RM-consistency filter: `--backend vllm` is
`rm_filter.options.backend=vllm`, `--model M` is `rm_filter.model=M`.
"""
from __future__ import annotations

from typing import List, Optional

import typer

from rmkit.score.options import scorer_options


@scorer_options(overrides=True, skip=("baseline",))
def curate_cmd(config: str = typer.Option(..., "--config", "-c", help="recipe YAML"),
               overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides"),
               *, scorer_overrides: dict = None):
    """Build a curated preference mixture from a YAML recipe (Skywork-Reward style)."""
    from rmkit.curate import curate, load_config
    from rmkit.curate.report import to_markdown
    from rmkit.data.schema import DataError

    try:
        extra = [f"rm_filter.{'model' if k == 'model' else 'options.' + k}={v}"
                 for k, v in scorer_overrides.items()]
        cfg = load_config(config, list(overrides or []) + extra)
        result = curate(cfg)
    except (DataError, ValueError, FileNotFoundError, KeyError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    typer.echo(to_markdown(result))
    typer.echo(f"wrote {cfg.output} and {cfg.report}")


def register(app, eval_app) -> None:
    app.command("curate")(curate_cmd)
