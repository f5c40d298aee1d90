"""Render a conversation to token ids with the tokenizer's own chat template (no double BOS).

    ids = render_ids(tokenizer, conversation)                 # what the reward model scores
    ids, prompt_len = render_ids_with_prompt(tokenizer, conv)  # + where the final reply starts

The template is applied straight to ids (as `apply_chat_template(tokenize=True)` does: no special
tokens added on top of what the template writes), and a leading duplicated BOS is removed if a
template and tokenizer still produce one.
"""
from __future__ import annotations

from typing import Sequence

from rmkit.data.schema import Conversation, DataError, conversation_to_dicts


def _apply(tokenizer, messages: list[dict], *, add_generation_prompt: bool = False) -> list[int]:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat template; give the checkpoint one "
                         "(tokenizer.chat_template) so conversations render as the model was trained")
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt,
                                        return_dict=True)
    ids = list(out["input_ids"])
    return strip_double_bos(ids, tokenizer.bos_token_id)


def strip_double_bos(ids: list[int], bos_id: int | None) -> list[int]:
    """Drop the first of two leading BOS tokens (text rendered with BOS, then tokenized with BOS)."""
    if bos_id is not None and len(ids) >= 2 and ids[0] == bos_id and ids[1] == bos_id:
        return ids[1:]
    return ids


def render_ids(tokenizer, conversation: Conversation) -> list[int]:
    messages = conversation_to_dicts(conversation)
    if any(m.has_tools for m in conversation):
        check_tools_rendered(tokenizer, conversation, messages)
    return _apply(tokenizer, messages)


def check_tools_rendered(tokenizer, conversation: Conversation, messages: list[dict]) -> None:
    """Raise a DataError naming the first tool message or tool call the chat template leaves out of the
    text (many templates know no `tool` role or ignore `tool_calls`): the reward model would score a
    conversation without it, so it is refused rather than dropped in silence."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    for i, m in enumerate(conversation):
        if m.role == "tool" and m.content and m.content not in text:
            raise DataError(f"message {i} (role 'tool') does not appear in the text the reward model's chat "
                            "template renders: this template does not support tool messages")
        for call in m.tool_calls or ():
            name = (call.get("function") or {}).get("name") if isinstance(call.get("function"), dict) else None
            name = name or call.get("name")
            if name and name not in text:
                raise DataError(f"message {i}: its tool call {name!r} does not appear in the text the reward "
                                "model's chat template renders: this template drops tool_calls")


def render_text_ids(tokenizer, text: str) -> list[int]:
    """Ids of text that is already fully formatted (OpenRLHF's /get_reward shape): tokenized as
    given, with the tokenizer's special tokens, minus a duplicated BOS."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    return strip_double_bos(list(ids), tokenizer.bos_token_id)


def prompt_length(tokenizer, conversation: Conversation, ids: Sequence[int]) -> int:
    """Number of leading ids of `ids` that belong to the context before the final assistant reply."""
    last = max((i for i, m in enumerate(conversation) if m.role != "assistant"), default=-1)
    if last < 0:
        return 0
    prefix = _apply(tokenizer, conversation_to_dicts(conversation[:last + 1]), add_generation_prompt=True)
    n = 0
    for a, b in zip(prefix, ids):
        if a != b:
            break
        n += 1
    return n


def cut_prompt(tokenizer, ids: list[int], conversation: Conversation, cut: int) -> list[int] | None:
    """`ids` with `cut` tokens removed from the left of the prompt (a leading BOS kept), or None
    when the prompt is too short to give them: the final reply itself is never cut."""
    keep = 1 if ids and ids[0] == tokenizer.bos_token_id else 0
    if prompt_length(tokenizer, conversation, ids) - keep <= cut:
        return None
    return ids[:keep] + ids[keep + cut:]


def render_ids_with_prompt(tokenizer, conversation: Conversation) -> tuple[list[int], int]:
    ids = render_ids(tokenizer, conversation)
    return ids, prompt_length(tokenizer, conversation, ids)
