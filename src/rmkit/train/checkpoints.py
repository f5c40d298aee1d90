"""What a training run keeps under its output_dir: accelerate checkpoints (resume), metrics.jsonl, the best model
so far (`save_best`), the mean of the last checkpoints' weights (`average_last`), and the final export.

    folder = RunFolder(cfg, acc, model, tok, stats, num_steps, evaluate)
    folder.begin(resume, state)                  # the last checkpoint loaded (--resume); config.json
    folder.save(step)                            # output_dir/checkpoints/checkpoint-000100
    ev = folder.evaluated(step, evals)           # evaluated; output_dir/best when it beats every earlier one
    summary = folder.finish(state, complete)     # model/, results.json, loss curve, best, average

`state` is the trainer's TrainState (step, history, evals, train_seconds); `evaluate(step, final)` is the run's
`rmkit.train.evaluation.Evaluator`.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from rmkit.data.io import write_json_atomic, write_jsonl_atomic
from rmkit.train.export import Exporter, copy_folder

log = logging.getLogger("rmkit")


def latest_checkpoint(output_dir: str) -> Path | None:
    found = sorted((Path(output_dir) / "checkpoints").glob("checkpoint-*"))
    return found[-1] if found else None


def checkpoint_step(folder: Path) -> int:
    return int(folder.name.rsplit("-", 1)[1])


def _accuracy(ev: dict) -> float | None:
    return (ev.get("heldout") or {}).get("accuracy")


@dataclass(frozen=True)
class RunFolder:
    cfg: Any
    """The run's TrainConfig: output_dir, save_total_limit, save_best, average_last, eval_steps, final_eval."""
    acc: Any
    model: Any
    """The prepared (possibly wrapped) model."""
    tok: Any
    stats: dict
    """What the run trains on and how (results.json's `data`)."""
    num_steps: int
    evaluate: Callable[..., dict]
    """`evaluate(step, final)`: held-out results of the model as it is now."""

    @property
    def out(self) -> Path:
        return Path(self.cfg.output_dir)

    @property
    def exporter(self) -> Exporter:
        return Exporter(self.acc, self.model, self.tok, self.cfg)

    def begin(self, resume: bool, state) -> None:
        """With `resume`, go on from the last checkpoint (model, optimizer, scheduler, RNG and `state`, all
        registered with the accelerator); write config.json and log what the run trains on."""
        if resume:
            ck = latest_checkpoint(self.cfg.output_dir)
            if ck is None:
                log.warning("--resume: no checkpoint under %s/checkpoints; starting from step 0",
                            self.cfg.output_dir)
            else:
                self.acc.load_state(str(ck))
                log.info("resumed from %s (step %d)", ck, state.step)
        if self.acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.out / "config.json", self.cfg.to_dict())
            log.info("training data: %s", json.dumps(self.stats))

    def write_logs(self, history: list) -> None:
        if self.acc.is_main_process:
            write_jsonl_atomic(self.out / "metrics.jsonl", history)

    def save(self, step: int) -> None:
        """An accelerate checkpoint of this step (keeping the last `save_total_limit`), written atomically."""
        ckdir = self.out / "checkpoints"
        final, tmp = ckdir / f"checkpoint-{step:06d}", ckdir / f".tmp-checkpoint-{step:06d}"
        self.acc.save_state(str(tmp))
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            import shutil

            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            for old in sorted(ckdir.glob("checkpoint-*"))[:-self.cfg.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()

    def _summary(self, complete: bool, step: int, ev: dict, **extra) -> dict:
        return {"complete": complete, "steps": step, "num_steps": self.num_steps, **extra, "data": self.stats,
                "eval": ev, "config": self.cfg.to_dict()}

    def evaluated(self, step: int, evals: list) -> dict:
        """An evaluation of the model at `step` (mid-run; `evals`: the run's earlier ones), kept as output_dir/best
        when it is the best so far."""
        ev = {"step": step, **self.evaluate(step, final=False)}
        self.keep_if_best(ev, evals, step)
        return ev

    def keep_if_best(self, ev: dict, evals: list, step: int, exported: Path | None = None) -> bool:
        """With `save_best`: export the model to output_dir/best when `ev` (an evaluation of the model as it is
        now) has the highest held-out accuracy of the run so far (`evals`; ties keep the earlier one).
        `exported` is a folder that already holds this model (the final export): copied, not gathered again."""
        acc = _accuracy(ev)
        if not self.cfg.save_best or acc is None:
            return False
        earlier = [a for e in evals if e is not ev and (a := _accuracy(e)) is not None]
        if earlier and acc <= max(earlier):
            return False
        best = self.out / "best"
        if exported is None:
            self.exporter.write(best, self._summary(False, step, ev, best_of_evals=True))
        elif self.acc.is_main_process:
            copy_folder(exported, best)
        if self.acc.is_main_process:
            write_json_atomic(best / "eval.json", {"step": step, **ev})
            log.info("step %d: held-out accuracy %.4f is the best so far; exported to %s", step, acc, best)
        self.acc.wait_for_everyone()
        return True

    def finish(self, state, complete: bool) -> dict:
        """Final evaluation, export (safetensors + tokenizer + model card), results.json, loss curve; then
        the best and the averaged weights. Returns the summary written to results.json."""
        from rmkit.train.card import plot_loss

        results = self.evaluate(state.step, final=True) if self.cfg.final_eval else {}
        summary = {"complete": complete, "steps": state.step, "num_steps": self.num_steps,
                   "train_seconds": round(state.train_seconds, 1), "data": self.stats, "eval": results,
                   "evals": state.evals, "config": self.cfg.to_dict()}
        if self.acc.is_main_process:
            self.write_logs(state.history)
            plot_loss(state.history, self.out / "loss_curve.png", state.evals)
        self.exporter.write(self.out / "model", summary, extra_files={"loss_curve.png": self.out / "loss_curve.png"})
        self._write_results(summary)
        self.acc.wait_for_everyone()
        if results:
            self.keep_if_best({"step": state.step, **results}, state.evals, state.step, exported=self.out / "model")
        if self.cfg.average_last >= 2 and results:
            summary["averaged"] = self.averaged([*state.evals, {"step": state.step, **results}], state.step)
            self._write_results(summary)
        return summary

    def _write_results(self, summary: dict) -> None:
        if self.acc.is_main_process:
            write_json_atomic(self.out / "results.json", summary)

    def _to_average(self, step: int) -> list[Path]:
        """The last `average_last - 1` checkpoints of earlier evaluation steps (every step when eval_steps is 0:
        the weights the evaluations saw, not a time-budget stop's checkpoint)."""
        every = self.cfg.eval_steps or 1
        folders = [f for f in sorted((self.out / "checkpoints").glob("checkpoint-*"))
                   if checkpoint_step(f) < step and checkpoint_step(f) % every == 0]
        return folders[-(self.cfg.average_last - 1):]

    def averaged(self, earlier: list[dict], step: int) -> dict:
        """Evaluate the mean of the trained weights over the model as it is now and `_to_average`; with
        save_best, export it to output_dir/best when its held-out accuracy beats every evaluation in `earlier`.
        The model's own weights are put back afterwards. One process only (a sharded model's checkpoint is not
        one file)."""
        if self.acc.num_processes > 1:
            return {"skipped": "average_last runs in one process"}
        folders = self._to_average(step)
        if not folders:
            return {"skipped": "no checkpoint at an evaluation step before the final step"}
        model = self.acc.unwrap_model(self.model)
        trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
        own = {n: p.detach().clone() for n, p in trained.items()}
        steps = [checkpoint_step(f) for f in folders] + [step]
        _load_mean(trained, folders)
        ev = self.evaluate(step, final=True)
        record = {"steps": steps, **ev, **self._keep_average(ev, earlier, steps, step)}
        with torch.no_grad():
            for n, p in trained.items():
                p.copy_(own[n])
        return record

    def _keep_average(self, ev: dict, earlier: list[dict], steps: list[int], step: int) -> dict:
        acc, before = _accuracy(ev), [a for e in earlier if (a := _accuracy(e)) is not None]
        if acc is not None:
            log.info("mean of the weights at steps %s: held-out %.1f%% (best single evaluation %.1f%%)", steps,
                     100 * acc, 100 * max(before, default=float("nan")))
        if not (self.cfg.save_best and acc is not None and (not before or acc > max(before))):
            return {}
        best = self.out / "best"
        self.exporter.write(best, self._summary(True, step, ev, averaged_steps=steps))
        write_json_atomic(best / "eval.json", {"step": step, "averaged_steps": steps, **ev})
        return {"exported_to_best": True}


def _load_mean(trained: dict, folders: list[Path]) -> None:
    """Set each trained parameter to its mean over itself and its value in each checkpoint folder."""
    from safetensors import safe_open

    total = {n: p.detach().double() for n, p in trained.items()}
    for folder in folders:
        with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
            missing = sorted(set(trained) - set(f.keys()))
            if missing:
                raise ValueError(f"{folder}/model.safetensors lacks trained weights {missing[:3]}")
            for n in trained:
                total[n] += f.get_tensor(n).double()
    with torch.no_grad():
        for n, p in trained.items():
            p.copy_((total[n] / (len(folders) + 1)).to(p.dtype))
