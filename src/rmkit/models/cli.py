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
    from rmkit.models.embedded import known

    for name, what in known().items():
        print(f"{name}\t{what}")


@models_app.command("export")
def export_cmd(trained: str = typer.Argument(..., help="the trained checkpoint folder (a run's output_dir/model)"),
               base: str = typer.Option("smollm2-135m", help="the backbone it was trained from"),
               out: str = typer.Option(..., "--out", "-o", help="folder for trained.safetensors + manifest.json"),
               card: str = typer.Option(None, help="a model card (README.md) to ship beside the weights"),
               max_mb: float = typer.Option(32.0, help="refuse a trained part larger than this"),
               delta_dtype: str = typer.Option("auto", help="dense deltas as bfloat16 or int8 ... int4 (one "
                                               "scale per 64 weights); auto: the widest that fits --max-mb, "
                                               "quantised only where bf16 would exceed it")):
    """Write the tensors a run changed (vs its backbone) as a small shipped part, loadable by folder name."""
    import json

    from rmkit.models.trained import export

    manifest = export(trained, base, out, card=card, max_mb=max_mb, delta_dtype=delta_dtype)
    print(json.dumps({k: v for k, v in manifest.items() if k != "tensors"}, indent=1))


def register(app, eval_app) -> None:
    app.add_typer(models_app, name="models")
