"""CLI end to end: the length baseline over the full shared RewardBench set, and resumable scoring."""
import json
import math
import subprocess
import sys

import pytest

from rmkit.data import load_pairs
from rmkit.evaluate.constants import EXAMPLE_COUNTS, SUBSET_MAPPING
from rmkit.score.run import score_file
from rmkit.score.scorer import RewardScorer


def rmkit(*args, env=None):
    return subprocess.run([sys.executable, "-m", "rmkit.cli", *map(str, args)], capture_output=True,
                          text=True, env=env)


def test_length_baseline_on_full_rewardbench_through_the_cli(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("RMKIT_DATA_DIR", str(shared_data))
    out = tmp_path / "rb.json"
    proc = rmkit("eval", "rewardbench", "--scorer", "length", "--output", out, "--n-boot", 200)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    # recompute independently from the raw file: chars of chosen vs rejected, ties wrong
    pairs = load_pairs(shared_data / "reward-bench/filtered.jsonl.gz")
    acc = {}
    for s in EXAMPLE_COUNTS:
        rows = [p for p in pairs if p.category == s]
        acc[s] = sum(len(p.chosen[0].content) > len(p.rejected[0].content) for p in rows) / len(rows)
    for section, subsets in SUBSET_MAPPING.items():
        want = sum(acc[s] * EXAMPLE_COUNTS[s] for s in subsets) / sum(EXAMPLE_COUNTS[s] for s in subsets)
        assert res["sections"][section] == pytest.approx(want)
    assert res["score"] == pytest.approx(sum(res["sections"].values()) / 4)
    assert len(res["items"]) == 2985 and res["subsets"]["alpacaeval-easy"]["accuracy"] == acc["alpacaeval-easy"]
    assert "Chat Hard" in proc.stdout and "Reasoning" in proc.stdout  # the leaderboard row


def test_subsample_and_random_scorer(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("RMKIT_DATA_DIR", str(shared_data))
    outs = []
    for name in ("a.json", "b.json"):
        proc = rmkit("eval", "rewardbench", "--scorer", "random", "--subsample", 230, "--seed", 5,
                     "--output", tmp_path / name, "--n-boot", 50)
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads((tmp_path / name).read_text()))
    assert outs[0]["items"] == outs[1]["items"] and len(outs[0]["items"]) == 230
    assert len(outs[0]["subsets"]) == 23


def test_bad_input_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n{"prompt": "p", "chosen": "c"}\n')
    proc = rmkit("score", bad, "-o", tmp_path / "o.jsonl", "--scorer", "length", "--chunk-size", 1)
    assert proc.returncode == 2 and "row 1, field 'rejected': missing" in proc.stderr
    assert "Traceback" not in proc.stderr


class Interrupt(Exception):
    pass


class KilledAfter:
    """The real scorer, interrupted after `n` calls (as a kill between two chunks would)."""

    def __init__(self, scorer, n):
        self.scorer, self.left, self.name = scorer, n, scorer.name

    def score(self, convs):
        if self.left == 0:
            raise Interrupt
        self.left -= 1
        return self.scorer.score(convs)

    def score_pairs(self, pairs):
        if self.left == 0:
            raise Interrupt
        self.left -= 1
        return self.scorer.score_pairs(pairs)


@pytest.mark.parametrize("kind", ["pairs", "conversations"])
def test_score_resumes_after_a_kill_with_the_same_output(tiny_llama, tmp_path, kind):
    rows = []
    for i in range(23):
        conv = [{"role": "user", "content": "the quick brown fox " * (i % 7 + 1)},
                {"role": "assistant", "content": "Jane gives Mark " * (i % 5 + 1)}]
        rows.append({"id": f"r{i}", "messages": conv} if kind == "conversations" else
                    {"id": f"r{i}", "prompt": conv[0]["content"], "chosen": conv[1]["content"],
                     "rejected": "no " * (i % 3 + 1)})
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scorer = RewardScorer.from_pretrained(tiny_llama, device="cpu")
    full = tmp_path / "full.jsonl"
    score_file(src, full, scorer, chunk_size=4)
    part = tmp_path / "part.jsonl"
    with pytest.raises(Interrupt):
        score_file(src, part, KilledAfter(scorer, 3), chunk_size=4)
    with open(part, "a") as f:
        f.write('{"row": 12, "id": "r1')  # a torn line from a kill in the middle of a write
    stats = score_file(src, part, scorer, chunk_size=4)
    assert stats["resumed_from"] == 12 and stats["total"] == 23
    a = [json.loads(x) for x in full.read_text().splitlines()]
    b = [json.loads(x) for x in part.read_text().splitlines()]
    assert [r["id"] for r in b] == [f"r{i}" for i in range(23)] and [r["row"] for r in b] == list(range(23))
    key = "reward" if kind == "conversations" else "chosen_reward"
    assert all(math.isclose(x[key], y[key], abs_tol=1e-5) for x, y in zip(a, b))


def test_score_errors_skip_counts_and_goes_on(tmp_path):
    from rmkit.score.baselines import LengthScorer

    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "p", "chosen": "cc", "rejected": "r"}\n{"prompt": "p", "chosen": "c"}\n'
                   '{"prompt": "p", "chosen": "ccc", "rejected": ""}\n')
    stats = score_file(src, tmp_path / "o.jsonl", LengthScorer(), errors="skip", chunk_size=1)
    assert stats["total"] == 2 and stats["skipped_rows"] == {"rejected: missing": 1}
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["rejected_reward"] for r in rows] == [1.0, 0.0]  # the empty reply is scored too
    again = score_file(src, tmp_path / "o.jsonl", LengthScorer(), errors="skip")
    assert (again["resumed_from"], again["written"]) == (2, 0)
