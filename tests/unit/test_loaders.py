"""Loaders on the real shared data and on malformed rows."""
import gzip
import json
from collections import Counter

import pytest

from rmkit.data import DataError, Message, PreferencePair, load_pairs
from rmkit.data.sources import hh_rlhf
from rmkit.evaluate.constants import FILTERED_COUNTS


@pytest.mark.parametrize("name", ["filtered.jsonl.gz", "rewardbench_filtered.parquet"])
def test_rewardbench_rows_per_subset(shared_data, name):
    pairs = load_pairs(shared_data / "reward-bench" / name)
    counts = Counter(p.category for p in pairs)
    assert len(pairs) == 2985 and len(counts) == 23
    assert counts == FILTERED_COUNTS
    p = next(p for p in pairs if p.id == "30")
    assert p.prompt[0].content == "How do I detail a car?" and p.category == "alpacaeval-easy"


def test_rewardbench_two_files_agree(shared_data):
    a = {(p.id, p.category): p for p in load_pairs(shared_data / "reward-bench/filtered.jsonl.gz")}
    b = {(p.id, p.category): p for p in load_pairs(shared_data / "reward-bench/rewardbench_filtered.parquet")}
    assert a.keys() == b.keys()
    k = ("3692", "hep-python")
    assert a[k].chosen == b[k].chosen and a[k].rejected == b[k].rejected


def test_hh_rlhf_multiturn_parsed_into_messages(shared_data):
    path = shared_data / "hh-rlhf/helpful-base/test.jsonl.gz"
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f]
    # pick a real multi-turn row and check it against the raw transcript by hand
    i = next(i for i, r in enumerate(rows) if r["chosen"].count("\n\nHuman:") >= 3)
    pair = hh_rlhf.parse_row(rows[i], file=str(path), index=i)
    raw = rows[i]["chosen"]
    assert [m.role for m in pair.prompt] == ["user", "assistant"] * (len(pair.prompt) // 2) + ["user"]
    assert len(pair.prompt) == 2 * raw.count("\n\nHuman:") - 1
    assert raw.startswith("\n\nHuman: " + pair.prompt[0].content)
    assert raw.endswith("\n\nAssistant: " + pair.chosen[-1].content)
    assert rows[i]["rejected"].endswith(pair.rejected[-1].content)
    assert all("\n\nHuman:" not in m.content for m in pair.prompt)


def test_hh_rlhf_handmade_transcript():
    row = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Capital of France?\n\nAssistant: Paris.",
           "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Capital of France?\n\nAssistant: Rome."}
    pair = hh_rlhf.parse_row(row, file="x", index=0)
    assert [(m.role, m.content) for m in pair.prompt] == [
        ("user", "Hi"), ("assistant", "Hello!"), ("user", "Capital of France?")]
    assert pair.chosen[0].content == "Paris." and pair.rejected[0].content == "Rome."


def test_hh_rlhf_all_splits_load_with_counted_skips(shared_data):
    for split, rows in [("harmless-base", 2312), ("helpful-base", 2354), ("helpful-online", 1137),
                        ("helpful-rejection-sampled", 2749)]:
        skipped = Counter()
        pairs = load_pairs(shared_data / f"hh-rlhf/{split}/test.jsonl.gz", errors="skip", skipped=skipped)
        assert len(pairs) + sum(skipped.values()) == rows
        assert sum(skipped.values()) < 10  # a handful of rows with an empty final reply


def test_ultrafeedback_sample(shared_data):
    pairs = load_pairs(shared_data / "ultrafeedback-binarized-sample/eval_clean.jsonl.gz", errors="skip")
    assert len(pairs) >= 199
    assert all(p.prompt[-1].role == "user" and p.chosen[0].role == "assistant" for p in pairs)
    assert "score_chosen" in str(pairs[0].meta)


def test_skywork_and_ultrafeedback_message_lists(tmp_path):
    rows = [{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
             "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}],
             "source": "magpie_ultra"},
            {"prompt": "q2", "chosen": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a"}],
             "rejected": "b"}]
    (tmp_path / "sky.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (tmp_path / "uf.jsonl").write_text(json.dumps(rows[1]) + "\n")
    sky = load_pairs(tmp_path / "sky.jsonl")[0]
    assert sky.source == "magpie_ultra" and sky.prompt[0].content == "q" and sky.chosen[0].content == "good"
    uf = load_pairs(tmp_path / "uf.jsonl")[0]
    assert [m.content for m in uf.chosen] == ["a"] and uf.rejected[0].content == "b"


def test_generic_column_map(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"q": "Why?", "good": "Because.", "bad": "No.", "k": 9}]),
                   tmp_path / "x.parquet")
    p = load_pairs(tmp_path / "x.parquet", column_map={"prompt": "q", "chosen": "good", "rejected": "bad",
                                                       "id": "k"})[0]
    assert (p.id, p.prompt[0].content, p.chosen[0].content) == ("9", "Why?", "Because.")


@pytest.mark.parametrize("line, field", [
    ('{"prompt": "p", "chosen": "c"}', "rejected"),
    ('{"prompt": "p", "chosen": "c", "rejected": 5}', "rejected"),
    ('{"prompt": "", "chosen": "c", "rejected": "r"}', "prompt"),
])
def test_malformed_row_names_file_row_field(tmp_path, line, field):
    path = tmp_path / "bad.jsonl"
    good = '{"prompt": "p", "chosen": "c", "rejected": "r"}'
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(DataError) as e:
        load_pairs(path, format="ultrafeedback")
    assert (e.value.file, e.value.row, e.value.field) == (str(path), 1, field)
    assert f"row 1, field '{field}'" in str(e.value) and str(path) in str(e.value)


def test_invalid_json_and_utf8_named(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_bytes(b'{"prompt": "p", "chosen": "c", "rejected": "r"}\n{"prompt": \n')
    with pytest.raises(DataError, match=r"broken.jsonl, row 1: invalid JSON"):
        load_pairs(path)
    path.write_bytes(b'{"prompt": "p", "chosen": "c", "rejected": "r"}\n{"prompt": "\xff"}\n')
    with pytest.raises(DataError, match="row 1: not valid UTF-8"):
        load_pairs(path)


def test_unknown_format_is_a_clear_error(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(DataError, match="cannot tell the format"):
        load_pairs(tmp_path / "x.jsonl")


def test_rmkit_pair_rows_roundtrip_with_meta(tmp_path):
    from rmkit.data.io import write_jsonl_atomic

    pair = PreferencePair("x1", "magpie_pro", [Message("user", "q")], [Message("assistant", "a")],
                          [Message("assistant", "b")], category="math", meta={"armorm_mean": 0.31})
    path = tmp_path / "pairs.jsonl"
    write_jsonl_atomic(path, [pair.to_dict()])
    assert (path.stat().st_mode & 0o777) != 0o600  # readable by others, like any written file
    back = load_pairs(path)[0]
    assert back.to_dict() == pair.to_dict()



def test_xstest_pairs_prefer_refusal_only_on_unsafe_prompts(shared_data):
    import csv

    from rmkit.data.sources.xstest import load_xstest_pairs

    pairs = load_xstest_pairs(shared_data / "xstest")
    with open(shared_data / "xstest/xstest_prompts.csv", encoding="utf-8") as f:
        label = {r["prompt"]: r["label"] for r in csv.DictReader(f)}
    final = {}
    with open(shared_data / "xstest/xstest_v2_completions_gpt4.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            final[(r["prompt"], r["completion"])] = r["final_label"]
    assert 0 < len(pairs) <= 450 and len({p.prompt[0].content for p in pairs}) == len(pairs)
    checked = 0
    for p in pairs:
        key = (p.prompt[0].content, p.chosen[0].content)
        if key in final:  # the chosen reply came from gpt4's file: its human label must fit the prompt
            want = "2_full_refusal" if label[key[0]] == "unsafe" else "1_full_compliance"
            assert final[key] == want
            checked += 1
    assert checked > 20
