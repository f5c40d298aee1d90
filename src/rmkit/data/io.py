"""Reading and writing rows: jsonl(.gz) / json / parquet / csv files or a hub id, atomic writes.

    from rmkit.data.io import read_rows, write_jsonl_atomic
    for row_index, row in read_rows("pairs.jsonl"):   # (0-based row, dict)
        ...

A hub id (`owner/name`, optionally `:split`) is read through `datasets`, so it needs the network or
the local HF cache; a local path never touches the network.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from rmkit.data.schema import DataError

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet", ".csv")


def is_local(source: str | os.PathLike) -> bool:
    return Path(source).exists()


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="strict")
    return open(path, encoding="utf-8", errors="strict")


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        for row, raw in enumerate(f):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"not valid UTF-8 ({e.reason})", file=str(path), row=row) from e
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"invalid JSON: {e.msg}", file=str(path), row=row) from e
            if not isinstance(obj, dict):
                raise DataError("a row must be a JSON object", file=str(path), row=row)
            yield row, obj


def _read_json(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        with _open_text(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"invalid JSON: {e}", file=str(path)) from e
    if isinstance(data, dict):  # {name: [rows]} (e.g. EvalBiasBench) or {"data": [...]}
        rows = []
        for key, val in data.items():
            if isinstance(val, list):
                rows.extend({**r, "_group": key} if isinstance(r, dict) else r for r in val)
        data = rows
    if not isinstance(data, list):
        raise DataError("expected a JSON list of objects", file=str(path))
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise DataError("a row must be a JSON object", file=str(path), row=i)
        yield i, obj


def _read_parquet(path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=2048):
        for obj in batch.to_pylist():
            yield row, obj
            row += 1


def _read_csv(path: Path) -> Iterator[tuple[int, dict]]:
    with _open_text(path) as f:
        for i, obj in enumerate(csv.DictReader(f)):
            yield i, obj


def _read_hub(name: str, split: str | None) -> Iterator[tuple[int, dict]]:
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a core dependency
        raise ImportError("reading a hub dataset needs `datasets`") from e
    ds = datasets.load_dataset(name, split=split or "train", streaming=True)
    for i, obj in enumerate(ds):
        yield i, dict(obj)


def read_rows(source: str | os.PathLike, *, split: str | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (row_index, row) from a local file (by suffix) or a hub id (`name` or `name:split`)."""
    path = Path(source)
    if path.exists():
        name = path.name
        if name.endswith((".jsonl", ".jsonl.gz")):
            return _read_jsonl(path)
        if name.endswith((".json", ".json.gz")):
            return _read_json(path)
        if name.endswith(".parquet"):
            return _read_parquet(path)
        if name.endswith(".csv"):
            return _read_csv(path)
        raise DataError(f"unknown file type; expected one of {SUFFIXES}", file=str(path))
    text = str(source)
    if text.count("/") != 1 or text.startswith((".", "/")) or any(text.endswith(s) for s in SUFFIXES):
        raise FileNotFoundError(f"{source}: no such file (and not a hub id like 'owner/name')")
    if ":" in text and split is None:
        text, split = text.split(":", 1)
    return _read_hub(text, split)


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_rows(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically as jsonl or parquet (by suffix)."""
    if str(path).endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = list(rows)
        with atomic_path(path) as tmp:
            pq.write_table(pa.Table.from_pylist(rows), tmp)
        return len(rows)
    return write_jsonl_atomic(path, rows)


def read_complete_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a jsonl file that a killed writer may have left with a torn last line.

    The torn tail is cut off the file, so an appending writer can go on from a clean end.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    return [json.loads(line) for line in data[:end].decode("utf-8").splitlines() if line.strip()]
