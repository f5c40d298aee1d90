"""`rmkit <stage> ...`: the command line. Each stage's `cli.py` adds its commands here; the CLI
only adapts arguments to the stage's entry function.

    rmkit models prepare smollm2-135m
    rmkit score pairs.jsonl -o scored.jsonl --model PATH
    rmkit eval rewardbench --scorer length --output results.json
"""
from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="rmkit: curate, decontaminate, train, evaluate, score and serve reward models.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate a reward model on a benchmark.")
app.add_typer(eval_app, name="eval")

# each module defines register(app, eval_app); a stage that is not built yet is simply absent
STAGE_CLIS = ("rmkit.models.cli", "rmkit.score.cli", "rmkit.evaluate.cli", "rmkit.curate.cli",
              "rmkit.decontam.cli", "rmkit.train.cli", "rmkit.serve.cli")


def _register_all() -> None:
    for name in STAGE_CLIS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        module.register(app, eval_app)


_register_all()


def main() -> None:
    """Run the CLI; input errors print one clear line (RMKIT_DEBUG=1 shows the traceback)."""
    import os
    import sys

    try:
        app()
    except (ValueError, FileNotFoundError, ConnectionError, ImportError, KeyError) as e:
        if os.environ.get("RMKIT_DEBUG"):
            raise
        print(f"rmkit: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
