"""`rmkit decontaminate TRAIN --against rewardbench [--against FILE ...] -o CLEAN --removed REMOVED`.

Adapts the command line to `rmkit.decontam.decontaminate(DecontamConfig)`; prints the report's
markdown. Bad input exits with status 2 and a message naming the file, row and field.
"""
from __future__ import annotations

import json
from typing import List, Optional

import typer


def decontaminate_cmd(
    train: str = typer.Argument(..., help="training pairs: jsonl/json/parquet/csv file or hub id"),
    against: List[str] = typer.Option(["rewardbench"], "--against", "-a",
                                      help="'rewardbench' or a pair file; repeat for several"),
    output: str = typer.Option(..., "--output", "-o", help="clean pairs (.jsonl / .jsonl.gz)"),
    removed: Optional[str] = typer.Option(None, "--removed", help="removed pairs (.jsonl)"),
    ngram: str = typer.Option("13", "--ngram", "-n", help="N or a range LO-HI such as 7-13"),
    turns: str = typer.Option("first", help="benchmark text: first | user | all"),
    train_turns: Optional[str] = typer.Option(None, help="training text (default: as --turns)"),
    tokens: str = typer.Option("punct", help="punct (punctuation as tokens) | words"),
    format: str = typer.Option("auto", "--format", "-f", help="training format (auto-detected)"),
    column_map: Optional[str] = typer.Option(None, help='JSON, e.g. {"prompt": "question"}'),
    split: Optional[str] = typer.Option(None, help="hub split"),
    errors: str = typer.Option("raise", help="malformed rows: raise | skip (counted)"),
    check_rows: bool = typer.Option(True, help="parse and check every row in full; "
                                    "--no-check-rows reads rmkit-written rows up to the prompt"),
    workers: Optional[int] = typer.Option(None, help="worker processes (default: CPUs, max 8)"),
    chunk_size: int = typer.Option(1000, help="pairs per worker task"),
    report: Optional[str] = typer.Option(None, help="report .json (default: next to --output)"),
):
    """Remove training pairs that share an n-gram with a benchmark prompt (Skywork-V2 rule)."""
    from rmkit.data.schema import DataError
    from rmkit.decontam import DecontamConfig, decontaminate
    from rmkit.decontam.report import to_markdown

    kw = {"workers": workers} if workers else {}
    try:
        cfg = DecontamConfig(train=train, output=output, removed=removed, against=list(against),
                             ngram=ngram, turns=turns, train_turns=train_turns, tokens=tokens,
                             format=format, column_map=json.loads(column_map) if column_map else None,
                             split=split, errors=errors, check_rows=check_rows, chunk_size=chunk_size,
                             report=report, **kw)
        result = decontaminate(cfg)
    except (DataError, ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    typer.echo(to_markdown(result.to_dict()))


def register(app, eval_app) -> None:
    app.command("decontaminate")(decontaminate_cmd)
