"""Best-of-N as one command: `rmkit score` on rows with N completions writes every reward and the best
index, each row's completions scored as one group that runs the prompt once, and resumes like any score.

    .venv/bin/python -m pytest tests/integration/test_score_best_of_n.py -q
"""
from __future__ import annotations

import json
import sys

import pytest

from rmkit import cli
from rmkit.data.schema import DataError
from rmkit.score.run import best_of_n, score_file
from rmkit.score.scorer import RewardScorer

Q = "Jane has 12 apples. She gives 4 apples to her friend Mark. How many apples does she have now?"
ROWS = [
    {"id": "a", "prompt": Q, "completions": ["8", "She has 8 apples.", "The quick brown fox."],
     "correct": [True, True, False]},
    {"id": "b", "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}],
     "completions": [[{"role": "assistant", "content": "Hi"}], "Hello! How can I help you today?"]},
    {"id": "c", "prompt": "2+2?", "completions": ["4"]},
]


def run_cli(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["rmkit", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    return e.value.code


def test_best_of_n_rows_through_rmkit_score(tiny_llama, tmp_path, monkeypatch):
    src, out = tmp_path / "bon.jsonl", tmp_path / "scored.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert run_cli(monkeypatch, "score", src, "-o", out, "--model", tiny_llama, "--device", "cpu",
                   "--dtype", "float32") == 0
    got = [json.loads(x) for x in out.read_text().splitlines()]
    scorer = RewardScorer.from_pretrained(str(tiny_llama), device="cpu")
    assert [r["id"] for r in got] == ["a", "b", "c"] and [r["row"] for r in got] == [0, 1, 2]
    for row, res in zip(ROWS, got):
        prompt = [{"role": "user", "content": row["prompt"]}] if isinstance(row["prompt"], str) else row["prompt"]
        convs = [prompt + ([{"role": "assistant", "content": c}] if isinstance(c, str) else c)
                 for c in row["completions"]]
        alone = [scorer.score([c])[0] for c in convs]
        assert res["rewards"] == pytest.approx(alone, abs=1e-5)
        assert res["best"] == max(range(len(alone)), key=lambda i: alone[i])
    assert got[0]["best_correct"] == ROWS[0]["correct"][got[0]["best"]] and "best_correct" not in got[1]
    shared = RewardScorer.from_pretrained(str(tiny_llama), device="cpu")
    assert score_file(src, tmp_path / "again.jsonl", shared)["total"] == 3
    assert shared.stats["shared_groups"] == 2  # rows a and b: the prompt once per row


def test_best_of_n_by_hand_and_bad_rows(tmp_path):
    assert best_of_n([1.0, 3.0, 3.0, float("nan")], [False, True, False, True]) == \
        {"rewards": [1.0, 3.0, 3.0, None], "best": 1, "best_correct": True}  # a tie: the first
    assert best_of_n([float("nan")]) == {"rewards": [None], "best": None}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "completions": ["a", "b"], "correct": [True]}) + "\n")
    with pytest.raises(DataError, match="1 correct for 2 completions"):
        score_file(bad, tmp_path / "o.jsonl", None)
