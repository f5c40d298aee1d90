"""`rmkit score INPUT -o OUTPUT --model M`: rewards for a file of conversations or pairs (resumable)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def score_cmd(input: Path = typer.Argument(..., help="jsonl / parquet / json / csv"),
              output: Path = typer.Option(..., "--output", "-o", help="jsonl to write (resumes if present)"),
              model: Optional[str] = typer.Option(None, "--model", "-m"),
              scorer: Optional[str] = typer.Option(None, "--scorer", help="length | random baseline"),
              format: str = typer.Option("auto", "--format", help="input format (auto-detected)"),
              dtype: str = typer.Option("float32", "--dtype"),
              batch_tokens: int = typer.Option(8192, "--batch-tokens"),
              max_length: Optional[int] = typer.Option(None, "--max-length"),
              truncation: str = typer.Option("error", "--truncation", help="error | skip | truncate"),
              pooling: str = typer.Option("last", "--pooling", help="last | hf"),
              chunk_size: int = typer.Option(256, "--chunk-size", help="rows scored per write"),
              device: str = typer.Option("auto", "--device"), seed: int = typer.Option(0, "--seed"),
              errors: str = typer.Option("raise", "--errors", help="malformed rows: raise (a named error) | "
                                                                "skip (counted with the reason, left out)")):
    """Score INPUT with a reward model and write one jsonl row per input row."""
    from rich.console import Console
    from tqdm.auto import tqdm

    from rmkit.score.factory import build_scorer
    from rmkit.score.run import score_file

    opts = {} if scorer else dict(dtype=dtype, batch_tokens=batch_tokens, max_length=max_length,
                                  truncation=truncation, pooling=pooling, device=device)
    sc = build_scorer(model, scorer, seed=seed, **opts)
    with tqdm(desc="rows", unit="row") as bar:
        stats = score_file(input, output, sc, chunk_size=chunk_size, format=format, progress=bar.update,
                           errors=errors)
    extra = dict(getattr(sc, "stats", {}) or {})
    Console(stderr=True).print(f"wrote {output}: {stats} {extra}")


def register(app, eval_app) -> None:
    app.command("score")(score_cmd)
