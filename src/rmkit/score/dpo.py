"""DPOScorer: a DPO-trained policy as a reward model, through its implicit reward.

    scorer = DPOScorer.from_pretrained("path/to/policy", "path/to/reference", beta=0.1)
    scorer.score_pairs(pairs)           # [(β·(log π(c|x) − log π_ref(c|x)), same for r), ...]
    DPOScorer.from_pretrained("path/to/policy", ref_free="avg")   # no reference: mean log π(y|x) per token

The reward of a response y to a context x is β·(log π(y|x) − log π_ref(y|x)): the log-probabilities of the
response tokens only (the prompt's are not counted), summed over the response. Without a reference model,
the reference-free variants of reward-bench's `DPOInference` (`ref_free_norm` / run_dpo.py `--ref_free_type`):
"sum" (Σ log π), "avg" (Σ log π / number of response tokens) and "norm" (−‖per-token log π‖₂). β (default
1: reward-bench applies none, so the default rewards are its numbers) scales every variant.

Input is rendered as every rmkit scorer renders it (`rmkit.models.chat`: the chat template straight to ids, no
double BOS); the response is what follows the context rendered with the generation prompt (`prompt_length`),
so the assistant header belongs to the prompt. Over-long input follows `ScorerConfig.truncation` ("error" |
"skip" → NaN | "truncate": the prompt cut from the left, both sides of a pair by the same amount).

A prompt runs once for all its responses (both sides of a pair, best-of-N completions with one context): the
prefix-shared groups of `rmkit.models.groups` (`sharing="auto"`; attention per group on the CPU, a 4D mask
elsewhere), exact for a causal model, and only the response positions go through the vocabulary projection.
`sharing="off"` runs every conversation alone in padded batches (the same numbers within float noise).
"""
from __future__ import annotations

import math
import os
from collections import Counter
from typing import Any, Sequence

import torch

from rmkit.data.schema import Conversation, PreferencePair, to_conversation
from rmkit.models.chat import render_ids_with_prompt
from rmkit.models.group_attention import layered, per_group, row_tokens_for
from rmkit.models.groups import (
    Group,
    attention_masks,
    pack_groups,
    split_group,
    takes_custom_mask,
)
from rmkit.score.base import context_groups, fit
from rmkit.score.config import ScorerConfig
from rmkit.score.batching import progress, token_budget_batches

REF_FREE = ("sum", "avg", "norm")
"""reward-bench's reference-free variants (`DPOInference(ref_free_norm=...)`)."""
LOGIT_FLOATS = 1 << 24
"""Logits computed at once (rows × vocabulary): the vocabulary projection runs in chunks of this size."""


class DPOScorer:
    """Implicit DPO rewards of a causal LM policy (and its reference) for conversations and pairs: the
    `rmkit.score.protocol.Scorer` shape, with the over-long policy of every backend (`rmkit.score.base.fit`)."""

    backend = "hf"

    def __init__(self, policy, tokenizer, ref=None, config: ScorerConfig | None = None, *, beta: float = 1.0,
                 ref_free: str | None = None, name: str | None = None):
        check_mode(ref is not None, ref_free)
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be a positive number, got {beta!r}")
        self.policy, self.ref, self.tokenizer = policy, ref, tokenizer
        self.config = config or ScorerConfig()
        self.beta, self.ref_free = float(beta), ref_free
        self.name = name or "dpo"
        self.device = next(policy.parameters()).device
        limits = [getattr(m.config, "max_position_embeddings", None) for m in self.models]
        limits = [x for x in limits if x]
        self.max_length = self.config.max_length or (min(limits) if limits else None)
        self.stats: Counter = Counter()
        self.temperature = 1.0
        for m in self.models:
            check_head(m)

    @classmethod
    def from_pretrained(cls, policy: str | os.PathLike, ref: str | os.PathLike | None = None, *,
                        beta: float = 1.0, ref_free: str | None = None, **options: Any) -> "DPOScorer":
        """Load the policy (and the reference) as AutoModelForCausalLM from local folders (or embedded names);
        `options` are `ScorerConfig`'s (dtype, device, max_length, truncation, batch_tokens, sharing, ...)."""
        check_mode(ref is not None, ref_free)
        cfg = ScorerConfig.from_options(options)
        model, tok = load_causal_lm(policy, cfg)
        ref_model = None
        if ref is not None:
            ref_model, ref_tok = load_causal_lm(ref, cfg)
            if ref_tok.get_vocab() != tok.get_vocab():
                raise ValueError(f"the reference model {ref} has another tokenizer than the policy {policy}: "
                                 "log-probabilities of the same ids would not be of the same text")
        label = f"dpo:{policy}" + (f" ref:{ref}" if ref is not None else f" ref-free:{ref_free}")
        return cls(model, tok, ref_model, cfg, beta=beta, ref_free=ref_free, name=label)

    # ---- properties ------------------------------------------------------------------------------
    @property
    def models(self) -> list:
        return [self.policy] + ([self.ref] if self.ref is not None else [])

    @property
    def dtype_name(self) -> str:
        """The dtype the policy computes in ("float32", "bfloat16", ...): results files record it."""
        return str(next(self.policy.parameters()).dtype).replace("torch.", "")

    @property
    def shares(self) -> bool:
        """Whether a prompt runs once for all its responses (else every conversation alone, padded)."""
        return self.config.sharing == "auto" and all(
            takes_custom_mask(getattr(m.config, "_attn_implementation", None)) for m in self.models)

    # ---- public API ------------------------------------------------------------------------------
    def score(self, conversations: Sequence[Any]) -> list[float]:
        """One implicit reward per conversation (its last reply given everything before), in input order.
        Conversations with the same context share its forward."""
        convs = [to_conversation(c) for c in conversations]
        items = [self._fit_item(*render_ids_with_prompt(self.tokenizer, c), c) for c in convs]
        return self._score_items(items, context_groups(convs))

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> list[tuple[float, float]]:
        """(chosen, rejected) rewards; both sides of a pair share the prompt's forward and any prompt cut."""
        items: list[tuple[list[int], int] | None] = []
        for p in pairs:
            items.extend(self._encode_pair_items(p))
        r = self._score_items(items, [[2 * i, 2 * i + 1] for i in range(len(pairs))])
        return list(zip(r[0::2], r[1::2]))

    def score_ids(self, sequences: Sequence[list[int] | None], groups: Sequence[Sequence[int]] | None = None,
                  starts: Sequence[int] | None = None) -> list[float]:
        """Rewards of token-id sequences whose response begins at index `starts[i]` (None → NaN)."""
        if starts is None:
            raise ValueError("DPO rewards need where each response starts (starts=...): score conversations, "
                             "or give the prompt length of every sequence")
        items = [None if s is None else (list(s), int(k)) for s, k in zip(sequences, starts)]
        return self._score_items(items, groups if groups is not None else [[i] for i in range(len(items))])

    def score_texts(self, texts: Sequence[str]) -> list[float]:
        raise NotImplementedError("a DPO reward needs to know where the response starts: score conversations "
                                  "(messages), not fully formatted texts")

    # ---- ids -------------------------------------------------------------------------------------
    def _fit_item(self, ids: list[int], start: int, conv: Conversation, cut: int | None = None
                  ) -> tuple[list[int], int] | None:
        fitted = fit(self, ids, conv, cut)
        if fitted is None:
            return None
        return fitted, start - (len(ids) - len(fitted))  # a cut takes prompt tokens only

    def _encode_pair_items(self, pair: PreferencePair):
        convs = (pair.chosen_conversation, pair.rejected_conversation)
        rendered = [render_ids_with_prompt(self.tokenizer, c) for c in convs]
        limit = self.max_length
        cut = None
        if limit is not None and self.config.truncation == "truncate" and max(len(x) for x, _ in rendered) > limit:
            cut = max(len(x) - limit for x, _ in rendered)  # the shared prompt cut by the same amount
        fitted = [self._fit_item(x, s, c, cut) for (x, s), c in zip(rendered, convs)]
        if fitted[0] is None or fitted[1] is None:
            return None, None
        return fitted[0], fitted[1]

    # ---- scoring ---------------------------------------------------------------------------------
    def _score_items(self, items: Sequence[tuple[list[int], int] | None], groups: Sequence[Sequence[int]]
                     ) -> list[float]:
        out = [math.nan] * len(items)
        starts = {}
        for i, it in enumerate(items):
            if it is not None:
                ids, s = it
                s = max(s, 1)  # the first token has nothing before it to be predicted from
                if s >= len(ids):
                    raise ValueError(f"conversation {i} has no response tokens to score (its last message "
                                     "renders to nothing after the prompt)")
                starts[i] = s
        shares = self.shares
        members = [[i for i in g if items[i] is not None] for g in (groups if shares else [[i] for i in starts])]
        members = [m for m in members if m]
        shared = [split_group([items[i][0] for i in m], share=shares) for m in members]
        self.stats["shared_groups"] += sum(1 for g in shared if g.prefix)
        self.stats["tokens_shared"] += sum(g.length for g in shared)
        self.stats["tokens_unshared"] += sum(g.unshared_length for g in shared)
        lengths = [g.length for g in shared]
        batches = token_budget_batches(lengths, self.config.batch_tokens, self.config.max_batch_size)
        for batch in progress(batches, self.config.show_progress, "dpo scoring"):
            gs = [shared[j] for j in batch]
            flat = [i for j in batch for i in members[j]]
            begin = [starts[i] for i in flat]
            logps = [self._logps(m, gs, begin, shares) for m in self.models]
            for k, i in enumerate(flat):
                out[i] = self._reward(logps[0][k], logps[1][k] if len(logps) > 1 else None)
            self.stats["response_tokens"] += sum(len(x) for x in logps[0])
        self.stats["scored"] += len(starts)
        return out

    def _reward(self, pol: torch.Tensor, ref: torch.Tensor | None) -> float:
        if ref is not None:
            value = pol.sum() - ref.sum()
        elif self.ref_free == "sum":
            value = pol.sum()
        elif self.ref_free == "avg":
            value = pol.mean()
        else:  # "norm": minus the L2 norm of the per-token log-probabilities
            value = -torch.linalg.vector_norm(pol)
        return self.beta * float(value)

    @torch.inference_mode()
    def _logps(self, model, groups: list[Group], starts: list[int], shares: bool) -> list[torch.Tensor]:
        """Per-token log-probabilities of every member's response tokens (group order, then member order)."""
        if shares:
            hidden, where = self._hidden_groups(model, groups)
        else:
            hidden, where = self._hidden_padded(model, [g.sequences[0] for g in groups])
        rows, cols, targets, sizes = [], [], [], []
        for (row, col_of, seq), s in zip(where, starts):
            positions = range(s - 1, len(seq) - 1)
            rows.extend([row] * len(positions))
            cols.extend(col_of(t) for t in positions)
            targets.extend(seq[s:])
            sizes.append(len(positions))
        states = hidden[torch.tensor(rows, device=hidden.device), torch.tensor(cols, device=hidden.device)]
        if shares and per_group(model.config, self.device):
            states = model.base_model.norm(states)  # the per-group path leaves the final norm to the caller
        values = token_logps(model, states, torch.tensor(targets, device=hidden.device))
        return list(values.cpu().split(sizes))

    def _hidden_groups(self, model, groups: list[Group]):
        """Final hidden states of the groups packed (prefix once), and for every member: its row, a map
        from its sequence positions to columns, and its ids."""
        stack = model.base_model
        batch = pack_groups(groups, self.tokenizer.pad_token_id or 0,
                            row_tokens=row_tokens_for(model.config, self.device))
        if per_group(model.config, self.device):
            hidden = stack.embed_tokens(batch["input_ids"].to(self.device))
            hidden = layered(stack, model.config, batch, groups, hidden, range(len(stack.layers)))
        else:
            dtype = next(model.parameters()).dtype
            masks = attention_masks(model.config, batch, dtype=dtype, device=self.device)
            hidden = stack(input_ids=batch["input_ids"].to(self.device), attention_mask=masks,
                           position_ids=batch["position_ids"].to(self.device), use_cache=False).last_hidden_state
        where = []
        for g, (row, start, _) in zip(groups, batch["spans"].tolist()):
            p, col = len(g.prefix), start + len(g.prefix)
            for suffix in g.suffixes:
                where.append((row, _columns(start, p, col), g.prefix + suffix))
                col += len(suffix)
        return hidden, where

    def _hidden_padded(self, model, seqs: list[tuple[int, ...]]):
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, :len(s)] = 1
        hidden = model.base_model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                  use_cache=False).last_hidden_state
        return hidden, [(r, _identity, s) for r, s in enumerate(seqs)]


def _identity(t: int) -> int:
    return t


def _columns(start: int, p: int, col: int):
    """Sequence position → column of a member whose prefix sits at `start` and own tokens at `col`."""
    return lambda t: start + t if t < p else col + t - p


def token_logps(model, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(lm_head(states))[targets] in fp32, the vocabulary projection in chunks."""
    head = model.get_output_embeddings()
    cap = getattr(model.config, "final_logit_softcapping", None)
    step = max(1, LOGIT_FLOATS // max(1, head.weight.shape[0]))
    out = []
    for i in range(0, states.shape[0], step):
        logits = head(states[i:i + step]).float()
        if cap:
            logits = torch.tanh(logits / cap) * cap
        out.append(logits.log_softmax(-1).gather(-1, targets[i:i + step, None]).squeeze(-1))
    return torch.cat(out) if out else states.new_zeros(0, dtype=torch.float32)


@torch.inference_mode()
def check_head(model) -> None:
    """Refuse a model whose logits are more than lm_head(final hidden states) (+ Gemma's soft-capping):
    the response positions are projected here, apart from the model's own forward."""
    vocab = model.get_output_embeddings().weight.shape[0]
    device = next(model.parameters()).device
    ids = (torch.arange(1, 7, device=device) % vocab)[None]
    full = model(input_ids=ids, use_cache=False).logits[0, :-1].float().log_softmax(-1)
    states = model.base_model(input_ids=ids, use_cache=False).last_hidden_state[0, :-1]
    mine = token_logps(model, states, ids[0, 1:])
    theirs = full.gather(-1, ids[0, 1:, None]).squeeze(-1)
    tol = 1e-3 if next(model.parameters()).dtype == torch.float32 else 5e-2
    if not torch.allclose(mine, theirs, atol=tol, rtol=tol):
        raise ValueError(f"{type(model).__name__}: its logits are not lm_head(hidden states); this scorer "
                         "cannot compute its log-probabilities")


def check_mode(has_ref: bool, ref_free: str | None) -> None:
    """A reference model, or a reference-free variant: exactly one."""
    if ref_free is not None and ref_free not in REF_FREE:
        raise ValueError(f"ref_free must be one of {REF_FREE} (or None with a reference model), got {ref_free!r}")
    if not has_ref and ref_free is None:
        raise ValueError("DPO implicit rewards need a reference model: pass --ref-model REF (the model the "
                         f"policy was trained from), or a reference-free variant ({', '.join(REF_FREE)})")
    if has_ref and ref_free is not None:
        raise ValueError(f"ref_free={ref_free!r} is for scoring without a reference model; drop --ref-model "
                         "or the reference-free variant")


def load_causal_lm(name_or_path: str | os.PathLike, cfg: ScorerConfig):
    """(model, tokenizer) of a policy or reference with `cfg`'s dtype, device and attention
    (`rmkit.models.load.load_causal_lm`)."""
    from rmkit.models.load import load_causal_lm as load

    return load(name_or_path, dtype=cfg.dtype, attn_implementation=cfg.attn_implementation, device=cfg.device,
                trust_remote_code=cfg.trust_remote_code)

