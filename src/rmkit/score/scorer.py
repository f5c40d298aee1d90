"""RewardScorer: conversations in, raw rewards out, the same whatever the batch or padding.

    from rmkit import RewardScorer
    scorer = RewardScorer.from_pretrained("Skywork/Skywork-Reward-Llama-3.1-8B-v0.2", dtype="bfloat16")
    scorer.score([[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]])
    scorer.score_pairs(pairs)                        # [(chosen, rejected), ...]
    build_scorer(M, backend="vllm")                  # rmkit.score.factory: the same ids and logits from vLLM

Conversations are rendered with the chat template straight to ids (no double BOS), sorted by length
into token-budget batches, run through the backbone, pooled at the last real token found from the
attention mask, put through the score head in fp32, and returned in input order. Over-long input
follows `truncation`: "error" | "skip" (reward NaN) | "truncate" (prompt cut from the left).
"""
from __future__ import annotations

import logging
import math
import os
from collections import Counter
from typing import Sequence

import torch

from rmkit.data.schema import to_conversation
from rmkit.models.chat import render_ids
from rmkit.models.group_attention import ONE_ROW, layered, per_group
from rmkit.models.groups import attention_masks, pack_groups, split_group, takes_custom_mask
from rmkit.score.base import CONVERSATION_API, TooLongError, context_groups  # noqa: F401
from rmkit.score.config import POLICIES, ScorerConfig  # noqa: F401
from rmkit.score.batching import progress, token_budget_batches
from rmkit.score.pooling import PoolingHead

log = logging.getLogger("rmkit")
class RewardScorer:
    """Scores conversations with a sequence-classification reward model (num_labels=1) in transformers."""

    backend = "hf"
    score, score_pairs, score_texts, encode, encode_texts = CONVERSATION_API  # rmkit.score.base, over score_ids

    def __init__(self, model, tokenizer, config: ScorerConfig | None = None, name: str = "model"):
        self.model, self.tokenizer = model, tokenizer
        self.config = config or ScorerConfig()
        self.name = name
        self.device = next(model.parameters()).device
        self.head = PoolingHead(model, pooling=self.config.pooling)
        self.max_length = self.config.max_length or getattr(model.config, "max_position_embeddings", None)
        self.stats: Counter = Counter()
        self.temperature = 1.0
        """P(a > b) = sigmoid((r_a - r_b) / temperature): 1.0 unless `rmkit calibrate --save` fitted one."""
        self._warn_pad_is_end()

    @classmethod
    def from_pretrained(cls, name_or_path, **options) -> "RewardScorer":
        """The transformers scorer for a checkpoint path, hub id or embedded name; `options` are
        ScorerConfig's. `rmkit.score.factory.build_scorer` chooses among backends."""
        from rmkit.models.load import load_reward_model

        cfg = ScorerConfig.from_options(options)
        model, tok = load_reward_model(name_or_path, dtype=cfg.dtype, device=cfg.device,
                                       attn_implementation=cfg.attn_implementation,
                                       trust_remote_code=cfg.trust_remote_code)
        scorer = cls(model, tok, cfg, name=str(name_or_path))
        from rmkit.score.calibration import read_temperature

        folder = getattr(model.config, "_name_or_path", None)
        scorer.temperature = read_temperature(folder if folder and os.path.isdir(folder) else None)
        return scorer

    def _warn_pad_is_end(self) -> None:
        pad = self.model.config.pad_token_id
        try:
            probe = render_ids(self.tokenizer, to_conversation(
                [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]))
        except Exception:  # noqa: BLE001 - a template that needs more than this probe
            return
        self.pad_is_end = pad is not None and bool(probe) and probe[-1] == pad
        if self.pad_is_end and self.config.pooling == "last":
            log.warning("%s: the pad token (id %s) is the token that ends every rendered conversation. "
                        "rmkit pools at the true last token; a model trained under transformers' pad-id "
                        "rule read one token earlier: use pooling='hf' to reproduce it.", self.name, pad)

    @property
    def dtype_name(self) -> str:
        """The dtype the model computes in ("float32", "bfloat16", ...): results files record it."""
        return str(next(self.model.parameters()).dtype).replace("torch.", "")

    @property
    def shares(self) -> bool:
        """Whether this scorer runs prefix-shared groups (else every sequence alone, padded)."""
        return (self.config.sharing == "auto" and self.head.split and self.config.pooling == "last"
                and takes_custom_mask(getattr(self.model.config, "_attn_implementation", None)))

    # ---- forward ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def _forward(self, batch: list[list[int]]) -> list[float]:
        width = max(len(x) for x in batch)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, x in enumerate(batch):
            sl = slice(width - len(x), width) if self.config.padding_side == "left" else slice(0, len(x))
            ids[row, sl] = torch.tensor(x)
            mask[row, sl] = 1
        rewards = self.head(ids.to(self.device), mask.to(self.device))
        return rewards.float().cpu().tolist()

    def score_ids(self, sequences: Sequence[list[int] | None], groups: Sequence[Sequence[int]] | None = None
                  ) -> list[float]:
        """Rewards for token-id sequences (None → NaN), batched by length, in input order.

        `groups`: lists of indices into `sequences` that share a context (e.g. [[0, 1], [2, 3]] for two
        pairs); where the scorer shares, each group's common prefix runs once. Same rewards either way."""
        if groups is not None and self.shares:
            return self._score_groups(sequences, groups)
        real = [i for i, s in enumerate(sequences) if s is not None]
        out = [math.nan] * len(sequences)
        lengths = [len(sequences[i]) for i in real]
        batches = token_budget_batches(lengths, self.config.batch_tokens, self.config.max_batch_size)
        for batch in progress(batches, self.config.show_progress, "scoring"):
            rewards = self._forward([sequences[real[j]] for j in batch])
            for j, r in zip(batch, rewards):
                out[real[j]] = r
        self.stats["scored"] += len(real)
        return out

    def _score_groups(self, sequences: Sequence[list[int] | None], groups: Sequence[Sequence[int]]
                      ) -> list[float]:
        out = [math.nan] * len(sequences)
        members = [[i for i in g if sequences[i] is not None] for g in groups]
        members = [m for m in members if m]
        shared = [split_group([sequences[i] for i in m]) for m in members]
        self.stats["shared_groups"] += sum(1 for g in shared if g.prefix)
        self.stats["unshared_groups"] += sum(1 for g, m in zip(shared, members) if len(m) > 1 and not g.prefix)
        self.stats["tokens_unshared"] += sum(g.unshared_length for g in shared)
        self.stats["tokens_shared"] += sum(g.length for g in shared)
        lengths = [g.length for g in shared]
        batches = token_budget_batches(lengths, self.config.batch_tokens, self.config.max_batch_size)
        for batch in progress(batches, self.config.show_progress, "scoring"):
            rewards = self._forward_groups([shared[j] for j in batch])
            flat = [i for j in batch for i in members[j]]
            for i, r in zip(flat, rewards):
                out[i] = r
        self.stats["scored"] += sum(len(m) for m in members)
        return out

    @torch.inference_mode()
    def _forward_groups(self, groups: list) -> list[float]:
        if per_group(self.model.config, self.device):
            return self._forward_per_group(groups)
        batch = pack_groups(groups, self.tokenizer.pad_token_id or 0)
        dtype = next(self.model.parameters()).dtype
        masks = attention_masks(self.model.config, batch, dtype=dtype, device=self.device)
        out = self.model.base_model(input_ids=batch["input_ids"].to(self.device), attention_mask=masks,
                                    position_ids=batch["position_ids"].to(self.device), use_cache=False)
        return self.head.apply(out.last_hidden_state[batch["rows"], batch["cols"]]).cpu().tolist()

    def _forward_per_group(self, groups: list) -> list[float]:
        """The groups in one padding-free row, attention paid per group (`rmkit.models.group_attention`):
        the rewards of the 4D-mask path within float noise, without its width-squared attention."""
        stack = self.model.base_model
        batch = pack_groups(groups, self.tokenizer.pad_token_id or 0, row_tokens=ONE_ROW)
        hidden = stack.embed_tokens(batch["input_ids"].to(self.device))
        hidden = layered(stack, self.model.config, batch, groups, hidden, range(len(stack.layers)))
        pooled = stack.norm(hidden)[batch["rows"].to(self.device), batch["cols"].to(self.device)]
        return self.head.apply(pooled).cpu().tolist()

