"""The block path (local jsonl of canonical rows) against the row path: same bytes out, same errors."""
from __future__ import annotations

import json

import pytest

from rmkit.data import DataError
from rmkit.decontam import DecontamConfig, blocks, decontaminate, rows

from test_decontam import BENCH_Q, bench, pair


def _rows():
    rows = [pair(f"t{i}", f"question number {i} about something else entirely").to_dict()
            for i in range(30)]
    rows[4] = pair("t4", "Hey! " + BENCH_Q, source="magpie").to_dict()
    return rows


def _odd_lines() -> list[bytes]:
    """Kept rows written every way a jsonl file may hold them, plus rows the reader must rewrite."""
    rows = _rows()
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    lines[1] = json.dumps(rows[1], separators=(",", ":")).encode()          # compact
    lines[2] = json.dumps({**rows[2], "meta": {"é": "ü ✓"}}, ensure_ascii=True).encode()
    lines[3] = json.dumps({k: rows[3][k] for k in reversed(list(rows[3]))}).encode()  # key order
    lines[5] = lines[5] + b"  \r"                                           # trailing whitespace
    lines[6] = b'{"id": "t6", "source": "s", "prompt": "hi there", "chosen": "a", "rejected": "b"}'
    lines[7] = json.dumps({k: v for k, v in rows[7].items() if k != "id"}).encode()  # no id
    lines[8] = lines[8][:-1] + b', "score": NaN}'                            # json, not orjson
    lines[9] = json.dumps({**rows[9], "source": 7}).encode()                # non-string source
    lines[10] = json.dumps(pair("t10", "Hey! " + BENCH_Q).to_dict(), separators=(",", ":")).encode()
    lines[11] = b""                                                          # blank line
    lines[12] = b"   "
    return lines


def _run(tmp_path, name, data: bytes, monkeypatch, block_path: bool, **kw):
    t = tmp_path / f"{name}.jsonl"
    t.write_bytes(data)
    b = tmp_path / "bench.jsonl"
    b.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in bench()))
    with monkeypatch.context() as m:
        if not block_path:
            m.setattr("rmkit.decontam.run.usable", lambda *a: False)
        cfg = DecontamConfig(train=str(t), against=[str(b)], removed=str(tmp_path / f"{name}.r.jsonl"),
                             output=str(tmp_path / f"{name}.c.jsonl"), **kw)
        report = decontaminate(cfg)
    return ((tmp_path / f"{name}.c.jsonl").read_bytes(), (tmp_path / f"{name}.r.jsonl").read_bytes(),
            report.counts, report.subsets, report.skipped)


@pytest.mark.parametrize("check_rows", [True, False])
@pytest.mark.parametrize("workers,chunk", [(1, 1000), (2, 1)])
def test_block_path_writes_what_the_row_path_writes(tmp_path, monkeypatch, workers, chunk, check_rows):
    lines = _odd_lines()
    data = b"\n".join(lines)  # and no newline after the last row
    kw = dict(workers=workers, chunk_size=chunk, check_rows=check_rows)
    fast = _run(tmp_path, "fast", data, monkeypatch, True, **kw)
    slow = _run(tmp_path, "slow", data, monkeypatch, False, **kw)
    assert fast[0] == slow[0] and fast[2:] == slow[2:]
    # removed rows: the same objects, keys in the same order (a row kept compact stays compact)
    assert [list(json.loads(x).items()) for x in fast[1].splitlines()] == [
        list(json.loads(x).items()) for x in slow[1].splitlines()]
    clean = fast[0].split(b"\n")
    assert clean[0] == lines[0] and clean[1:4] == lines[1:4]  # kept byte for byte
    assert b"t4" not in fast[0] and b"t10" not in fast[0]
    removed = [json.loads(x) for x in fast[1].splitlines()]
    assert [r["id"] for r in removed] == ["t4", "t10"]
    assert removed[1]["matched"] == [{"benchmark": "bench", "id": "b0", "subset": None}]


@pytest.mark.parametrize("workers,chunk", [(1, 1000), (2, 3)])
def test_block_path_skips_what_the_row_path_skips(tmp_path, monkeypatch, workers, chunk):
    """Skipped and blank lines beside matched and rewritten rows, in long runs of rows kept as read:
    the clean file is cut around each of them as the row path writes it."""
    lines = _odd_lines()
    lines[13] = b'{"id": "x", "prompt": ['                          # skipped, right after blanks
    lines[15] = lines[15].replace(b'"role": "user"', b'"role": "robot"', 1)  # skipped
    lines[16] = json.dumps(pair("t16", "Hey! " + BENCH_Q).to_dict()).encode()  # removed, then kept
    lines[17] = json.dumps(pair("t17", "Hey! " + BENCH_Q).to_dict()).encode()  # ... removed twice
    lines[29] = b"[1]"                                                    # skipped, the last line
    data = b"\n".join(lines) + b"\n"
    kw = dict(workers=workers, chunk_size=chunk, errors="skip")
    fast = _run(tmp_path, "fast", data, monkeypatch, True, **kw)
    slow = _run(tmp_path, "slow", data, monkeypatch, False, **kw)
    assert fast[0] == slow[0] and fast[2:] == slow[2:]
    assert sum(fast[4].values()) == 3
    kept = [json.loads(x)["id"] for x in fast[0].splitlines()]
    assert kept == [f"t{i}" if i != 7 else "7" for i in range(29) if i not in (4, 10, 11, 12, 13, 15, 16, 17)]
    assert fast[0].split(b"\n")[10:13] == lines[18:21]  # after the removed ones, kept byte for byte


def test_removed_rows_keep_their_own_bytes(tmp_path, monkeypatch):
    lines = _odd_lines()
    fast = _run(tmp_path, "fast", b"\n".join(lines) + b"\n", monkeypatch, True, workers=1)
    removed = fast[1].splitlines()
    assert removed[1].startswith(lines[10][:-1] + b", ")  # compact as read, fields appended
    assert json.loads(removed[1]) == {**json.loads(lines[10]), **json.loads(removed[1])}


@pytest.mark.parametrize("workers", [1, 2])
def test_block_path_names_bad_rows(tmp_path, monkeypatch, workers):
    lines = _odd_lines()
    for i, bad, what in [(20, b'{"id": "x", "prompt": [', "row 20.*invalid JSON"),
                         (21, b'{"id": "x", "prompt": "caf\xe9"}', "row 21.*UTF-8"),
                         (22, lines[22].replace(b'"role": "user"', b'"role": "robot"', 1),
                          "row 22.*field 'prompt'"),
                         (4, lines[4].replace(b'"prompt": [{', b'"prompt": [], "x": [{'),
                          "row 4.*field 'prompt'")]:  # a row is checked on its prompt alone
        data = lines[:i] + [bad] + lines[i + 1:]
        for check_rows in (True, False):
            with pytest.raises(DataError, match=what) as e:
                _run(tmp_path, "bad", b"\n".join(data), monkeypatch, True, workers=workers,
                     chunk_size=1, check_rows=check_rows)
            assert e.value.row == i and not (tmp_path / "bad.c.jsonl").exists()
        skip = _run(tmp_path, "skip", b"\n".join(data), monkeypatch, True, workers=workers,
                    chunk_size=1, errors="skip")
        assert sum(skip[4].values()) == 1


def test_blocks_end_on_line_ends(tmp_path):
    t = tmp_path / "t.jsonl"
    t.write_bytes(b"\n".join(_odd_lines()))
    got = list(blocks.read_blocks(str(t), 100))
    data = t.read_bytes()
    assert b"".join(b for _, _, b in got) == data
    assert all(b.endswith(b"\n") for _, _, b in got[:-1])
    assert all(data[o:o + len(b)] == b for _, o, b in got)
    assert [r for r, _, _ in got] == [data[:o].count(b"\n") for _, o, _ in got]


def test_rows_are_read_by_orjson_and_json_names_what_it_refuses():
    where = {"file": "t.jsonl", "row": 3}
    nan = rows.as_object(b'{"a": NaN}', where)["a"]  # orjson refuses it; read as rmkit.data.io reads it
    assert nan != nan and rows.as_object(b'{"a": 1}', where) == {"a": 1}
    with pytest.raises(DataError, match="row 3: invalid JSON: Expecting value"):
        rows.as_object(b'{"a": ', where)
    with pytest.raises(DataError, match="row 3: a row must be a JSON object"):
        rows.as_object(b"[1]", where)
