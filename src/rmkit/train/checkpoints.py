"""What a training run keeps: accelerate checkpoints (resume), the best model so far (`save_best`), the mean of
the last checkpoints' weights (`average_last`), and the export of the model as it is now.

    save_checkpoint(run); latest_checkpoint(output_dir)      # output_dir/checkpoints/checkpoint-000100
    keep_if_best(run, ev)                                    # output_dir/best when `ev` beats every earlier one
    averaged_eval(run, evals)                                # the mean weights evaluated (and kept if best)

Each function takes the trainer's `Run` (model, accelerator, config, state) and is called by
`rmkit.train.trainer`'s loop and `finish`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from rmkit.data.io import write_json_atomic
from rmkit.train import evaluation
from rmkit.train.model import atomic_dir, export

log = logging.getLogger("rmkit")
RunT = Any
"""`rmkit.train.trainer.Run` (not imported: the trainer imports this module)."""


def save_checkpoint(run: RunT) -> None:
    ckdir = Path(run.cfg.output_dir) / "checkpoints"
    final = ckdir / f"checkpoint-{run.state.step:06d}"
    tmp = ckdir / f".tmp-checkpoint-{run.state.step:06d}"
    run.acc.save_state(str(tmp))
    run.acc.wait_for_everyone()
    if run.acc.is_main_process:
        import shutil

        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in sorted(ckdir.glob("checkpoint-*"))[:-run.cfg.save_total_limit]:
            shutil.rmtree(old, ignore_errors=True)
    run.acc.wait_for_everyone()


def latest_checkpoint(output_dir: str) -> Path | None:
    found = sorted((Path(output_dir) / "checkpoints").glob("checkpoint-*"))
    return found[-1] if found else None


def _accuracy(ev: dict) -> float | None:
    return (ev.get("heldout") or {}).get("accuracy")


def keep_if_best(run: RunT, ev: dict, exported: Path | None = None) -> bool:
    """With `save_best`: export the model to output_dir/best when `ev` (an evaluation of the model as it is
    now) has the highest held-out accuracy of the run so far (ties keep the earlier one). `exported` is a
    folder that already holds this model (the final export): it is copied rather than gathered again."""
    acc = _accuracy(ev)
    if not run.cfg.save_best or acc is None:
        return False
    earlier = [a for e in run.state.evals if e is not ev and (a := _accuracy(e)) is not None]
    if earlier and acc <= max(earlier):
        return False
    best = Path(run.cfg.output_dir) / "best"
    if exported is None:
        summary = {"complete": False, "steps": run.state.step, "num_steps": len(run.plan), "best_of_evals": True,
                   "data": run.stats, "eval": ev, "config": run.cfg.to_dict()}
        export_model(run, best, summary)
    elif run.acc.is_main_process:
        _copy_folder(exported, best)
    if run.acc.is_main_process:
        write_json_atomic(best / "eval.json", {"step": run.state.step, **ev})
        log.info("step %d: held-out accuracy %.4f is the best so far; exported to %s", run.state.step, acc, best)
    run.acc.wait_for_everyone()
    return True


def _copy_folder(src: Path, dst: Path) -> None:
    """Replace `dst` with a copy of `src`, atomically (never a half-copied `dst`)."""
    import shutil

    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)


def export_model(run: RunT, folder: Path, summary: dict, extra_files: dict | None = None) -> None:
    """The model as it is now, with its card, to `folder`: the sharded state gathered on every process (a
    collective call), written by the main one; the model's train / eval mode is kept."""
    from rmkit.train.card import model_card

    run.acc.wait_for_everyone()
    state_dict = _gathered_state(run)
    if run.acc.is_main_process:
        model = run.acc.unwrap_model(run.model)
        was_training = model.training
        model.eval()
        export(model, run.tok, folder, model_card(run.cfg, summary), extra_files=extra_files,
               state_dict=state_dict)
        model.train(was_training)


def _gathered_state(run: RunT) -> dict | None:
    """Full weights of a sharded model (FSDP / DeepSpeed ZeRO-3; a collective call), else None.
    (LoRA under sharding is exported through peft's merge on the main process: not supported yet.)"""
    from accelerate.utils import DistributedType

    if run.acc.distributed_type not in (DistributedType.FSDP, DistributedType.DEEPSPEED) or run.cfg.lora_r:
        return None
    return run.acc.get_state_dict(run.model)


def checkpoint_step(folder: Path) -> int:
    return int(folder.name.rsplit("-", 1)[1])


def averaged_eval(run: RunT, earlier: list[dict]) -> dict:
    """Evaluate the mean of the trained weights over the model as it is now and the last `average_last - 1`
    checkpoints of earlier evaluation steps (every step when eval_steps is 0); with save_best, export it to output_dir/best when its held-out accuracy
    beats every evaluation in `earlier`. The model's own weights are put back afterwards. One process only
    (a sharded model's checkpoint is not one file)."""
    from safetensors import safe_open

    if run.acc.num_processes > 1:
        return {"skipped": "average_last runs in one process"}
    model = run.acc.unwrap_model(run.model)
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    every = run.cfg.eval_steps or 1  # the weights the evaluations saw (not a time-budget stop's checkpoint)
    folders = [f for f in sorted((Path(run.cfg.output_dir) / "checkpoints").glob("checkpoint-*"))
               if checkpoint_step(f) < run.state.step and checkpoint_step(f) % every == 0]
    folders = folders[-(run.cfg.average_last - 1):]
    if not folders:
        return {"skipped": "no checkpoint at an evaluation step before the final step"}
    own = {n: p.detach().clone() for n, p in trained.items()}
    total = {n: p.detach().double() for n, p in trained.items()}
    for folder in folders:
        with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
            missing = sorted(set(trained) - set(f.keys()))
            if missing:
                raise ValueError(f"{folder}/model.safetensors lacks trained weights {missing[:3]}")
            for n in trained:
                total[n] += f.get_tensor(n).double()
    steps = [checkpoint_step(f) for f in folders] + [run.state.step]
    with torch.no_grad():
        for n, p in trained.items():
            p.copy_((total[n] / len(steps)).to(p.dtype))
    ev = evaluation.run_eval(run, final=True)
    record = {"steps": steps, **ev}
    acc, before = _accuracy(ev), [a for e in earlier if (a := _accuracy(e)) is not None]
    if acc is not None:
        log.info("mean of the weights at steps %s: held-out %.1f%% (best single evaluation %.1f%%)", steps,
                 100 * acc, 100 * max(before, default=float("nan")))
    if run.cfg.save_best and acc is not None and (not before or acc > max(before)):
        best = Path(run.cfg.output_dir) / "best"
        summary = {"complete": True, "steps": run.state.step, "num_steps": len(run.plan), "averaged_steps": steps,
                   "data": run.stats, "eval": ev, "config": run.cfg.to_dict()}
        export_model(run, best, summary)
        write_json_atomic(best / "eval.json", {"step": run.state.step, "averaged_steps": steps, **ev})
        record["exported_to_best"] = True
    with torch.no_grad():
        for n, p in trained.items():
            p.copy_(own[n])
    return record
