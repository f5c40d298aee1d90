"""The export of a model in training as it is now: safetensors (LoRA merged, the adapter beside it), tokenizer,
model card, to a folder, from every process (a sharded model's weights are gathered first).

    exporter = Exporter(acc, model, tok, cfg)
    exporter.write(Path("runs/rm/model"), summary, extra_files={"loss_curve.png": ...})
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmkit.train.model import atomic_dir, export


@dataclass(frozen=True)
class Exporter:
    acc: Any
    model: Any
    """The prepared (possibly wrapped) model."""
    tok: Any
    cfg: Any
    """The run's `TrainConfig` (the model card names it)."""

    def write(self, folder: Path, summary: dict, extra_files: dict | None = None) -> None:
        """The model as it is now, with its card, to `folder`: the sharded state gathered on every process (a
        collective call), written by the main one; the model's train / eval mode is kept."""
        from rmkit.train.card import model_card

        self.acc.wait_for_everyone()
        state_dict = self._gathered_state()
        if self.acc.is_main_process:
            model = self.acc.unwrap_model(self.model)
            was_training = model.training
            model.eval()
            export(model, self.tok, folder, model_card(self.cfg, summary), extra_files=extra_files,
                   state_dict=state_dict)
            model.train(was_training)

    def _gathered_state(self) -> dict | None:
        """Full weights of a sharded model (FSDP / DeepSpeed ZeRO-3; a collective call), else None.
        (LoRA under sharding is exported through peft's merge on the main process: not supported yet.)"""
        from accelerate.utils import DistributedType

        if self.acc.distributed_type not in (DistributedType.FSDP, DistributedType.DEEPSPEED) or self.cfg.lora_r:
            return None
        return self.acc.get_state_dict(self.model)


def copy_folder(src: Path, dst: Path) -> None:
    """Replace `dst` with a copy of `src`, atomically (never a half-copied `dst`)."""
    import shutil

    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
