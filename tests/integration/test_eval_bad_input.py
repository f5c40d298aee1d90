"""Every `rmkit eval` command gives the same answer to the same bad input: an error naming the file (and the row
and the field where there is one), exit status 2, and no results file."""
import json
import sys

import pytest

from rmkit import cli

GOOD = {
    "rewardbench": ({"id": 1, "subset": "alpacaeval-easy", "prompt": "q", "chosen": "long answer",
                     "chosen_model": "a", "rejected": "short", "rejected_model": "b"}, "prompt"),
    "rewardbench2": ({"id": "f1", "subset": "Factuality", "prompt": "q", "chosen": ["aaaa"],
                      "rejected": ["bb", "cc", "d"], "num_correct": 1, "total_completions": 4}, "prompt"),
    "rmbench": ({"id": "chat/1", "prompt": "q", "domain": "chat", "chosen": ["a", "bb", "ccc"],
                 "rejected": ["d", "ee", "fff"]}, "prompt"),
    "judgebench": ({"pair_id": "p1", "source": "livecodebench", "question": "q", "response_A": "aaaa",
                    "response_B": "bb", "label": "A>B"}, "question"),
    "pairwise": ({"input": "q", "output_1": "aaaa", "output_2": "bb", "label": 1}, "input"),
}


def _rows(cmd: str, case: str) -> bytes | None:
    good, key = GOOD[cmd]
    if case == "empty":
        return b""
    if case == "missing field":
        bad = {k: v for k, v in good.items() if k != key}
    elif case == "wrong type":
        bad = {**good, key: 5}
    else:
        bad = None
    lines = [json.dumps(good).encode()]
    lines.append(json.dumps(bad).encode() if bad is not None else json.dumps(good).encode().replace(b'"q"', b'"q\xff"'))
    return b"\n".join(lines) + b"\n"


CASES = ["empty", "folder", "missing field", "wrong type", "non-UTF-8"]


def _run(monkeypatch, capsys, args) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["rmkit", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cmd", list(GOOD))
def test_bad_input_is_named_and_exits_2(cmd, case, tmp_path, monkeypatch, capsys):
    if case == "folder":
        data = tmp_path / "a_folder"
        data.mkdir()
    else:
        data = tmp_path / "bench.jsonl"
        data.write_bytes(_rows(cmd, case))
    out = tmp_path / "results.json"
    code, err = _run(monkeypatch, capsys, ["eval", cmd, "--scorer", "length", "--data", data, "--output", out])
    assert code == 2, err
    assert str(data.name) in err, err
    if case in ("missing field", "wrong type", "non-UTF-8"):
        assert "row 1" in err, err
    if case in ("missing field", "wrong type"):
        named = "prompt" if (cmd, case) == ("pairwise", "missing field") else GOOD[cmd][1]  # any prompt key
        assert f"field '{named}'" in err, err
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("cmd", list(GOOD))
def test_errors_skip_counts_the_bad_row_and_scores_the_rest(cmd, tmp_path, monkeypatch, capsys):
    data = tmp_path / "bench.jsonl"
    data.write_bytes(_rows(cmd, "wrong type"))
    out = tmp_path / "results.json"
    code, err = _run(monkeypatch, capsys, ["eval", cmd, "--scorer", "length", "--data", data, "--output", out,
                                           "--errors", "skip", "--n-boot", 20])
    assert code == 0, err
    res = json.loads(out.read_text())
    assert sum(res["skipped_rows"].values()) == 1 and res["complete"] is False
    assert "skipped 1 unreadable rows" in err
