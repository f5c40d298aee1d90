"""The model card (README.md) of a trained reward model, and the loss-curve PNG.

    text = model_card(cfg, summary)                       # base, data, recipe, evaluation results
    plot_loss(history, "runs/rm/loss_curve.png", evals)   # matplotlib, Agg backend, no display
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _eval_lines(results: dict) -> list[str]:
    lines: list[str] = []
    held = results.get("heldout")
    if held:
        lo, hi = held["ci95"]
        lines.append(f"- Held-out pairs (n={held['n']}): accuracy {_pct(held['accuracy'])}% "
                     f"(95% CI {_pct(lo)}-{_pct(hi)}), mean margin {held['mean_margin']:.3f}")
        for src, b in held.get("by_source", {}).items():
            lines.append(f"  - {src} (n={b['n']}): {_pct(b['accuracy'])}% "
                         f"(95% CI {_pct(b['ci95'][0])}-{_pct(b['ci95'][1])})")
    rb = results.get("rewardbench")
    if rb:
        secs = ", ".join(f"{k} {_pct(v)}" for k, v in rb["sections"].items())
        lo, hi = rb["intervals"]["score"]
        n = sum(s["n"] for s in rb["subsets"].values())
        lines.append(f"- RewardBench v1 stratified subsample (n={n}): score {_pct(rb['score'])} "
                     f"(95% CI {_pct(lo)}-{_pct(hi)}); {secs}")
    return lines or ["- No evaluation was run."]


def model_card(cfg, summary: dict) -> str:
    """Markdown naming the base model, the data, the recipe and the evaluation results."""
    data = summary.get("data", {})
    lora = f"LoRA r={cfg.lora_r}, alpha={cfg.lora_alpha} on {cfg.lora_target_modules}, score head trained " \
           f"in full (merged into these weights; the adapter alone is in adapter/)" if cfg.lora_r \
        else "full fine-tuning"
    status = "complete" if summary.get("complete") else \
        f"STOPPED EARLY at step {summary.get('steps')} of {summary.get('num_steps')} (time budget)"
    lines = [
        f"# Reward model trained by rmkit from `{cfg.model}`", "",
        "A Bradley-Terry reward model (`AutoModelForSequenceClassification`, num_labels=1): the reward is "
        "the raw logit at the last token of the conversation rendered with this tokenizer's chat template; "
        "P(a > b) = sigmoid(r_a - r_b).", "",
        "## Base", f"- `{cfg.model}`", "",
        "## Data",
        f"- Training sources: {', '.join(f'`{d}`' for d in cfg.data) or 'none'}",
        f"- Held-out: {', '.join(f'`{d}`' for d in cfg.eval_data) or f'{cfg.eval_size} pairs of the training sources (whole prompts, seed {cfg.seed})'}",
        f"- Pairs trained on: {data.get('train_pairs')}; encoding: `{json.dumps(data.get('train', {}))}`",
        "",
        "## Recipe",
        f"- Loss: Bradley-Terry -logsigmoid(r_c - r_r{' - margin' if cfg.margin_key else ''})"
        f"{f' + {cfg.center_rewards_coefficient} * mean((r_c + r_r)^2)' if cfg.center_rewards_coefficient else ''}",
        f"- {lora}; AdamW lr {cfg.learning_rate}, weight decay {cfg.weight_decay}, {cfg.lr_scheduler} schedule, "
        f"warmup {cfg.warmup_steps or cfg.warmup_ratio}; global batch {data.get('global_batch')} pairs "
        f"({data.get('processes')} process(es) x {cfg.batch_size} x accumulation {cfg.grad_accum}); "
        f"{summary.get('steps')} steps; mixed precision {cfg.mixed_precision}; max_length {cfg.max_length}, "
        f"over-long policy `{cfg.truncation}`; seed {cfg.seed}",
        f"- Training: {status}, {summary.get('train_seconds')} s of training",
        "", "## Evaluation", *_eval_lines(summary.get("eval", {})), "",
        "## Use", "```python", "from rmkit import RewardScorer",
        "scorer = RewardScorer.from_pretrained('PATH/TO/THIS/FOLDER')",
        "scorer.score([[{'role': 'user', 'content': '2+2?'}, {'role': 'assistant', 'content': '4'}]])",
        "```", "", "## Full recipe", "```json", json.dumps(cfg.to_dict(), indent=1), "```", ""]
    return "\n".join(lines)


def smooth(values: Sequence[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_loss(history: Sequence[dict], path: str | Path, evals: Sequence[dict] = (), title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [h["step"] for h in history]
    losses = [h["loss"] for h in history]
    ax.plot(steps, losses, alpha=0.35, label="training loss (per step)")
    if len(losses) >= 5:
        ax.plot(steps, smooth(losses, max(2, len(losses) // 10)), label="moving average")
    ax.axhline(math.log(2), color="grey", ls="--", lw=1, label="chance (ln 2)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("Bradley-Terry loss")
    ax.set_title(title or "rmkit reward-model training")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
