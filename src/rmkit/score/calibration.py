"""What `rmkit calibrate --save` stores beside a model (calibration.json), read where rewards are served:
the temperature of P(a > b) = sigmoid((r_a - r_b) / T) and the reward mean / std RL loops normalise by.

    read_temperature("path/to/rm")      # 1.0 when nothing was saved
    read_reward_stats("path/to/rm")     # (mean, std), or an error naming the command to run

Fitting lives in `rmkit.evaluate.calibrate`; reading lives here, so the scorers need nothing from evaluate.
"""
from __future__ import annotations

import math
from pathlib import Path

CALIBRATION_FILE = "calibration.json"


def read_temperature(model_dir: str | Path | None) -> float:
    """The temperature saved beside a model (calibration.json), else 1.0 (raw sigmoid of the difference)."""
    import json

    if model_dir is None:
        return 1.0
    f = Path(model_dir) / CALIBRATION_FILE
    if not f.is_file():
        return 1.0
    t = json.loads(f.read_text(encoding="utf-8")).get("temperature")
    if t is None:
        return math.inf  # saved as null: no signal, every probability 0.5
    if not (isinstance(t, (int, float)) and t > 0):
        raise ValueError(f"{f}: temperature must be a positive number, got {t!r}")
    return float(t)


def read_reward_stats(path: str | Path) -> tuple[float, float]:
    """(mean, std) of the reference rewards saved by `rmkit calibrate --save` (a calibration.json, or the
    model folder holding one). A missing file or field is an error naming what to run."""
    import json

    f = Path(path)
    f = f / CALIBRATION_FILE if f.is_dir() else f
    if not f.is_file():
        raise FileNotFoundError(f"{f} not found: run `rmkit calibrate --model M --data PAIRS --save` to "
                                "measure the reward mean and std on a reference set")
    data = json.loads(f.read_text(encoding="utf-8"))
    mean, std = data.get("reward_mean"), data.get("reward_std")
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in (mean, std)):
        raise ValueError(f"{f} holds no reward_mean / reward_std: rerun `rmkit calibrate ... --save`")
    if std <= 0:
        raise ValueError(f"{f}: reward_std must be positive, got {std}")
    return float(mean), float(std)
