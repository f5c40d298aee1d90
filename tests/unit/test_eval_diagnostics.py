"""Length diagnostics on hand-checkable inputs."""
import math

import numpy as np
import pytest

from rmkit.evaluate.diagnostics import (length_agreement, length_buckets, length_diagnostics,
                                        pearson, spearman)


def test_correlations():
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [1, 10, 100, 1000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)   # ties share a rank


def test_length_buckets_by_ratio():
    # ratios chosen/rejected: 1/4, 1/1.5, 1, 1.5, 4 (lengths + 1 inside the log)
    chosen = [9, 19, 29, 44, 159]
    rejected = [39, 29, 29, 29, 39]
    rows = length_buckets([0, 1, 1, 0, 1], chosen, rejected, n_boot=100)
    assert [r["n"] for r in rows] == [1, 1, 1, 1, 1]
    assert [r["accuracy"] for r in rows] == [0, 1, 1, 0, 1]


def test_length_agreement():
    out = length_agreement(chosen_reward=[2, 1, 5, 3], rejected_reward=[1, 2, 5, 9],
                           chosen_len=[10, 10, 3, 7], rejected_len=[5, 5, 8, 7], n_boot=100)
    # pair 4 has equal lengths (left out); pair 3 is a reward tie (disagrees)
    assert out["n_pairs_differing_in_length"] == 3
    assert out["agreement"] == pytest.approx(1 / 3)
    assert out["length_baseline_accuracy"] == pytest.approx(2 / 3)


def test_length_diagnostics_drops_nan_rewards():
    d = length_diagnostics([1.0, np.nan, 3.0, 4.0], [0.0, 1.0, 1.0, 5.0], [5, 6, 7, 8], [4, 5, 6, 9],
                           n_boot=100)
    assert d["n_pairs"] == 3
    assert d["length_baseline"]["agreement"] == pytest.approx(1.0)
    assert d["reward_length_correlation"]["spearman"]["value"] > 0
