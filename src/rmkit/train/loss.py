"""Reward-model losses and metrics as pure tensor functions (no I/O, no model).

    >>> import torch
    >>> round(bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0])).item(), 4)
    0.3133

Bradley-Terry: loss = -logsigmoid(r_c - r_r - margin), plus an optional reward-centering term
coef * mean((r_c + r_r)^2) (Eisenstein et al. 2023, as in TRL's RewardTrainer).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None,
                       center_coefficient: float = 0.0) -> torch.Tensor:
    """Mean over pairs of -logsigmoid(r_c - r_r - margin) [+ coef * mean((r_c + r_r)^2)]."""
    diff = chosen.float() - rejected.float()
    if margin is not None:
        diff = diff - margin.float()
    loss = -F.logsigmoid(diff).mean()
    if center_coefficient:
        loss = loss + center_coefficient * centering_penalty(chosen, rejected)
    return loss


def centering_penalty(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    return ((chosen.float() + rejected.float()) ** 2).mean()


def pair_metrics(chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, float]:
    """Accuracy (a tie is wrong, as in RewardBench), mean margin, mean chosen / rejected reward."""
    c, r = chosen.detach().float(), rejected.detach().float()
    return {"accuracy": (c > r).float().mean().item(), "margin": (c - r).mean().item(),
            "reward_chosen": c.mean().item(), "reward_rejected": r.mean().item()}


def split_rewards(rewards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards of a paired batch laid out [c0, r0, c1, r1, ...] → (chosen, rejected)."""
    return rewards[0::2], rewards[1::2]


def edge_loss(rewards: torch.Tensor, batch: dict, use_margin: bool = False, center_coefficient: float = 0.0
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bradley-Terry over a batch's edges: (loss, chosen rewards, rejected rewards). `winners[e]`, `losers[e]`
    index `rewards`; `margins[e]` is the edge's margin (used with `use_margin`)."""
    c, r = rewards[batch["winners"].to(rewards.device)], rewards[batch["losers"].to(rewards.device)]
    margin = batch["margins"].to(c.device) if use_margin else None
    return bradley_terry_loss(c, r, margin, center_coefficient), c, r


def step_totals(chosen: list, rejected: list, margins: list, tokens: int, use_margin: bool = False,
                center_coefficient: float = 0.0) -> torch.Tensor:
    """One process's share of a step, from its micro-batches' edge rewards: [loss, accuracy, margin,
    reward_chosen, reward_rejected, tokens] (what the processes then average, tokens summed)."""
    c, r = torch.cat(chosen), torch.cat(rejected)
    m = torch.cat(margins).to(c.device) if use_margin else None
    return torch.tensor([bradley_terry_loss(c, r, m, center_coefficient).item(), *pair_metrics(c, r).values(),
                         float(tokens)], device=c.device)
