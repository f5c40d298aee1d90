"""Decontamination on literal inputs: tokenisation, exact n-gram matching, streaming, bad input."""
from __future__ import annotations

import json
import multiprocessing
import operator
import os
import time
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from rmkit.data import DataError, Message, PreferencePair
from rmkit.decontam import DecontamConfig, decontaminate
from rmkit.decontam import ngrams, stream
from rmkit.decontam.index import NgramIndex
from rmkit.decontam.ngrams import pair_texts, parse_ngram_range, tokenize

BENCH_Q = ("Please write a short story about a brave little toaster who crosses the desert "
           "to find its owner.")


def pair(pid, *user_turns, chosen="ok", rejected="no", source="train"):
    prompt = []
    for i, t in enumerate(user_turns):
        if i:
            prompt.append(Message("assistant", "sure"))
        prompt.append(Message("user", t))
    return PreferencePair(pid, source, prompt, [Message("assistant", chosen)],
                          [Message("assistant", rejected)])


def bench():
    return [pair("b0", BENCH_Q, source="bench"),
            pair("b1", "What is the boiling point of water at sea level in degrees Celsius, please?",
                 source="bench")]


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("Hello,World! It's 2+2.") == ["hello", ",", "world", "!", "it", "'", "s", "2",
                                                   "+", "2", "."]
    assert tokenize("Hello,World! It's", "words") == ["hello", "world", "it", "s"]
    assert tokenize("Ünïcode Straße") == ["ünïcode", "straße"]


def test_parse_ngram_range():
    assert parse_ngram_range("7-13") == (7, 13) and parse_ngram_range(13) == (13, 13)
    for bad in ("13-7", "0", "x", "7-"):
        with pytest.raises(ValueError):
            parse_ngram_range(bad)


def test_pair_texts_turn_options():
    p = pair("x", "first q", "second q", chosen="yes")
    assert pair_texts(p, "first") == ["first q"]
    assert pair_texts(p, "user") == ["first q", "second q"]
    assert pair_texts(p.to_dict(), "all") == ["first q", "sure", "second q", "yes", "no"]


def test_exact_13gram_rule_on_hand_checked_cases():
    index = NgramIndex.build(bench())
    words = BENCH_Q.split()  # 18 words + final "." → 19 tokens
    texts = [
        ["PLEASE write a short story about a brave little toaster who crosses the DESERT!"],  # 14 shared
        [" ".join(words[:12])],                                                 # only 12 tokens
        [" ".join(words[:7]), " ".join(words[7:14])],                           # split over two turns
        ["completely unrelated text about gardening and tomatoes in the summer sun today"],
        ["please write a short story about a brave little toaster who swims the ocean"],  # 11 shared
    ]
    hits = index.match(texts)
    assert set(hits) == {0}
    assert index.docs[next(iter(hits[0].docs))]["id"] == "b0"
    assert sorted(index.ngram_text(13, e) for e in hits[0].ngrams[13]) == [
        "please write a short story about a brave little toaster who crosses the",
        "write a short story about a brave little toaster who crosses the desert"]


def test_range_7_13_matches_shorter_overlaps_and_reports_longest():
    index = NgramIndex.build(bench(), ngram=(7, 13))
    words = BENCH_Q.split()
    hits = index.match([[" ".join(words[:12])], [" ".join(words[:6])],
                        ["so " + " ".join(words[:14])]])
    assert set(hits) == {0, 2}
    assert max(hits[0].ngrams) == 12 and max(hits[2].ngrams) == 13
    assert len(hits[2].ngrams[7]) == 8  # 14 shared words hold 8 distinct 7-grams


def test_hash_collisions_never_flag(monkeypatch):
    """With a degenerate hash (every window hashes to its last token) results stay exact."""
    good = NgramIndex.build(bench()).match([[BENCH_Q], ["x " * 12 + "desert"], ["y " * 20]])
    monkeypatch.setattr(ngrams, "HASH_BASE", np.uint64(0))
    index = NgramIndex.build(bench())
    bad = index.match([[BENCH_Q], ["x " * 12 + "desert"], ["y " * 20]])
    assert set(bad) == set(good) == {0}
    assert {n: len(e) for n, e in bad[0].ngrams.items()} == {13: 7}  # 19 tokens → 7 windows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    b = _write(tmp_path / "bench.jsonl", [p.to_dict() for p in bench()])
    train = [pair(f"t{i}", f"question number {i} about something else entirely") for i in range(40)]
    train[3] = pair("t3", "Hey! " + BENCH_Q, source="magpie")
    train[17] = pair("t17", "Tell me: what is the boiling point of water at sea level in degrees "
                     "Celsius, please?", source="magpie")
    t = _write(tmp_path / "train.jsonl", [p.to_dict() for p in train])
    return tmp_path, b, t


def test_decontaminate_streams_in_order_whatever_the_workers(files):
    tmp, b, t = files
    outs = []
    for workers, chunk in ((1, 1000), (2, 3)):
        cfg = DecontamConfig(train=str(t), against=[str(b)], output=str(tmp / f"c{workers}.jsonl"),
                             removed=str(tmp / f"r{workers}.jsonl"), workers=workers,
                             chunk_size=chunk)
        report = decontaminate(cfg)
        outs.append(((tmp / f"c{workers}.jsonl").read_bytes(), (tmp / f"r{workers}.jsonl").read_bytes()))
        assert (report.kept, report.removed) == (38, 2)
        assert report.per_source() == {"magpie": {"total": 2, "kept": 0, "removed": 2},
                                       "train": {"total": 38, "kept": 38, "removed": 0}}
    assert outs[0] == outs[1]
    removed = [json.loads(line) for line in outs[0][1].decode().splitlines()]
    assert [r["id"] for r in removed] == ["t3", "t17"]
    assert removed[0]["matched"] == [{"benchmark": "bench", "id": "b0", "subset": None}]
    assert removed[0]["prompt"][0]["content"].startswith("Hey!") and removed[0]["chosen"]
    assert removed[1]["matched_ngrams"][0].startswith("boiling point of water")
    kept_ids = [json.loads(line)["id"] for line in outs[0][0].decode().splitlines()]
    assert len(kept_ids) == 38 and "t3" not in kept_ids
    report = json.loads((tmp / "c2.report.json").read_text())
    assert report["removed"] == 2 and "| magpie | 2 | 0 | 2 |" in (tmp / "c2.report.md").read_text()


def test_bad_row_is_named_and_nothing_is_replaced(files):
    tmp, b, t = files
    lines = t.read_text().splitlines()
    row = json.loads(lines[25])
    row["prompt"] = [{"role": "user", "content": 7}]  # an unreadable prompt: the row cannot be checked
    lines[25] = json.dumps(row)
    t.write_text("\n".join(lines) + "\n")
    (tmp / "clean.jsonl").write_text("previous\n")
    cfg = dict(train=str(t), against=[str(b)], output=str(tmp / "clean.jsonl"),
               removed=str(tmp / "rem.jsonl"), workers=2, chunk_size=4)
    with pytest.raises(DataError) as e:
        decontaminate(DecontamConfig(**cfg))
    assert (e.value.row, e.value.field) == (25, "prompt") and str(t) in str(e.value)
    assert multiprocessing.active_children() == []  # the workers stopped with the error, not later
    assert (tmp / "clean.jsonl").read_text() == "previous\n" and not (tmp / "rem.jsonl").exists()
    assert not [p for p in tmp.iterdir() if p.name.endswith(".tmp")]
    report = decontaminate(DecontamConfig(**cfg, errors="skip"))
    assert report.skipped == {"prompt: each message needs a role and a string content": 1}
    d = report.to_dict()
    assert d["input"] == 40 == d["kept"] + d["removed"] + d["skipped_rows"]


@pytest.mark.timeout(120)
def test_a_dying_worker_is_an_error_not_a_hang():
    """A worker killed mid-run (say by the OOM killer) fails the call instead of leaving it waiting
    for a result that never comes, and takes the other workers down with it."""
    index = NgramIndex.build(bench())
    # two slow calls first, so both workers are running before one dies (ProcessPoolExecutor
    # starts its workers on demand, and on Python 3.11 a worker still starting when another dies
    # is never stopped)
    calls = [(time.sleep, 0.5), (time.sleep, 0.5), (os._exit, 3), (divmod, 9, 2)]
    with pytest.raises(BrokenProcessPool):
        list(stream.in_order(operator.call, iter(calls), index, workers=2))
    assert multiprocessing.active_children() == []


def test_non_utf8_and_bad_json_are_named(files):
    tmp, b, t = files
    data = t.read_bytes().split(b"\n")
    data[5] = b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}'
    t.write_bytes(b"\n".join(data))
    with pytest.raises(DataError, match="row 5.*UTF-8"):
        decontaminate(DecontamConfig(train=str(t), against=[str(b)], output=str(tmp / "o.jsonl"),
                                     workers=1))
    data[5] = b'{"prompt": "unterminated'
    t.write_bytes(b"\n".join(data))
    with pytest.raises(DataError, match="row 5.*invalid JSON"):
        decontaminate(DecontamConfig(train=str(t), against=[str(b)], output=str(tmp / "o.jsonl"),
                                     workers=2, chunk_size=2))


def test_config_checks():
    with pytest.raises(ValueError, match="turns"):
        DecontamConfig(train="x.jsonl", output="o.jsonl", turns="second")
    with pytest.raises(ValueError, match="jsonl"):
        DecontamConfig(train="x.jsonl", output="o.parquet")
    with pytest.raises(ValueError, match="n-gram"):
        DecontamConfig(train="x.jsonl", output="o.jsonl", ngram="13-7")


def test_cli_end_to_end(files):
    from typer.testing import CliRunner

    from rmkit.cli import app

    tmp, b, t = files
    result = CliRunner().invoke(app, ["decontaminate", str(t), "--against", str(b), "-o",
                                      str(tmp / "c.jsonl"), "--removed", str(tmp / "r.jsonl"),
                                      "--workers", "2", "--ngram", "7-13"])
    assert result.exit_code == 0, result.output
    assert "**2 of 40 pairs removed**" in result.output
    bad = CliRunner().invoke(app, ["decontaminate", str(tmp / "missing.jsonl"), "-o",
                                   str(tmp / "c.jsonl")])
    assert bad.exit_code == 2 and "missing.jsonl" in bad.output


def test_other_formats_in_and_gzip_out(tmp_path):
    """A JSON list in LLMBar/OffsetBias layout and a grouped format (HelpSteer2) → canonical .gz."""
    import gzip
    from pathlib import Path

    b = _write(tmp_path / "bench.jsonl", [p.to_dict() for p in bench()])
    src = tmp_path / "llmbar.json"
    src.write_text(json.dumps([{"input": BENCH_Q, "output_1": "a", "output_2": "b", "label": 1},
                               {"input": "Name a colour.", "output_1": "x", "output_2": "Red",
                                "label": "2"}]))
    report = decontaminate(DecontamConfig(train=str(src), against=[str(b)], workers=1,
                                          output=str(tmp_path / "c.jsonl.gz"),
                                          removed=str(tmp_path / "r.jsonl")))
    assert report.per_source() == {"llmbar": {"total": 2, "kept": 1, "removed": 1}}
    kept = [json.loads(x) for x in gzip.open(tmp_path / "c.jsonl.gz", "rt")]
    assert kept[0]["chosen"] == [{"role": "assistant", "content": "Red"}]
    hs = Path(__file__).parents[1] / "fixtures" / "curate" / "helpsteer2.jsonl"
    report = decontaminate(DecontamConfig(train=str(hs), against=[str(b)], workers=2, chunk_size=1,
                                          output=str(tmp_path / "h.jsonl")))
    assert report.kept == 3 and report.skipped == {} and report.removed == 0
    rows = [json.loads(x) for x in open(tmp_path / "h.jsonl")]
    assert [r["id"] for r in rows] == ["helpsteer2:0", "helpsteer2:4", "helpsteer2:6"]
    assert rows[0]["meta"]["margin"] == 2.0


def test_prefilter_never_drops_a_real_match():
    """Spacing, case and punctuation adjacency change the characters but not the tokens."""
    words = BENCH_Q.split()
    texts = [["PLEASE\twrite a short   story about a\nbrave little toaster who crosses the"],
             ["please write a short story about a brave little toaster who,crosses the desert"],
             [" ".join(words[:12])], ["nothing to see here at all, just some words in a row ok"]]
    for tokens in ("punct", "words"):
        index = NgramIndex.build(bench(), tokens=tokens)
        exact = index.match(texts, prefilter=False)
        assert set(index.match(texts)) == set(exact)
        assert set(index.prefilter.candidates(texts).tolist()) >= set(exact)
        assert 0 in exact and 2 not in exact and 3 not in exact
    assert 1 not in NgramIndex.build(bench()).match(texts)  # "," is a token in "punct" mode
    assert 1 in NgramIndex.build(bench(), tokens="words").match(texts)


def test_check_rows_off_reads_prompts_only(files):
    """check_rows=False skips the full parse of kept rows; both modes read the replies only when they are
    looked at (turns="all"), where a malformed one is a named error."""
    tmp, b, t = files
    lines = t.read_text().splitlines()
    row = json.loads(lines[30])
    row["rejected"] = [{"role": "assistant", "content": 5}]  # malformed, but only the prompt is read
    lines[30] = json.dumps(row)
    t.write_text("\n".join(lines) + "\n")
    cfg = dict(train=str(t), against=[str(b)], removed=str(tmp / "r.jsonl"), workers=1)
    full = decontaminate(DecontamConfig(**cfg, output=str(tmp / "full.jsonl")))
    report = decontaminate(DecontamConfig(**cfg, output=str(tmp / "fast.jsonl"), check_rows=False))
    assert (report.kept, report.removed) == (full.kept, full.removed) == (38, 2)
    assert (tmp / "fast.jsonl").read_text().splitlines() == [
        x for i, x in enumerate(lines) if i not in (3, 17)]
    with pytest.raises(DataError, match="row 30.*rejected"):
        decontaminate(DecontamConfig(**cfg, output=str(tmp / "all.jsonl"), turns="all"))


@pytest.mark.parametrize("check_rows", [True, False])
def test_a_row_is_checked_on_its_prompt_alone(files, check_rows):
    """Empty, missing or unreadable replies do not stop decontamination: only the prompt is read; a row whose
    prompt cannot be read is skipped with its reason, and input = clean + removed + skipped."""
    tmp, b, t = files
    lines = t.read_text().splitlines()
    rows = [json.loads(x) for x in lines]
    rows[5]["rejected"] = [{"role": "assistant", "content": ""}]   # an empty reply (HH-RLHF has these)
    del rows[6]["chosen"]                                           # no chosen at all
    rows[7]["rejected"] = "a plain string reply"
    rows[8]["prompt"] = []                                          # unreadable: skipped
    t.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = DecontamConfig(train=str(t), against=[str(b)], output=str(tmp / "o.jsonl"), workers=1,
                         errors="skip", check_rows=check_rows)
    report = decontaminate(cfg)
    d = report.to_dict()
    assert d["input"] == 40 and d["skipped_rows"] == 1
    assert d["kept"] + d["removed"] + d["skipped_rows"] == 40
    assert list(d["skipped"]) == ["prompt: expected a non-empty list of messages"]
    kept_ids = {json.loads(x)["id"] for x in (tmp / "o.jsonl").read_text().splitlines()}
    assert {rows[i]["id"] for i in (5, 6, 7)} <= kept_ids
    assert "Input rows 40 = clean" in (tmp / "o.report.md").read_text()
