"""Evaluation during training: held-out pairs and, optionally, a RewardBench v1 subsample.

    evalset = EvalSet.build(cfg, tokenizer, heldout_pairs)     # encoded under the training policy
    evaluate = Evaluator(acc, model, rewards, evalset, cfg.eval_batch_size, cfg.n_boot, cfg.seed)
    results = evaluate(step, final=True)                       # {"heldout": {...}, "rewardbench": {...}}

Rewards come from the training forward (`rmkit.train.forward.Rewards`, same pooling as rmkit's scorer). Each
process scores its share (every process runs the same number of batches, as FSDP / ZeRO-3 need), and the shares
are gathered.
A pair the over-long policy skips scores NaN and counts as wrong, as in RewardBench.
"""
from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from rmkit.data.schema import PreferencePair
from rmkit.train.data import EncodedPair, encode_pair

log = logging.getLogger("rmkit")


@dataclass
class EvalSet:
    pairs: list[PreferencePair]
    encoded: list[EncodedPair | None]
    rb_pairs: list[PreferencePair] = field(default_factory=list)
    rb_encoded: list[EncodedPair | None] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @classmethod
    def build(cls, cfg, tok, heldout: Sequence[PreferencePair]) -> "EvalSet":
        stats: Counter = Counter()
        encoded = [_encode(tok, p, cfg, stats) for p in heldout]
        rb_pairs: list[PreferencePair] = []
        rb_stats: Counter = Counter()
        if cfg.rewardbench_eval:
            from rmkit.evaluate.rewardbench import load_rewardbench

            rb_pairs = load_rewardbench(subsample=cfg.rewardbench_eval, seed=cfg.seed)
        rb_encoded = [_encode(tok, p, cfg, rb_stats) for p in rb_pairs]
        return cls(list(heldout), encoded, rb_pairs, rb_encoded,
                   {"heldout": dict(stats), "rewardbench": dict(rb_stats)})


def _encode(tok, pair, cfg, stats) -> EncodedPair | None:
    policy = "skip" if cfg.truncation == "error" else cfg.truncation  # an eval pair never stops a run
    got = encode_pair(tok, pair, cfg.max_length, policy, stats)
    return None if got is None else EncodedPair(tuple(got[0]), tuple(got[1]))


@torch.no_grad()
def pair_rewards(rewards, acc, encoded: Sequence[EncodedPair | None], batch_size: int) -> list[tuple[float, float]]:
    """(chosen, rejected) reward per pair from `rewards.of`, NaN for a skipped one, gathered from all processes."""
    from accelerate.utils import gather_object

    real = [i for i, e in enumerate(encoded) if e is not None]
    per = math.ceil(len(real) / acc.num_processes) if real else 0
    mine = real[acc.process_index * per:(acc.process_index + 1) * per]
    mine_padded = mine + real[:1] * (per - len(mine))  # equal batch counts on every process
    got: list[tuple[int, float, float]] = []
    for b in range(0, len(mine_padded), batch_size):
        idx = mine_padded[b:b + batch_size]
        r = rewards.of([encoded[i] for i in idx])[0].float().cpu().tolist()
        got.extend((i, c, j) for i, c, j in zip(idx, r[0::2], r[1::2]))
    got = got[:len(mine)]
    out = [(math.nan, math.nan)] * len(encoded)
    for i, c, r in gather_object(got) if acc.num_processes > 1 else got:
        out[i] = (c, r)
    return out


def summarize_pairs(pairs: Sequence[PreferencePair], rewards: Sequence[tuple[float, float]],
                    n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy (tie / NaN wrong) with a 95% bootstrap interval, overall and per source; mean margin."""
    from rmkit.evaluate.metrics import bootstrap_ci, pairwise_correct

    correct = pairwise_correct([c for c, _ in rewards], [r for _, r in rewards])
    out = _acc_block(correct, n_boot, seed, bootstrap_ci)
    margins = [c - r for c, r in rewards if not (math.isnan(c) or math.isnan(r))]
    out["mean_margin"] = sum(margins) / len(margins) if margins else math.nan
    out["skipped"] = len(rewards) - len(margins)
    by_source: dict[str, list[int]] = defaultdict(list)
    for p, ok in zip(pairs, correct):
        by_source[p.source].append(ok)
    if len(by_source) > 1:
        out["by_source"] = {s: _acc_block(v, n_boot, seed, bootstrap_ci) for s, v in sorted(by_source.items())}
    return out


def _acc_block(correct: Sequence[int], n_boot: int, seed: int, ci) -> dict:
    if not correct:
        return {"accuracy": math.nan, "ci95": [math.nan, math.nan], "n": 0}
    return {"accuracy": sum(correct) / len(correct), "ci95": list(ci(correct, n_boot, seed)), "n": len(correct)}


@dataclass(frozen=True)
class Evaluator:
    """Held-out (and RewardBench subsample) results for the model as it is now: `evaluate(step, final)`."""
    acc: Any
    model: Any
    """The (prepared) model, put in eval mode first."""
    rewards: Any
    """`rmkit.train.forward.Rewards`."""
    evalset: EvalSet
    batch_size: int
    n_boot: int
    seed: int

    def __call__(self, step: int, final: bool) -> dict:
        from rmkit.evaluate.rewardbench import score_results

        self.model.eval()
        es, out = self.evalset, {}
        if es.pairs:
            out["heldout"] = summarize_pairs(es.pairs, self._rewards(es.encoded), self.n_boot, self.seed)
        if es.rb_pairs:
            res = score_results(es.rb_pairs, self._rewards(es.rb_encoded), n_boot=self.n_boot, seed=self.seed)
            res.pop("items")
            out["rewardbench"] = res
        if self.acc.is_main_process:
            log.info("step %d%s: %s", step, " (final)" if final else "", describe(out))
        return out

    def _rewards(self, encoded) -> list[tuple[float, float]]:
        return pair_rewards(self.rewards, self.acc, encoded, self.batch_size)


def describe(results: dict) -> str:
    """One line for the log: held-out accuracy with its interval (and by source), RewardBench score."""
    parts = []
    if "heldout" in results:
        h = results["heldout"]
        parts.append(f"held-out {100 * h['accuracy']:.1f}% [{100 * h['ci95'][0]:.1f}, {100 * h['ci95'][1]:.1f}] "
                     f"of {h['n']}")
        if h.get("by_source"):
            parts.append("(" + ", ".join(f"{s} {100 * b['accuracy']:.1f}" for s, b in h["by_source"].items()) + ")")
    if "rewardbench" in results:
        parts.append(f"RewardBench subsample {100 * results['rewardbench']['score']:.1f}")
    return " ".join(parts) or "nothing to evaluate"
