"""Curation steps on literal, hand-checkable pairs: top-k with offsets, quotas, filters, configs."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rmkit.curate import CurateConfig, load_config
from rmkit.curate.filters import drop_identical, exact_dedup, length_limits
from rmkit.curate.config import apply_overrides
from rmkit.curate.select import apply_quota, quota_count, top_k_per_category
from rmkit.data import Message, PreferencePair

CONFIGS = sorted((Path(__file__).parents[2] / "configs" / "curate").glob("*.yaml"))


def mk(pid, source="s", category=None, score=None, prompt="q", chosen="a", rejected="b"):
    meta = {} if score is None else {"armorm_mean": score}
    return PreferencePair(pid, source, [Message("user", prompt)], [Message("assistant", chosen)],
                          [Message("assistant", rejected)], category=category, meta=meta)


# (id, source, category, average ArmoRM) — the offsets below make air -0.1 and pro -0.05
TABLE = [("u1", "ultra", "math", 0.20), ("a1", "air", "math", 0.28), ("p1", "pro", "math", 0.24),
         ("u2", "ultra", "math", 0.17), ("a2", "air", "math", 0.26), ("u3", "ultra", "code", 0.15),
         ("p2", "pro", "code", 0.21), ("a3", "air", "code", 0.24), ("u4", "ultra", "other", 0.30),
         ("p3", "pro", "other", 0.36), ("a4", "air", "Brainstorming", 0.39), ("x1", "ultra", None, None)]
OFFSETS = {"air": -0.1, "pro": -0.05}


def test_top_k_with_offsets_on_a_hand_made_table():
    pairs = [mk(i, s, c, v) for i, s, c, v in TABLE]
    kept, drops = top_k_per_category(pairs, {"math": 0.5, "code": 1, "other": 2}, offsets=OFFSETS)
    # math after offsets: u1 .20, p1 .19, a1 .18, u2 .17, a2 .16 → half of 5 rounds to 3 (half up)
    # code: p2 .16, u3 .15, a3 .14 → 1; other (a4 "Brainstorming" counts as other):
    # a4 .29, u4 .30, p3 .31 → 2
    assert [p.id for p in kept] == ["u1", "a1", "p1", "p2", "u4", "p3"]
    reasons = {p.id: r for p, r, _ in drops}
    assert reasons == {"u2": "below_top_k", "a2": "below_top_k", "u3": "below_top_k",
                       "a3": "below_top_k", "a4": "below_top_k", "x1": "no_score"}
    without = top_k_per_category(pairs, {"math": 0.5, "code": 1, "other": 2})[0]
    assert [p.id for p in without] == ["a1", "p1", "a2", "a3", "p3", "a4"]


def test_top_k_ties_follow_the_seed_not_the_order():
    pairs = [mk(f"t{i}", category="math", score=0.5) for i in range(10)]
    picks = {s: {p.id for p in top_k_per_category(pairs, {"math": 3}, seed=s)[0]} for s in range(6)}
    assert {p.id for p in top_k_per_category(pairs[::-1], {"math": 3}, seed=0)[0]} == picks[0]
    assert len(set(map(frozenset, picks.values()))) > 1
    assert top_k_per_category(pairs, {"code": 1})[1][0][1] == "no_category_quota"


def test_quota_count_and_seeded_quota():
    assert [quota_count(k, 10) for k in (0.3, 0.25, 0.05, 3, 30)] == [3, 3, 1, 3, 10]
    pairs = [mk(f"q{i}") for i in range(20)]
    a, drops = apply_quota(pairs, 5, seed=1)
    assert [p.id for p in a] == [p.id for p in apply_quota(pairs, 5, seed=1)[0]]
    assert len(a) == 5 and len(drops) == 15 and drops[0][1] == "over_quota"
    assert [p.id for p in a] == sorted((p.id for p in a), key=lambda s: int(s[1:]))  # order kept
    assert apply_quota(pairs, None, 0)[0] == pairs


def test_identical_length_and_dedup_filters():
    pairs = [mk("1"), mk("2", chosen="same", rejected="same"), mk("3"), mk("4", chosen="x" * 50),
             mk("5", rejected="  ")]
    kept, drops = drop_identical(pairs)
    assert [p.id for p in kept] == ["1", "3", "4", "5"] and drops[0][1] == "identical"
    kept, drops = length_limits(kept, max_chars=20)
    assert [p.id for p in kept] == ["1", "3"]
    assert [(p.id, r) for p, r, _ in drops] == [("4", "too_long"), ("5", "too_short")]
    kept, drops = exact_dedup(kept)
    assert [p.id for p in kept] == ["1"] and drops[0][2] == "same as s/1"


def test_overrides_and_config_checks(tmp_path):
    data = {"seed": 0, "sources": [{"name": "a", "path": "x"}], "top_k": {"per_category": {}}}
    apply_overrides(data, ["seed=3", "sources.0.quota=10", "top_k.per_category.math=0.5",
                           "rm_filter.model=length"])
    assert data["seed"] == 3 and data["sources"][0]["quota"] == 10
    assert data["top_k"]["per_category"] == {"math": 0.5} and data["rm_filter"] == {"model": "length"}
    with pytest.raises(ValueError, match="unknown sources"):
        CurateConfig(sources=[{"name": "a", "path": "x"}], output="o.jsonl",
                     rm_filter={"model": "length", "sources": ["b"]})
    with pytest.raises(ValueError, match="unique"):
        CurateConfig(sources=[{"name": "a", "path": "x"}, {"name": "a", "path": "y"}],
                     output="o.jsonl")
    bad = tmp_path / "bad.yaml"
    bad.write_text("outptu: x.jsonl\nsources: []\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_config(bad)


def test_no_off_yes_on_keep_the_type_of_the_field_they_fill(tmp_path):
    """YAML 1.1 reads no/off/yes/on as booleans; a string field keeps the word, a bool field a bool."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("output: o.jsonl\nsources:\n  - {name: no, path: x, select: yes}\n  - {name: on, path: y}\n"
                      "dedup: off\nrm_filter: {model: length, sources: [no], options: {trust_remote_code: no}}\n")
    cfg = load_config(recipe, ["sources.1.split=off", "shuffle=on"])
    assert [s.name for s in cfg.sources] == ["no", "on"] and cfg.sources[1].split == "off"
    assert cfg.sources[0].select is True and cfg.dedup is False and cfg.shuffle is True
    assert cfg.rm_filter.sources == ["no"] and cfg.rm_filter.options == {"trust_remote_code": False}
    with pytest.raises(ValueError, match="config.dedup must be true or false"):
        load_config(recipe, ["dedup=sometimes"])


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_curate_config_parses_and_names_its_command(path):
    first = path.read_text().splitlines()[0]
    rel = path.relative_to(path.parents[2]).as_posix()
    assert first.startswith("# rmkit curate --config " + rel)
    cfg = load_config(path)
    assert cfg.sources and cfg.output
    assert yaml.safe_load(path.read_text())["sources"]


def test_skywork_config_is_the_recipe():
    cfg = load_config(Path(__file__).parents[2] / "configs" / "curate" / "skywork-80k.yaml")
    offsets = {s.name: s.offset for s in cfg.sources if s.select}
    assert offsets == {"magpie_ultra": 0.0, "magpie_pro_llama3.1": 0.0, "magpie_pro": -0.05,
                       "magpie_air": -0.1}
    assert {s.name for s in cfg.sources} >= {"helpsteer2", "offsetbias", "wildguard"}
    assert cfg.rm_filter.sources == ["wildguard"]
    assert set(cfg.top_k.per_category) == {"math", "code", "other"}


def test_curate_and_decontam_never_import_torch():
    import subprocess
    import sys

    code = ("import sys, rmkit.curate, rmkit.curate.cli, rmkit.decontam, rmkit.decontam.cli, "
            "rmkit.data.sources; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
