"""Every YAML under configs/ parses; every recipe under configs/train/ is a valid TrainConfig whose
first line holds the command that runs it."""
from pathlib import Path

import pytest
import yaml

from rmkit.train.config import load_config

ROOT = Path(__file__).resolve().parents[2] / "configs"
ALL = sorted(ROOT.rglob("*.yaml")) + sorted(ROOT.rglob("*.yml"))
TRAIN = sorted((ROOT / "train").glob("*.yaml"))


def test_there_are_configs():
    assert len(TRAIN) >= 3 and (ROOT / "accelerate").is_dir()


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path):
    yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", TRAIN, ids=lambda p: p.name)
def test_train_recipe(path):
    cfg = load_config(path)
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#") and path.name in first and ("rmkit train" in first or "accelerate launch" in first)
    assert cfg.data, f"{path.name} names no training data"
