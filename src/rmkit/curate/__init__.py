"""Curation: the Skywork-Reward mixture recipe (sources, top-k with offsets, RM-consistency filter,
dedup, quotas) as one entry function.

    rmkit curate --config configs/curate/skywork-80k.yaml [key=value ...]

See run.py (entry function), config.py (the recipe: CurateConfig), select.py, filters.py, report.py. No torch here.
"""
from rmkit.curate.config import CurateConfig, load_config
from rmkit.curate.run import curate

__all__ = ["CurateConfig", "curate", "load_config"]
