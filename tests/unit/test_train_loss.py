"""Bradley-Terry loss and metrics on hand-checkable numbers."""
import math

import pytest
import torch

from rmkit.train.loss import bradley_terry_loss, centering_penalty, pair_metrics, split_rewards


def test_bt_loss_values():
    c, r = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0])
    expected = (math.log(1 + math.exp(-1.0)) + math.log(2)) / 2
    assert bradley_terry_loss(c, r).item() == pytest.approx(expected, abs=1e-6)


def test_bt_margin_shifts_difference():
    c, r = torch.tensor([2.0]), torch.tensor([0.0])
    with_margin = bradley_terry_loss(c, r, margin=torch.tensor([2.0]))
    assert with_margin.item() == pytest.approx(math.log(2), abs=1e-6)


def test_centering_term_added():
    c, r = torch.tensor([1.0, 3.0]), torch.tensor([1.0, -1.0])
    assert centering_penalty(c, r).item() == pytest.approx((4 + 4) / 2)
    base = bradley_terry_loss(c, r).item()
    assert bradley_terry_loss(c, r, center_coefficient=0.5).item() == pytest.approx(base + 0.5 * 4)


def test_bt_gradient_sign():
    c = torch.tensor([0.0], requires_grad=True)
    r = torch.tensor([0.0], requires_grad=True)
    bradley_terry_loss(c, r).backward()
    assert c.grad.item() == pytest.approx(-0.5) and r.grad.item() == pytest.approx(0.5)


def test_metrics_tie_is_wrong():
    m = pair_metrics(torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0.0, 2.0, 1.5]))
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["margin"] == pytest.approx(0.0)
    assert m["reward_chosen"] == pytest.approx(3.5 / 3)


def test_split_interleaved():
    c, r = split_rewards(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert c.tolist() == [1.0, 3.0] and r.tolist() == [2.0, 4.0]
