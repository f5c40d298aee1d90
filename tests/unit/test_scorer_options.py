"""The scorer flags are made once (rmkit.score.options) from ScorerConfig and build_scorer: every command that
builds a scorer offers the same flags with the same defaults, and what they say reaches build_scorer."""
from __future__ import annotations

from dataclasses import fields

import click
import pytest
import typer

from rmkit.cli import app
from rmkit.score.config import ScorerConfig
from rmkit.score.options import ScorerSpec, all_flags, scorer_options

SCORING = [("eval", "rewardbench"), ("eval", "rewardbench2"), ("eval", "rmbench"), ("eval", "judgebench"),
           ("eval", "pairwise"), ("calibrate",), ("score",), ("serve",), ("curate",)]


def _command(path) -> click.Command:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def _flags(cmd: click.Command) -> dict[str, object]:
    return {opt: p.default for p in cmd.params for opt in p.opts if opt.startswith("--")}


def test_every_scorer_config_field_with_a_flag_is_a_flag_of_every_scoring_command():
    config_flags = {"--" + f.name.replace("_", "-") for f in fields(ScorerConfig) if f.metadata.get("flag")}
    assert {"--dtype", "--max-length", "--truncation", "--batch-tokens", "--pooling", "--sharing"} <= config_flags
    for path in SCORING:
        assert config_flags <= set(_flags(_command(path))), path


def test_the_same_flag_has_the_same_default_in_every_command():
    defaults = {}
    for path in SCORING[:-1]:  # curate's flags are overrides (default None)
        for flag, default in _flags(_command(path)).items():
            if flag in {"--" + f.name.replace("_", "-") for f in all_flags()} and flag != "--max-batch-size":
                assert defaults.setdefault(flag, default) == default, (path, flag)
    assert defaults["--dtype"] == "auto" and defaults["--truncation"] == "error"
    assert all(v is None for k, v in _flags(_command(("curate",))).items() if k != "--config")


def test_the_flags_reach_the_scorer(monkeypatch):
    seen = {}

    @scorer_options()
    def cmd(out: str = typer.Option("x"), *, spec: ScorerSpec = None):
        seen["spec"] = spec

    from typer.testing import CliRunner

    one = typer.Typer()
    one.command()(cmd)
    result = CliRunner().invoke(one, ["--model", "M", "--backend", "vllm", "--max-length", "512",
                                      "--truncation", "skip", "--engine", "ray", "--actors", "3"])
    assert result.exit_code == 0, result.output
    spec = seen["spec"]
    assert (spec.model, spec.backend, spec.engine, spec.actors, spec.name) == ("M", "vllm", "ray", 3, "M")
    # None (a flag left at "the config's default") is not passed; the rest is, for build_scorer
    assert spec.options["max_length"] == 512 and spec.options["truncation"] == "skip"
    assert "attn_implementation" not in spec.options and "max_batch_size" not in spec.options

    calls = {}
    monkeypatch.setattr("rmkit.score.factory.build_scorer", lambda *a, **k: calls.update(args=a, kwargs=k))
    spec.build()
    assert calls["args"] == ("M", None) and calls["kwargs"]["backend"] == "vllm"
    assert calls["kwargs"]["max_length"] == 512 and calls["kwargs"]["show_progress"] is True


def test_a_command_that_defines_a_scorer_flag_itself_is_refused():
    with pytest.raises(TypeError, match="dtype"):
        @scorer_options()
        def cmd(dtype: str = "x", *, spec: ScorerSpec = None):
            pass


def test_curate_flags_become_rm_filter_overrides(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    got = {}

    def load_config(path, overrides):
        got["o"] = overrides
        raise ValueError("stop here")

    monkeypatch.setattr("rmkit.curate.load_config", load_config)
    result = CliRunner().invoke(app, ["curate", "--config", str(tmp_path / "r.yaml"), "--backend", "vllm",
                                      "--model", "M", "--max-length", "64", "sources.0.limit=3"])
    assert result.exit_code == 2 and "stop here" in result.output
    assert got["o"] == ["sources.0.limit=3", "rm_filter.model=M", "rm_filter.options.backend=vllm",
                        "rm_filter.options.max_length=64"]
