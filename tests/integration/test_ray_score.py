"""`rmkit score --engine ray`: Ray Data over a pool of 2 CPU scorer actors on a local Ray, a tiny model.
The scores equal the single-process scorer's; an actor killed mid-run is restarted and its batch
retried (no row lost or written twice); a rerun after a kill redoes only the shards not yet written.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a Ray cluster and its actors: `pytest -m 'not slow'` skips it, `make test` runs it

from bounds import same_decisions
from conftest import needs

from rmkit.data.io import read_complete_jsonl
from rmkit.score.scorer import RewardScorer

SHARDS, ROWS = 3, 20


def _conv(k: int, i: int) -> dict:
    return {"id": f"{k}-{i}", "messages": [{"role": "user", "content": f"Jane has {i} apples. How many?"},
                                           {"role": "assistant", "content": "She has " + "many " * (i % 5)}]}


@pytest.fixture(scope="module")
def ray_local():
    ray = needs("ray", "ray")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture()
def shards(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(SHARDS):
        rows = [_conv(k, i) for i in range(ROWS)]
        (folder / f"part-{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _read(out) -> dict:
    got = {}
    for f in sorted(out.iterdir()):
        for r in read_complete_jsonl(f):
            assert r["id"] not in got, f"row {r['id']} written twice"
            got[r["id"]] = r["reward"]
    return got


@pytest.mark.timeout(900)
def test_ray_actors_score_as_one_process_survive_a_dead_actor_and_resume(ray_local, shards, tmp_path,
                                                                         tiny_llama):
    from rmkit.score.ray_engine import score_shards

    want_sc = RewardScorer.from_pretrained(str(tiny_llama), device="cpu")
    want = {r["id"]: x for r, x in zip((_conv(k, i) for k in range(SHARDS) for i in range(ROWS)),
                                        want_sc.score([_conv(k, i)["messages"] for k in range(SHARDS)
                                                       for i in range(ROWS)]))}
    out = tmp_path / "out"
    marker = tmp_path / "died"
    stats = score_shards([shards], out, model=str(tiny_llama), options={"device": "cpu"}, actors=2,
                         batch_size=8, fail_once=str(marker))
    assert marker.exists(), "an actor process died mid-run"
    assert stats["shards_written"] == SHARDS and stats["rows"] == SHARDS * ROWS
    got = _read(out)
    assert set(got) == set(want)
    assert [got[k] for k in want] == pytest.approx([want[k] for k in want], abs=1e-5)
    assert [r["row"] for r in read_complete_jsonl(sorted(out.iterdir())[1])] == list(range(ROWS))

    # a kill after shard 0 was written: the rerun skips it and writes the two others, once each
    for f in sorted(out.iterdir())[1:]:
        f.unlink()
    again = score_shards([shards], out, model=str(tiny_llama), options={"device": "cpu"}, actors=2,
                         batch_size=8)
    assert again["shards_resumed"] == 1 and again["shards_written"] == SHARDS - 1
    assert again["rows"] == (SHARDS - 1) * ROWS
    rerun = _read(out)
    assert set(rerun) == set(got)
    kept = [r["id"] for r in read_complete_jsonl(sorted(out.iterdir())[0])]
    assert [rerun[k] for k in kept] == [got[k] for k in kept]  # shard 0 was skipped: the same file
    # the others were scored again, in other actors' batches: within the rewards' bound, not bit for bit
    assert [rerun[k] for k in got] == pytest.approx([got[k] for k in got], abs=1e-5)
    done = score_shards([shards], out, model=str(tiny_llama), actors=2)
    assert done["shards_written"] == 0 and done["shards_resumed"] == SHARDS


def test_bad_rows_are_named_or_skipped(ray_local, tmp_path, tiny_llama):
    from rmkit.data.schema import DataError
    from rmkit.score.ray_engine import score_shards

    folder = tmp_path / "in"
    folder.mkdir()
    rows = [_conv(0, 0), {"id": "bad", "messages": [{"role": "wizard", "content": "x"}]}, _conv(0, 2)]
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="a.jsonl") as e:
        score_shards([folder], tmp_path / "o1", model="length", actors=1)
    assert "row 1" in str(e.value) and not any((tmp_path / "o1").iterdir())
    stats = score_shards([folder], tmp_path / "o2", model="length", actors=1, errors="skip")
    assert stats["rows"] == 2 and sum(stats["skipped_rows"].values()) == 1
    assert [r["id"] for r in read_complete_jsonl(next((tmp_path / "o2").iterdir()))] == ["0-0", "0-2"]


@pytest.mark.timeout(900)
def test_ray_scorer_feeds_eval_and_curate_as_the_local_scorer_does(ray_local, tmp_path, tiny_llama, shared_data,
                                                                  monkeypatch):
    """`--engine ray` on `rmkit eval pairwise` and on curate's RM-consistency filter: a RayScorer (2 actors)
    gives the local scorer's rewards, so the official scoring and the kept pairs are the same."""
    from typer.testing import CliRunner

    from rmkit.cli import app
    from rmkit.score.factory import build_scorer

    local = RewardScorer.from_pretrained(str(tiny_llama), device="cpu", truncation="skip")
    remote = build_scorer(str(tiny_llama), engine="ray", actors=1, device="cpu", truncation="skip")
    convs = [_conv(0, i)["messages"] for i in range(5)]
    assert remote.score(convs) == pytest.approx(local.score(convs), abs=1e-5)

    monkeypatch.chdir(Path(__file__).parents[2])  # the curate recipe's relative paths
    runner, out = CliRunner(), {}
    for engine in ("local", "ray"):
        res = runner.invoke(app, ["eval", "pairwise", "--model", str(tiny_llama), "--data",
                                  str(shared_data / "evalbiasbench"), "--device", "cpu", "--truncation", "skip",
                                  "--engine", engine, "--actors", "2", "--dtype", "float32", "--output", str(tmp_path / f"{engine}.json")])
        assert res.exit_code == 0, res.output
        out[engine] = json.loads((tmp_path / f"{engine}.json").read_text())
    # another batch composition: rewards within 1e-5 (DESIGN rule 7), the same decisions beyond near ties
    assert out["ray"]["n_items"] == out["local"]["n_items"] > 0
    near = same_decisions(_item_rewards(out["local"]), _item_rewards(out["ray"]), bound=1e-5)
    assert abs(out["ray"]["score"] - out["local"]["score"]) * out["local"]["n_items"] <= near + 1e-6
    if near == 0:
        assert out["ray"]["subsets"] == out["local"]["subsets"]

    kept = {}
    for engine in ("local", "ray"):
        target = tmp_path / engine / "pairs.jsonl"
        res = runner.invoke(app, ["curate", "--config", "configs/curate/fixture-demo.yaml", f"output={target}",
                                  f"rm_filter.model={tiny_llama}", "rm_filter.options.dtype=float32", "--engine", engine, "--actors", "1"])
        assert res.exit_code == 0, res.output
        kept[engine] = {r["id"]: r["meta"] for r in read_complete_jsonl(target)}
    assert kept["local"]
    both = [i for i in kept["local"] if i in kept["ray"]]
    assert both == [i for i in kept["ray"] if i in kept["local"]]
    for engine, other in (("local", "ray"), ("ray", "local")):  # kept by one path only: a near tie (margin 0)
        for pid in set(kept[engine]) - set(kept[other]):
            meta = kept[engine][pid]
            assert meta["rm_chosen"] - meta["rm_rejected"] <= 2e-5, (engine, pid, meta)


def _item_rewards(results) -> list[tuple[float, float]]:
    """(chosen, rejected) rewards of an eval's items, a skipped one (null) as NaN."""
    nan = float("nan")
    return [(nan if it["chosen_reward"] is None else it["chosen_reward"],
             nan if it["rejected_reward"] is None else it["rejected_reward"]) for it in results["items"]]
