"""`rmkit eval <benchmark>` and `rmkit compare`: adapt CLI arguments to each benchmark's entry function.

    rmkit eval rewardbench --scorer length --output results.json --report report/
    rmkit eval rewardbench --model smollm2-135m --subsample 300 --dtype bfloat16 --output rb.json
    rmkit eval rewardbench2 --model M --output rb2.json          # hub allenai/reward-bench-2 (or --data)
    rmkit eval rmbench --model M --data total_dataset.json --output rmb.json
    rmkit eval judgebench --model M --output jb.json             # hub ScalerLab/JudgeBench split gpt
    rmkit eval pairwise --scorer length --data ../shared/data/llmbar --output llmbar.json --report out/
    rmkit eval rmb --model M --data RMB_dataset/ --output rmb.json   # RMB's repository folder (no hub copy)
    rmkit compare a.json b.json --output cmp.json
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from rmkit.data.io import write_json_atomic
from rmkit.score.options import JudgeSpec, ScorerSpec, judge_options, scorer_options

console = Console(stderr=True)

DataOpt = typer.Option(None, "--data", help="benchmark file (default: local copy under RMKIT_DATA_DIR, else hub)")
OutputOpt = typer.Option(..., "--output", "-o", help="results.json to write")
SeedOpt = typer.Option(0, "--seed")
ReportOpt = typer.Option(None, "--report", help="folder for a markdown + PNG + HTML report")
NBootOpt = typer.Option(1000, "--n-boot", help="bootstrap resamples for the 95% intervals")
ErrorsOpt = typer.Option("raise", "--errors", help="malformed rows: raise (a named error) | skip (counted, "
                                                    "with the reason, in the results)")


def use_judge(judge: JudgeSpec, spec: ScorerSpec, benchmark: str) -> bool:
    """Whether this run is a judge's: refused (a BadParameter with the reason) where the benchmark defines
    no judge protocol, or when a reward model is named as well."""
    if judge.judge is None:
        return False
    from rmkit.evaluate.judging import NO_PROTOCOL

    if benchmark in NO_PROTOCOL:
        raise typer.BadParameter(NO_PROTOCOL[benchmark], param_hint="--judge")
    if spec.name is not None:
        raise typer.BadParameter("give a reward model (--model / --scorer) or a judge (--judge), not both")
    return True


def run_judge(judging: JudgeSpec, protocol: str, run, items, output: Path, report: Optional[Path], title: str,
              skipped: Counter, **kwargs) -> None:
    """run(judge, items, **kwargs) with the judge the flags name (answers up to the protocol's official length
    unless --judge-max-tokens), its engine closed after; then the results written and shown as any eval's."""
    from rmkit.evaluate.judging import MAX_TOKENS

    judge = judging.build(MAX_TOKENS.get(protocol, 1024))
    try:
        results = run(judge, items, **kwargs)
    finally:
        if hasattr(judge, "close"):
            judge.close()
    finish(results, output, report, title, skipped)
    print_judge(results["judge"])


def print_judge(j: dict) -> None:
    """One line on how the judge behaved: ratings, or its verdicts across the two answer orders."""
    if "ratings" in j:
        console.print(f"judge: {j['ratings']} ratings, mean {j['mean_rating']}, {j['unparseable']} unparseable "
                      f"(scored -1), {j['failed_requests']} failed requests ({j['protocol']})")
        return
    if j.get("picks_first") is not None:
        lo, hi = j["picks_first_interval"]
        console.print(f"judge: picks the answer shown first in {100 * j['picks_first']:.1f}% of verdicts "
                      f"({100 * lo:.1f}-{100 * hi:.1f}); ", end="")
    if j.get("consistency") is not None:
        lo, hi = j["consistency_interval"]
        console.print(f"the same answer in both orders for {100 * j['consistency']:.1f}% of pairs "
                      f"({100 * lo:.1f}-{100 * hi:.1f}); ", end="")
    console.print(f"{j['unparseable']} unparseable, {j['failed_requests']} failed requests "
                  f"({j['protocol']})")


def print_row(row: dict[str, str], title: str) -> None:
    table = Table(title=title)
    for col in row:
        table.add_column(col, justify="left" if col == "Model" else "right")
    table.add_row(*row.values())
    Console().print(table)


def finish(results: dict, output: Path, report: Optional[Path], title: str, skipped=None) -> None:
    """Write results.json (strict JSON), print the headline table, write the report if asked. Rows left
    out by --errors skip are counted in `skipped_rows` (and make a RewardBench input partial)."""
    from rmkit.evaluate.common import json_safe, partial_note

    results["skipped_rows"] = dict(sorted((skipped or {}).items()))
    if results["skipped_rows"]:
        results["complete"] = False
        console.print(f"[yellow]skipped {sum(skipped.values())} unreadable rows: {results['skipped_rows']}[/yellow]")
    results = json_safe(results)
    write_json_atomic(output, results)
    row = {"Model": str(results.get("model", "?")), "Score": f"{100 * results['score']:.1f}"}
    row.update({s: f"{100 * v:.1f}" for s, v in results["sections"].items()})
    if not results.get("complete", True):
        title += " — subsample" if results.get("subsample") else " — PARTIAL: not comparable with the leaderboard"
    print_row(row, title)
    lo, hi = results["intervals"]["score"]
    console.print(f"score {100 * results['score']:.1f} (95% CI {100 * lo:.1f}-{100 * hi:.1f}); wrote {output}")
    note = partial_note(results)
    if note:
        console.print(f"[bold yellow]{note}[/bold yellow]")
    if report is not None:
        from rmkit.evaluate.report import write_report

        paths = write_report(results, report)
        console.print(f"report: {paths['html']} and {paths['summary']}")


@scorer_options()
@judge_options()
def rewardbench_cmd(data: Optional[str] = DataOpt, subsample: Optional[int] = typer.Option(
                        None, help="stratified by subset, seeded"),
                    output: Path = OutputOpt, report: Optional[Path] = ReportOpt, n_boot: int = NBootOpt,
                    errors: str = ErrorsOpt,
                    *, spec: ScorerSpec = None, judging: JudgeSpec = None):
    """RewardBench v1 (filtered split) with the official scoring."""
    from rmkit.evaluate.common import attach_pair_diagnostics
    from rmkit.evaluate.rewardbench import evaluate_rewardbench, load_rewardbench

    skipped = Counter()
    pairs = load_rewardbench(data, subsample=subsample, seed=spec.seed, errors=errors, skipped=skipped)
    if use_judge(judging, spec, "rewardbench"):
        from rmkit.evaluate.judging import judge_rewardbench

        return run_judge(judging, "rewardbench", judge_rewardbench, pairs, output, report, "RewardBench v1 (judge)",
                         skipped, n_boot=n_boot, seed=spec.seed, subsample=bool(subsample))
    sc = spec.build()
    console.print(f"RewardBench v1: {len(pairs)} pairs, scorer {sc.name}")
    results = evaluate_rewardbench(sc, pairs, n_boot=n_boot, seed=spec.seed, subsample=bool(subsample))
    _with_stats(results, sc)
    attach_pair_diagnostics(results, pairs, n_boot=n_boot, seed=spec.seed)
    results["model"] = spec.name   # the leaderboard's Model column
    finish(results, output, report, "RewardBench v1", skipped)


def _with_stats(results: dict, sc) -> dict:
    results["scorer_stats"] = dict(getattr(sc, "stats", {}) or {})
    results["dtype"] = getattr(sc, "dtype_name", None)  # the compute dtype the rewards came from
    results["temperature"] = getattr(sc, "temperature", 1.0)  # for rmkit compare's preference log-loss
    return results


@scorer_options()
@judge_options()
def rewardbench2_cmd(data: Optional[str] = DataOpt, subsample: Optional[int] = typer.Option(
                         None, help="n items per subset (Ties: n prompts), seeded"),
                     output: Path = OutputOpt, report: Optional[Path] = ReportOpt, n_boot: int = NBootOpt,
                     errors: str = ErrorsOpt,
                     *, spec: ScorerSpec = None, judging: JudgeSpec = None):
    """RewardBench 2 (best-of-4 with shared ties, the Ties formula; mean of six subsets)."""
    from rmkit.evaluate.rewardbench2 import evaluate_rewardbench2, load_rewardbench2

    skipped = Counter()
    items = load_rewardbench2(data, subsample=subsample, seed=spec.seed, errors=errors, skipped=skipped)
    if use_judge(judging, spec, "rewardbench2"):
        from rmkit.evaluate.judging import judge_rewardbench2

        return run_judge(judging, "rewardbench2", judge_rewardbench2, items, output, report,
                         "RewardBench 2 (judge, ratings)", skipped, n_boot=n_boot, seed=spec.seed,
                         subsample=bool(subsample))
    sc = spec.build()
    n = sum(len(it.completions) for it in items)
    console.print(f"RewardBench 2: {len(items)} items, {n} completions, scorer {sc.name}")
    results = evaluate_rewardbench2(sc, items, n_boot=n_boot, seed=spec.seed, subsample=bool(subsample))
    finish(_with_stats(results, sc), output, report, "RewardBench 2", skipped)


@scorer_options()
@judge_options()
def rmbench_cmd(data: Optional[str] = DataOpt, subsample: Optional[int] = typer.Option(
                    None, help="n items per domain, seeded"),
                domain: Optional[str] = typer.Option(
                    None, help="domain of a file whose rows have none (default: from its name, e.g. "
                               "chat_filtered.json)"),
                output: Path = OutputOpt, report: Optional[Path] = ReportOpt, n_boot: int = NBootOpt,
                errors: str = ErrorsOpt,
                *, spec: ScorerSpec = None, judging: JudgeSpec = None):
    """RM-Bench (3x3 style matrix: Easy / Normal / Hard per domain)."""
    from rmkit.evaluate.rmbench import evaluate_rmbench, load_rmbench

    use_judge(judging, spec, "rmbench")
    sc = spec.build()
    skipped = Counter()
    items = load_rmbench(data, subsample=subsample, seed=spec.seed, domain=domain, errors=errors, skipped=skipped)
    console.print(f"RM-Bench: {len(items)} items ({6 * len(items)} responses), scorer {sc.name}")
    results = evaluate_rmbench(sc, items, n_boot=n_boot, seed=spec.seed, subsample=bool(subsample))
    finish(_with_stats(results, sc), output, report, "RM-Bench", skipped)
    lv = results["levels"]["overall"]
    console.print("Easy {easy:.1%}  Normal {normal:.1%}  Hard {hard:.1%}".format(**lv))


@scorer_options()
@judge_options()
def judgebench_cmd(data: Optional[str] = DataOpt, output: Path = OutputOpt,
                   report: Optional[Path] = ReportOpt, n_boot: int = NBootOpt,
                   errors: str = ErrorsOpt, single_game: bool = typer.Option(
                       False, "--single-game", help="the original order only (JudgeBench's README mode "
                                                     "for reward models); default: both orders"),
                   judge_prompt: str = typer.Option("vanilla", "--judge-prompt", help="--judge: JudgeBench's "
                                                    "vanilla or arena_hard judge"),
                   *, spec: ScorerSpec = None, judging: JudgeSpec = None):
    """JudgeBench (both answer orders, or --single-game; micro accuracy per category and source)."""
    from rmkit.evaluate.judgebench import evaluate_judgebench, load_judgebench

    skipped = Counter()
    pairs = load_judgebench(data, errors=errors, skipped=skipped)
    if use_judge(judging, spec, "judgebench"):
        from rmkit.evaluate.judging import judge_judgebench

        return run_judge(judging, judge_prompt, judge_judgebench, pairs, output, report,
                         f"JudgeBench ({judge_prompt} judge)", skipped, style=judge_prompt, single_game=single_game,
                         n_boot=n_boot, seed=spec.seed)
    sc = spec.build()
    console.print(f"JudgeBench: {len(pairs)} pairs, scorer {sc.name}")
    results = evaluate_judgebench(sc, pairs, n_boot=n_boot, seed=spec.seed, single_game=single_game)
    finish(_with_stats(results, sc), output, report, "JudgeBench", skipped)


@scorer_options()
@judge_options()
def pairwise_cmd(data: str = typer.Option(..., "--data", help="a file, a folder of files, or a hub id"),
                 output: Path = OutputOpt, report: Optional[Path] = ReportOpt, shuffle: Optional[bool] = typer.Option(
                     None, "--shuffle/--no-shuffle", help="shuffle answer order (default: only "
                     "where the label is constant, e.g. EvalBiasBench)"),
                 n_boot: int = NBootOpt, errors: str = ErrorsOpt,
                 *, spec: ScorerSpec = None, judging: JudgeSpec = None):
    """Labelled pairwise sets: LLMBar, EvalBiasBench, Auto-J, or any prompt + 2 responses + label."""
    from rmkit.evaluate.pairwise import evaluate_pairwise, load_labelled_pairs

    use_judge(judging, spec, "pairwise")
    sc = spec.build()
    skipped = Counter()
    pairs = load_labelled_pairs(data, seed=spec.seed, shuffle=shuffle, errors=errors, skipped=skipped)
    ties = sum(p.meta["tie"] for p in pairs)
    console.print(f"pairwise: {len(pairs)} pairs ({ties} tie-labelled), scorer {sc.name}")
    results = evaluate_pairwise(sc, pairs, n_boot=n_boot, seed=spec.seed)
    results["data"] = str(data)
    finish(_with_stats(results, sc), output, report, f"pairwise: {Path(str(data)).name}", skipped)


@scorer_options()
@judge_options()
def rmb_cmd(data: Optional[str] = typer.Option(None, "--data", help="RMB_dataset/ (or a set, goal or scenario "
                                                                    "inside it; default: under RMKIT_DATA_DIR)"),
            output: Path = OutputOpt, report: Optional[Path] = ReportOpt, n_boot: int = NBootOpt,
            errors: str = ErrorsOpt, *, spec: ScorerSpec = None, judging: JudgeSpec = None):
    """RMB (49 scenarios, helpfulness / harmlessness, pairwise and best-of-N) with its official scoring: a
    best-of-N item is right only when the best answer beats every loser; missing files make it partial."""
    from rmkit.evaluate.rmb import run_rmb

    use_judge(judging, spec, "rmb")
    sc = spec.build()
    skipped = Counter()
    results = run_rmb(sc, data, n_boot=n_boot, seed=spec.seed, errors=errors, skipped=skipped)
    console.print(f"RMB: {results['n_pairs']} pairs, {results['n_bon']} best-of-N items, scorer {sc.name}")
    finish(_with_stats(results, sc), output, report, "RMB", skipped)


@scorer_options()
def calibrate_cmd(data: str = typer.Option(..., "--data", help="labelled pairs held out from training "
                                                               "(any pair format rmkit reads)"),
                  output: Path = OutputOpt, report: Optional[Path] = typer.Option(
                      None, "--report", help="folder for reliability.png"),
                  save: bool = typer.Option(False, "--save", help="write calibration.json beside the (local) "
                                                                  "model: rmkit serve then uses T"),
                  errors: str = ErrorsOpt, *, spec: ScorerSpec = None):
    """Fit a temperature T so that P(a > b) = sigmoid((r_a - r_b) / T) is calibrated on labelled pairs."""
    from rmkit.data import load_pairs
    from rmkit.evaluate.calibrate import calibrate, reliability_png
    from rmkit.data.schema import check_errors
    from rmkit.evaluate.common import json_safe

    check_errors(errors)
    sc = spec.build()
    skipped = Counter()
    pairs = load_pairs(data, errors=errors, skipped=skipped)
    if not pairs:
        from rmkit.data.schema import DataError

        raise DataError("no pairs to calibrate on", file=str(data))
    console.print(f"calibrate: {len(pairs)} labelled pairs, scorer {sc.name}")
    result = calibrate(sc.score_pairs(pairs))
    result.update(model=spec.name, data=str(data), skipped_rows=dict(skipped))
    if report is not None:
        result["reliability_png"] = str(reliability_png(result, Path(report) / "reliability.png"))
    write_json_atomic(output, json_safe(result))
    print_calibration(result)
    if save:
        save_temperature(sc, result, data)
    console.print(f"wrote {output}")


def print_calibration(result: dict) -> None:
    table = Table(title=f"calibration on {result['n_pairs']} pairs (T = {result['temperature']:.4g})")
    for col in ("", "log-loss", "Brier", "ECE"):
        table.add_column(col, justify="left" if not col else "right")
    for key, name in (("before", "raw sigmoid(r_a - r_b)"), ("after", "sigmoid((r_a - r_b) / T)")):
        m = result[key]
        table.add_row(name, f"{m['log_loss']:.4f}", f"{m['brier']:.4f}", f"{m['ece']:.4f}")
    Console().print(table)


def save_temperature(sc, result: dict, data: str) -> None:
    """calibration.json beside the scorer's local model folder: the scorers read T from it."""
    from rmkit.evaluate.common import json_safe
    from rmkit.score.calibration import CALIBRATION_FILE

    folder = Path(getattr(getattr(getattr(sc, "model", None), "config", None), "_name_or_path", "") or "")
    if not folder.is_dir():
        raise ValueError("--save needs a model loaded from a local folder (the calibration goes beside it)")
    write_json_atomic(folder / CALIBRATION_FILE, json_safe({
        "temperature": result["temperature"], "fitted_on": str(data), "n_pairs": result["n_pairs"],
        "reward_mean": result["reward_stats"]["mean"], "reward_std": result["reward_stats"]["std"],
        "before": {k: result["before"][k] for k in ("log_loss", "brier", "ece")},
        "after": {k: result["after"][k] for k in ("log_loss", "brier", "ece")}}))
    console.print(f"saved T beside the model: {folder / CALIBRATION_FILE}")


def compare_cmd(results_a: Path = typer.Argument(..., help="results.json of model A"),
                results_b: Path = typer.Argument(..., help="results.json of model B"),
                output: Optional[Path] = typer.Option(None, "--output", "-o", help="comparison JSON"),
                n_boot: int = typer.Option(2000, "--n-boot"), seed: int = SeedOpt):
    """Paired bootstrap and sign test of A − B per section on the same items."""
    import json

    from rmkit.evaluate.common import json_safe
    from rmkit.evaluate.compare import compare_results

    loaded = [json.loads(Path(p).read_text(encoding="utf-8")) for p in (results_a, results_b)]
    cmp = compare_results(*loaded, n_boot=n_boot, seed=seed)
    print_comparison(cmp)
    if output is not None:
        write_json_atomic(output, json_safe(cmp))
        console.print(f"wrote {output}")


def print_comparison(cmp: dict) -> None:
    table = Table(title=f"{cmp['benchmark']}: A = {cmp['model_a']}  vs  B = {cmp['model_b']} "
                        f"({cmp['n_common_items']} common items)")
    for col in ("", "A", "B", "A − B", "95% CI", "p (boot)", "p (sign)", "verdict"):
        table.add_column(col, justify="left" if col in ("", "verdict") else "right",
                         no_wrap=col == "verdict")
    for r in [*cmp["rows"], *cmp["groups"]]:
        table.add_row(r["name"], f"{100 * r['a']:.1f}", f"{100 * r['b']:.1f}", f"{100 * r['diff']:+.1f}",
                      f"[{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]", f"{r['p_bootstrap']:.3f}",
                      f"{r['sign_test']['p_value']:.3f}", r["verdict"])
    Console().print(table)
    ll = cmp.get("preference_log_loss")
    if ll:
        console.print(f"preference log-loss (lower is better; T_A = {ll['temperature_a']}, T_B = {ll['temperature_b']}): "
                      f"A {ll['a']:.4f}, B {ll['b']:.4f}, A − B {ll['diff']:+.4f} [{ll['low']:+.4f}, {ll['high']:+.4f}] "
                      f"on {ll['n']} pairs")


def register(app, eval_app) -> None:
    eval_app.command("rewardbench")(rewardbench_cmd)
    eval_app.command("rewardbench2")(rewardbench2_cmd)
    eval_app.command("rmbench")(rmbench_cmd)
    eval_app.command("judgebench")(judgebench_cmd)
    eval_app.command("pairwise")(pairwise_cmd)
    eval_app.command("rmb")(rmb_cmd)
    app.command("compare")(compare_cmd)
    app.command("calibrate")(calibrate_cmd)
