"""The way in for local jsonl files of canonical rows: byte blocks in, a few pieces out.

The main process reads the training file in blocks of whole lines and has a worker take each block
(from the file itself by offset, or as one bytes object for .gz). The worker runs the block's lines
through stream.run_rows, the same parse, check and match as every other record, and sends back the
clean file as pieces: a row kept as read is only its span of the block (adjacent spans merged), so
the main process writes the clean file straight from its copy of the block, byte for byte, and the
kept rows never travel back between processes. Removed, skipped and rewritten rows are what differ.
"""
from __future__ import annotations

import gzip
import os
from collections import deque
from contextlib import closing
from itertools import count
from pathlib import Path
from typing import Iterator

import numpy as np

from rmkit.decontam import stream
from rmkit.decontam.index import NgramIndex
from rmkit.decontam.rows import Job

BYTES_PER_ROW = 1024  # a block holds about chunk_size rows of 1 KiB


def usable(path: str, fmt: str, job: Job) -> bool:
    """Whether TRAIN can take the block path: a local jsonl(.gz) read row by row as pairs (the
    formats that pair several rows up are parsed by records() and take the row path)."""
    p = Path(path)
    return (fmt == "pairs" and not job.column_map and p.is_file()
            and p.name.endswith((".jsonl", ".jsonl.gz")))


def read_blocks(path: str, size: int) -> Iterator[tuple[int, int, bytes]]:
    """(row number of the first line, byte offset, block of whole lines) over a jsonl(.gz) file
    (offsets into the uncompressed text)."""
    opener = gzip.open if path.endswith(".gz") else open
    row = offset = 0
    with opener(path, "rb") as f:
        while block := f.read(size):
            if not block.endswith(b"\n"):
                block += f.readline()
            yield row, offset, block
            offset += len(block)
            row += int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 10))  # bytes.count
            # is a plain byte loop: this is about twice as fast


def block_rows(first_row: int, block: bytes) -> Iterator[tuple[int, memoryview, tuple[int, int]]]:
    """(row number, line, (start, end) of the line and its newline in the block) of each line that is
    not blank (blank lines are dropped, as the row reader drops them). A line is a view of the block,
    not a copy: the rows of a block are read in place, and nothing of a kept row outlives its parse."""
    view, size, start = memoryview(block), len(block), 0
    find = block.find
    for row_no in count(first_row):
        if start >= size:
            return
        end = find(b"\n", start)
        if end < 0:
            end = size
        if end > start and (block[start] == 123 or not block[start:end].isspace()):  # 123: "{"
            yield row_no, view[start:end], (start, end + 1 if end < size else size)
        start = end + 1


def run_block(job: Job, first_row: int, block: bytes, index: NgramIndex | None = None
              ) -> stream.Result:
    """stream.run_rows on the lines of one block (in a worker, or in-process when index is given)."""
    return stream.run_rows(job, block_rows(first_row, block), index)


def run_block_at(job: Job, first_row: int, path: str, offset: int, size: int) -> stream.Result:
    """run_block on a block the worker reads from the file itself (a plain jsonl, at `path`, made
    absolute for the worker): only numbers travel to it, not the block."""
    with open(path, "rb") as f:
        return run_block(job, first_row, os.pread(f.fileno(), size, offset))


def write_kept(f, block: bytes | None, pieces: list) -> None:
    """The clean file's pieces of one result: bytes as they are, (start, end) spans from the block."""
    view = memoryview(block) if block is not None else None
    for piece in pieces:
        f.write(view[piece[0]:piece[1]] if type(piece) is tuple else piece)


def run_blocks(job: Job, index: NgramIndex, *, workers: int, chunk_size: int
               ) -> Iterator[tuple[bytes, stream.Result]]:
    """(block, result) in file order; stream.in_order's bounds (the blocks handed out and not yet
    read back wait in `held`: at most 2 × workers + 1)."""
    blocks = read_blocks(job.file, chunk_size * BYTES_PER_ROW)
    if workers <= 1:
        for first_row, _, block in blocks:
            yield block, run_block(job, first_row, block, index)
        return
    held: deque[bytes] = deque()
    gz, path = job.file.endswith(".gz"), os.path.abspath(job.file)

    def calls():
        for first_row, offset, block in blocks:
            held.append(block)
            yield (job, first_row, block) if gz else (job, first_row, path, offset, len(block))

    fn = run_block if gz else run_block_at
    with closing(stream.in_order(fn, calls(), index, workers=workers)) as results:
        for result in results:
            yield held.popleft(), result
