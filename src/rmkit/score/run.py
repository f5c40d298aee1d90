"""`rmkit score INPUT -o OUTPUT --model M`: score a file of conversations or pairs, resumably.

    from rmkit.score.run import score_file
    score_file("pairs.jsonl", "scored.jsonl", scorer, chunk_size=256)

Input: jsonl / parquet / json / csv. A row holding `messages` (or `conversation`) is one conversation
and gets a `reward`; a best-of-N row (`prompt` + `completions`: N replies, each a string or messages;
optional `correct`) gets every completion's `rewards` and the `best` index (the highest reward, the
first on a tie; null when none could be scored; `best_correct` too when the row says which are
correct), the N completions scored as one group that runs the prompt once; any pair format rmkit
reads gets `chosen_reward` / `rejected_reward`. Output rows keep the input `id` and the row's position. Results are appended chunk by chunk, each chunk
flushed and fsynced; a rerun after a kill drops a torn last line, skips what was written and goes
on, so no row is lost or written twice.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from rmkit.data.io import read_complete_jsonl, read_rows
from rmkit.data.schema import BestOfN, DataError, check_errors, on_row_error, to_conversation
from rmkit.data.sources import iter_pairs

CONV_KEYS = ("messages", "conversation")


def _first_row(source: str) -> dict:
    for _, row in read_rows(source):
        return row
    raise DataError("no rows", file=str(source))


def iter_items(source: str, *, format: str = "auto", errors: str = "raise",
               skipped: Counter | None = None) -> Iterator[tuple[str, str, Any]]:
    """Yield (kind, id, payload): ("conv", id, Conversation), ("bon", id, BestOfN) or ("pair", id,
    PreferencePair). errors="skip": a row that does not parse is counted in `skipped` and left out (the
    same rows on a resume, so the output stays a prefix)."""
    first = _first_row(source)
    key = next((k for k in CONV_KEYS if k in first), None)
    if format == "auto" and key is None and BON_KEYS <= set(first):
        key, parse = "completions", _best_of_n
    elif format == "auto" and key is not None:
        parse = _conversation
    else:
        for pair in iter_pairs(source, format=format, errors=errors, skipped=skipped):
            yield "pair", pair.id, pair
        return
    for index, row in read_rows(source):
        try:
            if key not in row:
                raise DataError("missing", file=str(source), row=index, field=key)
            kind, item = parse(row, key, {"file": str(source), "row": index})
        except DataError as e:
            on_row_error(e, errors, skipped)
            continue
        yield kind, str(row.get("id", index)), item


BON_KEYS = {"prompt", "completions"}


def _conversation(row: dict, key: str, where: dict) -> tuple[str, Any]:
    return "conv", to_conversation(row[key], where={**where, "field": key})


def _best_of_n(row: dict, key: str, where: dict) -> tuple[str, BestOfN]:
    completions = row["completions"]
    if not isinstance(completions, list):
        raise DataError("must be a list of completions", **where, field="completions")
    correct = row.get("correct")
    if correct is not None and not (isinstance(correct, list) and all(isinstance(c, bool) for c in correct)):
        raise DataError("must be a list of true / false, one per completion", **where, field="correct")
    item = BestOfN(id=str(row.get("id", where["row"])), source=str(row.get("source", "")),
                   prompt=to_conversation(row["prompt"], where={**where, "field": "prompt"}),
                   completions=[to_conversation(c, default_role="assistant", where={**where, "field": "completions"})
                                for c in completions],
                   correct=correct, subset=row.get("subset"))
    return "bon", item.validate(**where)


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for it in items:
        chunk.append(it)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _score_chunk(scorer, chunk: list, start: int) -> list[dict]:
    """Conversations and best-of-N completions in one `score` call (a prompt's completions share its
    forward), pairs in one `score_pairs` call."""
    convs = [c for kind, _, c in chunk if kind == "conv"]
    convs += [c for kind, _, item in chunk if kind == "bon" for c in item.conversations()]
    pairs = [p for kind, _, p in chunk if kind == "pair"]
    conv_r = iter(scorer.score(convs)) if convs else iter(())
    pair_r = iter(scorer.score_pairs(pairs)) if pairs else iter(())
    singles = [next(conv_r) for kind, _, _ in chunk if kind == "conv"]
    out, single = [], iter(singles)
    for offset, (kind, item_id, item) in enumerate(chunk):
        row = {"row": start + offset, "id": item_id}
        if kind == "conv":
            row["reward"] = _num(next(single))
        elif kind == "bon":
            row.update(best_of_n([next(conv_r) for _ in item.completions], item.correct))
        else:
            c, r = next(pair_r)
            row.update(chosen_reward=_num(c), rejected_reward=_num(r))
        out.append(row)
    return out


def best_of_n(rewards: list[float], correct: list[bool] | None = None) -> dict[str, Any]:
    """{rewards, best} (+ best_correct): best = the index of the highest reward, the first on a tie,
    None when no completion could be scored."""
    scored = [i for i, r in enumerate(rewards) if r == r]
    best = max(scored, key=lambda i: (rewards[i], -i)) if scored else None
    out: dict[str, Any] = {"rewards": [_num(r) for r in rewards], "best": best}
    if correct is not None:
        out["best_correct"] = None if best is None else bool(correct[best])
    return out


def _num(x: float) -> float | None:
    return None if x != x else x  # NaN (skipped as over-long) → null


def score_file(source: str | os.PathLike, output: str | os.PathLike, scorer, *, chunk_size: int = 256,
               format: str = "auto", progress=None, errors: str = "raise") -> dict[str, Any]:
    """Score `source` into `output` (jsonl), resuming from what `output` already holds."""
    output = Path(output)
    done = read_complete_jsonl(output)
    if [r.get("row") for r in done] != list(range(len(done))):
        raise DataError("existing output is not a prefix written by `rmkit score`; "
                        "remove it or choose another path", file=str(output))
    check_errors(errors)
    skipped: Counter = Counter()
    items = iter_items(str(source), format=format, errors=errors, skipped=skipped)
    for _ in range(len(done)):
        next(items, None)
    written = len(done)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "a", encoding="utf-8") as f:
        for chunk in _chunks(items, chunk_size):
            rows = _score_chunk(scorer, chunk, written)
            f.write("".join(json.dumps(r) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
            written += len(rows)
            if progress is not None:
                progress(len(rows))
    return {"resumed_from": len(done), "written": written - len(done), "total": written,
            "skipped_rows": dict(sorted(skipped.items()))}
