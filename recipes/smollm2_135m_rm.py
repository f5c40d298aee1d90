"""The default reward model's recipe, every step, resuming from rmkit's cache: `make default-rm`.

    python recipes/smollm2_135m_rm.py            # RMKIT_DATA_DIR=../shared/data; runs under $RMKIT_CACHE/runs
    python recipes/smollm2_135m_rm.py --dry-run  # says what each step would reuse or run

Run from the repository root (the config, recipes/splits.py and bench/quality.py are named from there).
Steps: the training pool and the 600 held-out pairs (`recipes/splits.py pool`), RewardBench decontamination
(`rmkit decontaminate`), the validation split, training (`rmkit train --config
configs/train/smollm2-135m-rm.yaml --resume`: the store and the checkpoints resume from the cache), the
export (`rmkit models export` of the run's best validation checkpoint: the part that would ship, at most 32 MB),
and the bar (`bench/quality.py --dtype float32` on that export, loaded by its folder path). If the bar passes,
shipping is copying the export into `src/rmkit/models/trained/`. The runs live in rmkit's cache
(`$RMKIT_CACHE/runs/smollm2-135m-rm`, default `~/.cache/rmkit`), so a fresh checkout on the same machine
goes on where the last one stopped. A step whose outputs exist is reused (and says so); each step that runs
appends its wall minutes to `stage_times.tsv` beside the runs.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

CONFIG = "configs/train/smollm2-135m-rm.yaml"
SPLITS = "recipes/splits.py"


def root() -> Path:
    from rmkit.models.paths import cache_dir

    return cache_dir() / "runs" / "smollm2-135m-rm"


def rmkit_cli() -> list[str]:
    found = Path(sys.executable).parent / "rmkit"
    return [str(found)] if found.exists() else [shutil.which("rmkit") or "rmkit"]


def run_name(config: str = CONFIG) -> str:
    """The training run's folder name: the last part of the config's output_dir (the runs root holds it)."""
    from rmkit.train.config import load_config

    return Path(load_config(config).output_dir).name


def steps(rm: Path, config: str = CONFIG) -> list[tuple[str, list[Path], list[str]]]:
    """(name, outputs that mark it done, command) in order."""
    data, name = rm / "data", run_name(config)
    return [
        ("pool", [data / "pool.jsonl", data / "heldout.jsonl"],
         [sys.executable, SPLITS, "pool", str(data)]),
        ("decontaminate", [data / "clean.jsonl"],
         [*rmkit_cli(), "decontaminate", str(data / "pool.jsonl"), "--against", "rewardbench", "-o",
          str(data / "clean.jsonl"), "--removed", str(data / "removed.jsonl"), "--report",
          str(data / "decontamination.json")]),
        ("validation", [data / "train.jsonl", data / "validation.jsonl"],
         [sys.executable, SPLITS, "validation", str(data / "clean.jsonl"), str(data),
          "--per-source", "hh-rlhf=300,ultrafeedback=150"]),
        ("train", [rm / name / "model" / "model.safetensors", rm / name / "results.json"],
         [*rmkit_cli(), "train", "--config", config, "--resume"]),
        ("export", [rm / "export" / name / "manifest.json"],
         [*rmkit_cli(), "models", "export", str(rm / name / "best"), "--out", str(rm / "export" / name)]),
        ("bar", [rm / "quality" / f"{name}-export" / "quality.json"],
         [sys.executable, "bench/quality.py", "--dtype", "float32", "--model", str(rm / "export" / name),
          "--out", str(rm / "quality" / f"{name}-export")]),
    ]


def done(outputs: list[Path], name: str) -> bool:
    """Outputs present (for training: a complete run's export and results, not an interrupted one's)."""
    if not all(p.exists() for p in outputs):
        return False
    if name == "train":
        import json

        return bool(json.loads(outputs[-1].read_text()).get("complete"))
    return True


def run(dry_run: bool = False) -> list[tuple[str, str, float]]:
    rm = root()
    rm.mkdir(parents=True, exist_ok=True)
    record, plan = [], steps(rm)
    for name, outputs, cmd in plan:
        if done(outputs, name):
            print(f"[recipe] {name}: reused {', '.join(str(p) for p in outputs)}", flush=True)
            record.append((name, "reused", 0.0))
            continue
        print(f"[recipe] {name}: {' '.join(cmd)}", flush=True)
        if dry_run:
            record.append((name, "would run", 0.0))
            continue
        t0 = time.monotonic()
        subprocess.run(cmd, check=True)
        minutes = (time.monotonic() - t0) / 60
        with open(rm / "stage_times.tsv", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\t{name}\t{minutes:.1f}\n")
        print(f"[recipe] {name}: {minutes:.1f} min", flush=True)
        record.append((name, "ran", minutes))
    outputs = {name: out for name, out, _ in plan}
    verdict, export = outputs["bar"][0], outputs["export"][0].parent
    if verdict.exists():
        import json

        passed = json.loads(verdict.read_text()).get("verdict", {}).get("passes_bar")
        print(f"[recipe] the bar on the export: {'passed' if passed else 'NOT passed'} ({verdict})"
              + (f"; to ship it: cp -r {export} src/rmkit/models/trained/smollm2-135m-rm" if passed else ""),
              flush=True)
    return record


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python recipes/smollm2_135m_rm.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="say what each step would reuse or run")
    run(ap.parse_args(argv).dry_run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
