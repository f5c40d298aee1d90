"""The one parser of training rows: a raw row in, a checked `Row` (or a DataError naming file, row,
field) out. Both ways the training side travels (stream.py's records, blocks.py's byte blocks) call
`parse_row`, and nothing else reads a row.

A canonical row (`PreferencePair.to_dict()`, meta kept) is checked with plain type tests (no
PreferencePair built) on its prompt alone (decontamination reads only the prompt; the replies too
under turns="all"); a row read from a jsonl line that needs no rewriting keeps that line, so it is
written back as read.
Any other format goes through its source parser to a PreferencePair.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Mapping

import orjson

from rmkit.data.schema import ROLES, DataError, conversation_to_dicts, to_conversation
from rmkit.data.sources import PARSERS, generic
from rmkit.decontam.ngrams import pair_texts

CANONICAL = "canonical"  # rows that are PreferencePair.to_dict() (meta kept)


@dataclass
class Job:
    """What a worker needs besides the index: how to parse and what to look at."""

    fmt: str
    file: str
    turns: str
    errors: str = "raise"
    column_map: Mapping[str, str] | None = None
    check_rows: bool = True
    canonical: bool = field(init=False)
    """Rows are PreferencePair.to_dict() (else the format's parser reads them)."""
    lazy: bool = field(init=False)
    """Only the prompt of a jsonl row is checked (check_rows=False and the replies unread)."""

    def __post_init__(self):
        self.canonical = self.fmt in (CANONICAL, "pairs") and not self.column_map
        self.lazy = not self.check_rows and self.turns != "all"


@dataclass(slots=True)
class Row:
    texts: list            # the texts matched against the index
    source: str
    line: bytes | memoryview | None  # the jsonl line as read (less trailing whitespace; a view of the
    # block it came from, blocks.py), when it is written back so
    data: dict | None      # the row as written (canonical): when `line` is None, or asked for (`keep`).
    # Not kept otherwise: holding thousands of parsed rows costs more than reading a removed one again.


def as_object(raw: Any, where: Mapping[str, Any]) -> dict:
    """A raw record (a jsonl line as bytes, or a row already read) as a dict, or a named DataError.
    A line is read by orjson; what orjson refuses goes to `_json_loads`."""
    if type(raw) is bytes or isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raw = _json_loads(raw, where)
    if type(raw) is not dict and not isinstance(raw, dict):
        raise DataError("a row must be a JSON object", **where)
    return raw


def _json_loads(raw: bytes | str, where: Mapping[str, Any]) -> Any:
    """A line orjson refused, read by the stdlib json: it names the error ("invalid JSON: ...", "not
    valid UTF-8 (...)", the messages rmkit reports), or it reads the few rows orjson refuses and json
    reads (NaN / Infinity, lone surrogates), as rmkit's other readers (rmkit.data.io) read them.
    This is the error-reporting path, and the path for those rows only: never a second parser."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", **where) from e
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 ({e.reason})", **where) from e


def parse_row(job: Job, raw: Any, row_no: int, *, keep: bool = False) -> Row:
    """The row `raw` (row number `row_no` of job.file), parsed and checked. `keep`: checked in full even
    under check_rows=False, and Row.data kept (a removed row, written with its match fields)."""
    if job.canonical and not keep and (type(raw) is bytes or type(raw) is memoryview):
        row = _as_read(job, raw)
        if row is not None:
            return row
    if type(raw) is memoryview:  # a line of a block read the long way: as a copy
        raw = bytes(raw)
    where = {"file": job.file, "row": row_no}
    row = as_object(raw, where)
    if not job.canonical:
        pair = parser(job)(row, file=job.file, index=row_no)
        return Row(pair_texts(pair, job.turns), pair.source, None, pair.to_dict())
    line = raw.rstrip() if type(raw) is bytes else None  # records are jsonl lines or rows read
    lazy = job.lazy and not keep and line is not None  # then a row is read up to its prompt only
    if not (type(row.get("prompt")) is list and "id" in row
            and (lazy or type(row.get("chosen")) is type(row.get("rejected")) is list)):
        row, line = _rewritten(row, where), None
    prompt = row["prompt"]
    check_messages(prompt, "prompt", None, "user", where)
    if job.turns == "all":  # the replies are looked at too: they must read
        check_messages(row.get("chosen"), "chosen", "assistant", None, where)
        check_messages(row.get("rejected"), "rejected", "assistant", None, where)
    first = prompt[0]
    texts = ([first["content"]] if job.turns == "first" and first["role"] == "user"
             else pair_texts(row, job.turns))
    return Row(texts, str(row.get("source", "")), line, row if keep or line is None else None)


_ROLES = frozenset(ROLES)
_loads, _DecodeError = orjson.loads, orjson.JSONDecodeError


def _as_read(job: Job, raw: bytes | memoryview) -> Row | None:
    """The common case, without building anything: a canonical jsonl line that passes every check of
    `parse_row` as it is (so it is written back as read). None for any other line, which `parse_row` then
    reads the long way (and names what is wrong with it). A view ends with the row's "}" (one with
    trailing whitespace goes the long way, which strips it)."""
    line = raw if type(raw) is memoryview else raw.rstrip()
    if not line or line[-1] != 125:  # 125: "}"
        return None
    try:
        row = _loads(line)
    except _DecodeError:
        return None
    if type(row) is not dict or "id" not in row:
        return None
    get = row.get
    prompt, turns = get("prompt"), job.turns
    if type(prompt) is not list or not prompt or turns == "all":
        return None
    for m in prompt:
        if type(m) is not dict or m.get("role") not in _ROLES or type(m.get("content")) is not str:
            return None
    if m["role"] != "user" or not job.lazy and not (type(get("chosen")) is type(get("rejected")) is list):
        return None
    first = prompt[0]
    texts = [first["content"]] if turns == "first" and first["role"] == "user" else pair_texts(row, turns)
    source = get("source", "")
    return Row(texts, source if type(source) is str else str(source), line, None)


def parser(job: Job):
    """The source parser of a non-canonical job: fn(row, *, file, index) → PreferencePair."""
    if job.column_map:
        return partial(generic.parse_row, column_map=job.column_map)
    if job.fmt == "generic":
        return partial(generic.parse_row, column_map={})
    return PARSERS[job.fmt]


def _rewritten(row: dict, where: dict) -> dict:
    """A canonical row that is not written back as read: with an id, and message lists for strings."""
    if type(row.get("prompt")) is type(row.get("chosen")) is type(row.get("rejected")) is list:
        return {"id": str(where["row"]), **row}  # no id: as PreferencePair.from_dict names it
    return _canonical(row, where)


def _canonical(row: dict, where: dict) -> dict:
    """A row with strings for messages, rewritten with message lists. A row is checked on its prompt
    alone (decontamination reads only the prompt): a reply that does not convert is left as it was."""
    if row.get("prompt") is None:
        raise DataError("missing", **where, field="prompt")
    out = {"id": str(row.get("id", where["row"])), "source": str(row.get("source", "")), **row}
    out["prompt"] = conversation_to_dicts(to_conversation(row["prompt"], where={**where, "field": "prompt"}))
    for k in ("chosen", "rejected"):
        if k in row and type(row[k]) is not list:
            try:
                out[k] = conversation_to_dicts(to_conversation(row[k], default_role="assistant"))
            except DataError:
                pass
    return out


def check_messages(value: Any, name: str, first: str | None, last: str | None, where: dict) -> None:
    """Plain type tests (no objects built): a non-empty list of {role, content: str} messages."""
    if type(value) is not list or not value:
        raise DataError("expected a non-empty list of messages", **where, field=name)
    for m in value:
        if type(m) is not dict or m.get("role") not in ROLES or type(m.get("content")) is not str:
            raise DataError("each message needs a role and a string content", **where, field=name)
    if first and value[0]["role"] != first:
        raise DataError(f"must start with an {first} turn", **where, field=name)
    if last and value[-1]["role"] != last:
        raise DataError(f"must end with a {last} turn", **where, field=name)
