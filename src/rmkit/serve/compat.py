"""What the RL frameworks' reward clients send, turned into token ids: OpenRLHF (/get_reward), vLLM's pooling
API (/classify, /pooling: what verl's reward loop sends) and SGLang (/v1/embeddings).

    Compat(state).query_ids("<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nYo<|im_end|>")
    Compat(state).pooling_items(body)       # text, texts, token ids or messages → [(item, encode)]

Each encoder handles one item: its ids, None for an over-long one the scorer's truncation policy skips, or
`Unscorable(kind, reason)` for one rmkit cannot score, for which the endpoint answers the operator's
fallback reward (`--on-error-reward`) or, with none set, a 422. rmkit's own endpoints use the same encoders.
OpenRLHF's query is the *policy's* rendering of prompt + response: under `policy_template` "auto" a
ChatML, Llama-3, Gemma or Mistral text is split back into messages (`rmkit.models.chat_parse`) and
re-rendered with the reward model's own template; other text is taken as the reward model's own
rendering and tokenized as given, its padding stripped.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from jinja2.exceptions import TemplateError

from rmkit.data.schema import DataError, to_conversation
from rmkit.models.chat_parse import ParseError, detect_family, parse_rendered
from rmkit.score.base import TooLongError, fit

KINDS = ("unparsed", "too_long", "unrenderable", "not_finite")
"""Why a sample got the fallback reward: the labels of /metrics' rmkit_fallback_rewards counter."""


class Unscorable(Exception):
    def __init__(self, kind: str, reason: str):
        assert kind in KINDS, kind
        self.kind, self.reason = kind, reason
        super().__init__(reason)


def strip_padding(text: str, pad: str | None, eos: str | None = None) -> str:
    """`text` without leading or trailing runs of the pad token. When pad == eos, one eos is kept at the
    end (the reply's own end token; the padding after it goes)."""
    if not pad:
        return text
    start, end = 0, len(text)
    while text.startswith(pad, start):
        start += len(pad)
    while end - len(pad) >= start and text.startswith(pad, end - len(pad)):
        end -= len(pad)
    kept = text[start:end]
    return kept + eos if pad == eos and end < len(text) else kept


def sigmoid(x: float) -> float:
    if math.isnan(x):
        return x
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class Compat:
    """Per-item encoders over the server's scorer and limits."""

    def __init__(self, state):
        self.state, self.scorer = state, state.scorer
        self.policy_template = state.config.policy_template

    # ---- limits ----------------------------------------------------------------------------------
    def fit(self, ids: list[int], conv=None) -> list[int] | None:
        """The scorer's over-long policy (None: an input it skips), then the server's max_tokens; an input
        over either limit that is not skipped → Unscorable."""
        try:
            fitted = fit(self.scorer, ids, conv)
        except TooLongError as e:
            raise Unscorable("too_long", f"{str(e).split(';')[0]} (limit max_tokens={self.state.max_tokens})")
        limit = self.state.max_tokens
        if fitted is not None and limit is not None and len(fitted) > limit:
            raise Unscorable("too_long", f"{len(fitted)} tokens, over max_tokens={limit}")
        return fitted

    def _render(self, messages: Any) -> tuple[list, list[int]]:
        """(conversation, the reward model's ids) of messages; what the template refuses → Unscorable."""
        from rmkit.models.chat import render_ids

        try:
            conv = to_conversation(messages)
            if not conv:
                raise DataError("the conversation is empty")
            return conv, render_ids(self.scorer.tokenizer, conv)
        except (DataError, TemplateError) as e:
            raise Unscorable("unrenderable", f"the reward model's chat template cannot render it: {e}")

    def conversation_ids(self, messages: Any) -> list[int] | None:
        conv, ids = self._render(messages)
        return self.fit(ids, conv)

    # ---- OpenRLHF /get_reward ----------------------------------------------------------------------
    def query_ids(self, text: str) -> list[int] | None:
        """A query in the policy's template → the reward model's ids (see the module docstring)."""
        family = None if self.policy_template == "none" else (
            detect_family(text) if self.policy_template == "auto" else self.policy_template)
        if family is None:
            tok = self.scorer.tokenizer
            return self.text_ids(strip_padding(text, tok.pad_token, tok.eos_token))
        try:
            messages = parse_rendered(text, family)
        except ParseError as e:
            raise Unscorable("unparsed", f"not a {family} conversation: {e}")
        return self.conversation_ids(messages)

    # ---- vLLM / SGLang ----------------------------------------------------------------------------
    def text_ids(self, text: str, add_special_tokens: bool | None = None, truncate: int | None = None,
                 side: str | None = None) -> list[int] | None:
        """Text tokenized as given: add_special_tokens=False gives its own tokens only (vLLM's flag);
        otherwise the tokenizer's special tokens, a BOS the text already holds not doubled."""
        from rmkit.models.chat import render_text_ids

        tok = self.scorer.tokenizer
        ids = (list(tok(text, add_special_tokens=False)["input_ids"]) if add_special_tokens is False
               else render_text_ids(tok, text))
        return self.token_ids(ids, truncate, side)

    def token_ids(self, ids: Sequence[int], truncate: int | None = None, side: str | None = None
                  ) -> list[int] | None:
        """Token ids as given, cut to `truncate` tokens first when asked (vLLM's truncate_prompt_tokens:
        -1 = the model's limit; the side is the request's or the tokenizer's truncation_side)."""
        ids = [int(x) for x in ids]
        vocab = len(self.scorer.tokenizer)
        if any(x < 0 or x >= vocab for x in ids):
            raise Unscorable("unrenderable", f"token ids outside the vocabulary (0..{vocab - 1})")
        if truncate is not None:
            keep = self.scorer.max_length if truncate == -1 else truncate
            if keep is not None and len(ids) > keep:
                side = side or getattr(self.scorer.tokenizer, "truncation_side", "right")
                ids = ids[-keep:] if side == "left" else ids[:keep]
        if not ids:
            raise Unscorable("unrenderable", "no tokens to score")
        return self.fit(ids)

    def pooling_items(self, body) -> list[tuple[Any, Any]]:
        """(the item as sent, a function giving its ids) for each input of a /classify or /pooling body."""
        trunc, side = body.truncate_prompt_tokens, body.truncation_side
        if body.messages is not None:
            return [(body.messages, lambda m=body.messages: self._messages_ids(m, trunc, side))]
        value = body.input
        if isinstance(value, str):
            value = [value]
        elif value and all(isinstance(x, int) for x in value):
            value = [value]
        return [(x, (lambda x=x: self.text_ids(x, body.add_special_tokens, trunc, side)) if isinstance(x, str)
                 else (lambda x=x: self.token_ids(x, trunc, side))) for x in value]

    def _messages_ids(self, messages, truncate, side) -> list[int] | None:
        if truncate is None:
            return self.conversation_ids(messages)
        return self.token_ids(self._render(messages)[1], truncate, side)
