"""Benchmark decontamination: drop training pairs that share word n-grams with benchmark prompts.

    rmkit decontaminate TRAIN --against rewardbench [--against FILE ...] -o CLEAN --removed REMOVED

See run.py (entry function), config.py (DecontamConfig), index.py (the n-gram index), ngrams.py (tokenisation).
No torch here.
"""
from rmkit.decontam.config import DecontamConfig
from rmkit.decontam.run import decontaminate

__all__ = ["DecontamConfig", "decontaminate"]
