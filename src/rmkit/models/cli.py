"""`rmkit models prepare NAME`: build the embedded default checkpoint (SmolLM2-135M + untrained head)."""
from __future__ import annotations

import typer

models_app = typer.Typer(no_args_is_help=True, help="Embedded models.")


@models_app.command("prepare")
def prepare_cmd(name: str = typer.Argument("smollm2-135m"),
                force: bool = typer.Option(False, help="convert again even if cached")):
    """Convert an embedded model once into a cached HF checkpoint and print its path."""
    from rmkit.models.embedded import prepare

    print(prepare(name, force=force))


@models_app.command("list")
def list_cmd():
    from rmkit.models.embedded import NAMES

    for name, what in NAMES.items():
        print(f"{name}\t{what}")


def register(app, eval_app) -> None:
    app.add_typer(models_app, name="models")
