"""The bar rmkit's default reward model must pass before it ships, and the figures of its model card.

    RMKIT_DATA_DIR=../shared/data python bench/quality.py --model runs/smollm2-135m-rm/full-top4/model \
        --out runs/quality/full-top4                       # a candidate: the held-out bar only
    RMKIT_DATA_DIR=../shared/data python bench/quality.py --model smollm2-135m-rm \
        --out runs/quality/smollm2-135m-rm --rewardbench all --pairwise      # the shipped default, everything

The bar: on the 600 held-out pairs of `rmkit.train.splits.quality_split` (never trained on, never used to
choose anything), the model is more often right than the untrained backbone (`--base`, the same SmolLM2 with
its random head) AND than the length baseline (longer reply wins), each by a paired bootstrap at 95% (the
interval of the accuracy difference above zero). Held-out pairs are scored at `--max-length` 2048 (the longest
is 1,738 tokens: none is cut or skipped), in fp32 (`--dtype float32`; `make default-rm` passes it). Also reported: accuracy by source and by HH-RLHF split
(helpful vs harmless), RewardBench v1 (all 2,985 pairs with `--rewardbench all`, official sections and
intervals, next to the length baseline), LLMBar and EvalBiasBench (`rmkit eval pairwise` scoring), and the
Jane-apples rewards. Each evaluation is cached under OUT/stages (the untrained backbone's under --cache), so a
stopped run goes on where it was. Result: OUT/quality.json, a table, and OUT/heldout.png.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from pathlib import Path

from rmkit.data.io import write_json_atomic

BULKY = ("items", "units", "pair_view")
RUNS = Path(os.environ.get("RMKIT_CACHE", Path.home() / ".cache" / "rmkit")) / "runs"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-rm", help="checkpoint folder or embedded name to test")
    ap.add_argument("--base", default="smollm2-135m", help="the untrained backbone it must beat")
    ap.add_argument("--out", default=str(RUNS / "quality" / "smollm2-135m-rm"))
    ap.add_argument("--cache", default=str(RUNS / "quality" / "cache"),
                    help="evaluations of the base and the baseline (kept in rmkit's cache across checkouts)")
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on a CPU measured faster in bf16) | float32 "
                    "(the bar: `make default-rm` passes it) | bfloat16")
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--rewardbench", default="0", help="'all', N (stratified subsample) or 0 (skip)")
    ap.add_argument("--pairwise", action="store_true", help="also LLMBar and EvalBiasBench")
    ap.add_argument("--n-boot", type=int, default=2000)
    return ap.parse_args(argv)


def scorer_for(name: str, args):
    from rmkit.score.scorer import RewardScorer

    return RewardScorer.from_pretrained(name, dtype=args.dtype, max_length=args.max_length, truncation="skip",
                                        batch_tokens=args.batch_tokens, show_progress=True)


class Chunked:
    """A scorer whose `score_pairs` runs in chunks of `size` pairs, each chunk's rewards kept in
    folder/name-K.json: a long evaluation (RewardBench all: ~2 hours here; the held-out 600 in fp32: ~20-40
    minutes) stopped midway resumes at its last finished chunk. A chunk file records its pairs' ids and is used only for those same pairs."""

    def __init__(self, scorer, folder: Path, name: str, size: int = 250):
        self.scorer, self.folder, self.tag, self.size = scorer, folder, name, size
        self.name = getattr(scorer, "name", type(scorer).__name__)

    def score_pairs(self, pairs) -> list:
        out = []
        for k in range(0, len(pairs), self.size):
            chunk = pairs[k:k + self.size]
            ids = [p.id for p in chunk]
            path = self.folder / f"{self.tag}-{k // self.size:03d}.json"
            if path.exists() and (kept := json.loads(path.read_text()))["ids"] == ids:
                out += [tuple(r) for r in kept["rewards"]]
                continue
            rewards = [tuple(r) for r in self.scorer.score_pairs(chunk)]
            write_json_atomic(path, {"ids": ids, "rewards": [list(r) for r in rewards]})
            out += rewards
        return out

    def __getattr__(self, item):  # score(), stats, ... of the wrapped scorer
        return getattr(self.scorer, item)


def stage(folder: Path, name: str, fn) -> dict:
    """fn() once: its result is kept in folder/name.json and read back on the next run."""
    path = folder / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.monotonic()
    res = fn()
    res["seconds"] = round(time.monotonic() - t0, 1)
    write_json_atomic(path, res)
    return res


def hh_family(source: str) -> str | None:
    if not source.startswith("hh-rlhf/"):
        return None
    return "hh-rlhf harmless" if "harmless" in source else "hh-rlhf helpful"


def heldout_eval(scorer, held, n_boot: int) -> dict:
    from rmkit.evaluate.metrics import bootstrap_ci, pairwise_correct
    from rmkit.train.evaluation import summarize_pairs

    rewards = scorer.score_pairs(held)
    res = summarize_pairs(held, rewards, n_boot=n_boot)
    res["correct"] = pairwise_correct([c for c, _ in rewards], [r for _, r in rewards])
    res["rewards"] = [list(r) for r in rewards]
    fam: dict[str, list[int]] = {}
    for p, ok in zip(held, res["correct"]):
        if (family := hh_family(p.source)) is not None:
            fam.setdefault(family, []).append(ok)
    res["by_family"] = {k: {"accuracy": sum(v) / len(v), "ci95": list(bootstrap_ci(v, n_boot=n_boot)),
                            "n": len(v)} for k, v in sorted(fam.items())}
    return res


def rewardbench_eval(scorer, rb, n_boot: int) -> dict:
    from rmkit.evaluate.rewardbench import evaluate_rewardbench

    return {k: v for k, v in evaluate_rewardbench(scorer, rb, n_boot=n_boot).items() if k not in BULKY}


def pairwise_eval(scorer, data: Path, n_boot: int) -> dict:
    from rmkit.evaluate.pairwise import evaluate_pairwise, load_labelled_pairs

    out = {}
    for name in ("llmbar", "evalbiasbench"):
        res = evaluate_pairwise(scorer, load_labelled_pairs(data / name), n_boot=n_boot)
        out[name] = {k: v for k, v in res.items() if k not in BULKY}
    return out


def jane(scorer) -> dict:
    import math

    from rmkit.demo import PROMPT, RESPONSE_RIGHT, RESPONSE_WRONG

    convs = [[{"role": "user", "content": PROMPT}, {"role": "assistant", "content": r}]
             for r in (RESPONSE_RIGHT, RESPONSE_WRONG)]
    right, wrong = scorer.score(convs)
    return {"right": right, "wrong": wrong, "p_right": 1 / (1 + math.exp(-(right - wrong)))}


def verdict(model: dict, untrained: dict, length: dict, n_boot: int) -> dict:
    from rmkit.evaluate.metrics import paired_bootstrap

    vs_untrained = paired_bootstrap(model["correct"], untrained["correct"], n_boot=n_boot)
    vs_length = paired_bootstrap(model["correct"], length["correct"], n_boot=n_boot)
    passed = all(t["low"] > 0 for t in (vs_untrained, vs_length))
    return {"vs_untrained": vs_untrained, "vs_length": vs_length, "passes_bar": passed}


def plot(rows: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = ["all", "ultrafeedback", "hh-rlhf helpful", "hh-rlhf harmless"]

    def block(h, g):
        if g == "all":
            return h
        return h.get("by_source", {}).get(g) or h.get("by_family", {}).get(g)

    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / len(rows)
    for i, (name, h) in enumerate(rows.items()):
        xs, ys, err = [], [], [[], []]
        for j, g in enumerate(groups):
            b = block(h, g)
            if not b:
                continue
            xs.append(j + i * width)
            ys.append(100 * b["accuracy"])
            err[0].append(100 * (b["accuracy"] - b["ci95"][0]))
            err[1].append(100 * (b["ci95"][1] - b["accuracy"]))
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=name)
    ax.axhline(50, color="grey", lw=0.8, ls="--")
    ax.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(groups))], groups)
    ax.set_ylabel("held-out accuracy, % (95% CI)")
    ax.set_ylim(30, 90)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    import torch

    from rmkit.evaluate.rewardbench import load_rewardbench
    from rmkit.score.baselines import LengthScorer
    from rmkit.train.splits import data_dir, quality_split

    args = parse_args(argv)
    if args.dtype == "auto":  # resolved here, so that cached evaluations are keyed by the dtype they ran in
        from rmkit.models.precision import probe

        args.dtype = probe()["chosen"]
    out, cache = Path(args.out), Path(args.cache)
    t_start = time.monotonic()
    _, held = quality_split()
    rb = [] if args.rewardbench in ("0", "") else load_rewardbench(
        subsample=None if args.rewardbench == "all" else int(args.rewardbench), seed=2024)
    rb_tag = f"rewardbench_{args.rewardbench}"
    length, base = LengthScorer(), None
    rows = {"length": stage(cache, "length_heldout", lambda: heldout_eval(length, held, args.n_boot))}

    def base_scorer():
        nonlocal base
        base = base or scorer_for(args.base, args)
        return base

    base_tag = re.sub(r"[^\w.-]+", "_", args.base.strip("/")) + ("" if args.dtype == "float32" else f"_{args.dtype}")
    held_tag = f"{base_tag}_heldout_{args.max_length}"
    rows["untrained"] = stage(cache, held_tag, lambda: heldout_eval(
        Chunked(base_scorer(), cache / "chunks", held_tag, size=100), held, args.n_boot))
    model = base_scorer() if args.model == args.base else scorer_for(args.model, args)
    rows["model"] = rows["untrained"] if args.model == args.base else stage(
        out / "stages", "heldout", lambda: heldout_eval(Chunked(model, out / "stages" / "chunks", "heldout", size=100),
                                                       held, args.n_boot))
    result = {"model": args.model, "verdict": verdict(rows["model"], rows["untrained"], rows["length"], args.n_boot),
              "heldout": {k: {x: y for x, y in v.items() if x not in ("correct", "rewards")} for k, v in rows.items()},
              "jane_apples": {"model": stage(out / "stages", "jane", lambda: jane(model)),
                              "untrained": stage(cache, f"{base_tag}_jane", lambda: jane(base_scorer()))}}
    if rb:
        chunked = Chunked(model, out / "stages" / "chunks", rb_tag)
        result["rewardbench"] = {
            "length": stage(cache, f"length_{rb_tag}", lambda: rewardbench_eval(length, rb, args.n_boot)),
            "model": stage(out / "stages", rb_tag, lambda: rewardbench_eval(chunked, rb, args.n_boot))}
    if args.pairwise:
        result["pairwise"] = {
            "length": stage(cache, "length_pairwise", lambda: pairwise_eval(length, data_dir(), args.n_boot)),
            "model": stage(out / "stages", "pairwise", lambda: pairwise_eval(model, data_dir(), args.n_boot))}
    result.update(args=vars(args), wall_seconds=round(time.monotonic() - t_start, 1),
                  machine=f"{platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}",
                  heldout_pairs=len(held), scored_at=args.max_length)
    plot({"length baseline": rows["length"], f"untrained {args.base}": rows["untrained"],
          args.model: rows["model"]}, out / "heldout.png")
    write_json_atomic(out / "quality.json", result)
    report(result)
    return result


def _ci(b: dict) -> str:
    return f"{100 * b['accuracy']:5.1f} [{100 * b['ci95'][0]:4.1f}, {100 * b['ci95'][1]:4.1f}]"


def report(r: dict) -> None:
    print(f"\nheld-out pairs: {r['heldout_pairs']} (scored at {r['scored_at']} tokens, {r['args']['dtype']})")
    print(f"{'':24s} {'all':>19s} {'UltraFeedback':>19s} {'HH helpful':>19s} {'HH harmless':>19s}")
    for name, h in r["heldout"].items():
        cells = [_ci(h)]
        for g in ("ultrafeedback",):
            cells.append(_ci(h["by_source"][g]) if g in h.get("by_source", {}) else "-")
        for g in ("hh-rlhf helpful", "hh-rlhf harmless"):
            cells.append(_ci(h["by_family"][g]) if g in h.get("by_family", {}) else "-")
        print(f"{name:24s} " + " ".join(f"{c:>19s}" for c in cells))
    v = r["verdict"]
    for k in ("vs_untrained", "vs_length"):
        print(f"paired bootstrap {k}: {100 * v[k]['diff']:+.1f} points [{100 * v[k]['low']:+.1f}, "
              f"{100 * v[k]['high']:+.1f}]")
    for name, j in r["jane_apples"].items():
        print(f"Jane's apples, {name}: right {j['right']:+.4f}, wrong {j['wrong']:+.4f}, P(right) {j['p_right']:.3f}")
    for name, rb in r.get("rewardbench", {}).items():
        secs = ", ".join(f"{k} {100 * s:.1f}" for k, s in rb["sections"].items())
        lo, hi = rb["intervals"]["score"]
        print(f"RewardBench v1 ({rb['n_pairs']} pairs), {name}: {100 * rb['score']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
              f"; {secs}")
    for name, pw in r.get("pairwise", {}).items():
        for bench, res in pw.items():
            if not isinstance(res, dict):
                continue  # the stage's "seconds"
            print(f"{bench}, {name}: {100 * res['score']:.1f} ({res['n_items']} pairs)")
    print(f"passes_bar: {v['passes_bar']}")


if __name__ == "__main__":
    main()
