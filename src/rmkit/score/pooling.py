"""Last-token pooling for sequence-classification reward models, from the attention mask.

transformers' own `*ForSequenceClassification` reads the rightmost token whose id is not the pad id,
which is wrong when pad == eos ends the text, and needs care with left padding. rmkit runs the
backbone, takes the hidden state at the last position where the attention mask is 1 (as vLLM and
OpenRLHF do), and applies the score head in fp32. `pooling="hf"` reproduces the pad-id rule for
checkpoints that were trained under it.
"""
from __future__ import annotations

import torch


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position with mask 1, per row (left or right padding alike)."""
    pos = torch.arange(mask.shape[1], device=mask.device)
    return (pos * mask).argmax(-1)


def hf_token_index(input_ids: torch.Tensor, mask: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """transformers' rule: the rightmost position whose id is not the pad id (among real tokens)."""
    if pad_id is None:
        return last_token_index(mask)
    keep = (input_ids != pad_id) & mask.bool()
    pos = torch.arange(mask.shape[1], device=mask.device)
    return (pos * keep).argmax(-1)


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, … over each row's real tokens (so left padding does not shift positions)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


class PoolingHead:
    """Callable (input_ids, attention_mask) → fp32 rewards, for decoder RMs with a `score` head.

    Models without a separate backbone + `score` Linear (encoders with a pooler, custom heads) fall
    back to the model's own forward, whose logits are returned as they are.
    """

    def __init__(self, model, pooling: str = "last"):
        self.model, self.pooling = model, pooling
        score = getattr(model, "score", None)
        base = getattr(model, "base_model", None)
        self.split = isinstance(score, torch.nn.Linear) and base is not None and base is not model
        if self.split:
            self.weight = score.weight.detach().float()
            self.bias = None if score.bias is None else score.bias.detach().float()

    def pool(self, hidden: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "hf":
            idx = hf_token_index(input_ids, mask, self.model.config.pad_token_id)
        else:
            idx = last_token_index(mask)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]

    def __call__(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.split:
            return self.model(input_ids=input_ids, attention_mask=mask).logits[:, 0].float()
        out = self.model.base_model(input_ids=input_ids, attention_mask=mask,
                                    position_ids=position_ids_from_mask(mask), use_cache=False)
        return self.apply(self.pool(out.last_hidden_state, input_ids, mask))

    def apply(self, pooled: torch.Tensor) -> torch.Tensor:
        """The score head in fp32 on pooled hidden states (n, hidden) → (n,) rewards."""
        rewards = pooled.float() @ self.weight.T
        if self.bias is not None:
            rewards = rewards + self.bias
        return rewards[:, 0]
