"""rmkit.train: Bradley-Terry reward-model training (`rmkit train --config FILE [key=value ...]`).

    from rmkit.train import TrainConfig, load_config, train
    summary = train(load_config("configs/train/smollm2-135m-demo.yaml", ["max_steps=10"]))

Importing this package does not import torch; `train` imports it when called.
"""
from rmkit.train.config import TrainConfig, load_config


def train(cfg, **kwargs):
    from rmkit.train.trainer import train as _train

    return _train(cfg, **kwargs)


__all__ = ["TrainConfig", "load_config", "train"]
