"""Recover a conversation from text another model's chat template rendered (the policy's, in an RL loop).

    parse_rendered("<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nHello!<|im_end|>")
    # → [Message("user", "Hi"), Message("assistant", "Hello!")]
    family_of_tokenizer(tokenizer)     # "chatml" | "llama3" | "gemma" | "mistral", from its own template

OpenRLHF sends `/get_reward` the policy's prompt + response decoded with special tokens: text in the
*policy's* chat template. Scored as given it is right only when the reward model shares that template;
here the text is split back into messages (ChatML: Qwen, SmolLM2; Llama-3; Gemma; Mistral's [INST]) so
the server re-renders them with the reward model's own template. Text between turns may only be
special tokens (BOS, EOS, padding) and whitespace; anything else, a role the family does not know, or a
conversation that does not end with the assistant's reply raises `ParseError` with the reason. A reply
cut off before its end token (the policy hit its length limit) is taken as it stands.
No torch here.
"""
from __future__ import annotations

import re
from typing import Iterator

from rmkit.data.schema import DataError, Message

FAMILIES = ("chatml", "llama3", "gemma", "mistral")
MARKERS = {"chatml": "<|im_start|>", "llama3": "<|start_header_id|>", "gemma": "<start_of_turn>",
           "mistral": "[INST]"}
"""The token that only this family's template writes: how a family is detected in a text."""
_TURN = {
    "chatml": re.compile(r"<\|im_start\|>([\w-]+)\n(.*?)(?:<\|im_end\|>|(?=<\|im_start\|>)|\Z)", re.S),
    "llama3": re.compile(r"<\|start_header_id\|>([\w-]+)<\|end_header_id\|>\n\n(.*?)"
                         r"(?:<\|eot_id\|>|<\|eom_id\|>|(?=<\|start_header_id\|>)|\Z)", re.S),
    "gemma": re.compile(r"<start_of_turn>([\w-]+)\n(.*?)(?:<end_of_turn>|(?=<start_of_turn>)|\Z)", re.S),
}
_MISTRAL = re.compile(r"(?:\[SYSTEM_PROMPT\](.*?)\[/SYSTEM_PROMPT\])|(?:\[INST\](.*?)\[/INST\](.*?)"
                      r"(?:</s>|(?=\[INST\])|\Z))", re.S)
ROLE_NAMES = {"system": "system", "user": "user", "assistant": "assistant", "model": "assistant",
              "tool": "tool", "ipython": "tool", "developer": "system"}
_GAP = re.compile(r"(?:<[|/]?[\w.\-]{1,40}[|]?>|\s)*\Z")
"""What may stand between turns: special tokens such as <s>, </s>, <bos>, <|endoftext|>, and whitespace."""


class ParseError(DataError):
    """A text that is not a conversation in the family's template (the reason says why)."""


def detect_family(text: str) -> str | None:
    """The family whose turn marker the text holds (the earliest one when several appear)."""
    found = [(text.find(m), f) for f, m in MARKERS.items() if m in text]
    return min(found)[1] if found else None


def family_of_tokenizer(tokenizer) -> str:
    """The family of a tokenizer's chat template, from a probe conversation it renders."""
    probe = [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}]
    text = tokenizer.apply_chat_template(probe, tokenize=False)
    family = detect_family(text)
    if family is None:
        raise ValueError(f"the policy tokenizer's chat template is none of {FAMILIES} (it renders {text[:80]!r}); "
                         "name a family instead")
    return family


def parse_rendered(text: str, family: str | None = None) -> list[Message]:
    """The messages of `text`, rendered by a template of `family` (detected when None)."""
    family = family or detect_family(text)
    if family is None:
        raise ParseError(f"no chat template's turn marker ({', '.join(MARKERS.values())}) in the text")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    turns = list(_mistral_turns(text) if family == "mistral" else _turns(text, family))
    if not turns:
        raise ParseError(f"no {family} turn in the text")
    if turns[-1].role != "assistant":
        raise ParseError(f"the {family} text ends with a {turns[-1].role!r} turn, not the assistant's reply")
    return turns


def _check_gap(text: str, start: int, end: int, family: str) -> None:
    if not _GAP.match(text[start:end]):
        raise ParseError(f"text outside the {family} turns at character {start}: {text[start:min(end, start + 40)]!r}")


def _turns(text: str, family: str) -> Iterator[Message]:
    at = 0
    for m in _TURN[family].finditer(text):
        _check_gap(text, at, m.start(), family)
        role = ROLE_NAMES.get(m.group(1))
        if role is None:
            raise ParseError(f"{family} turn with role {m.group(1)!r}, which rmkit does not know")
        at = m.end()
        yield Message(role, m.group(2).strip("\n") if family == "gemma" else m.group(2))
    _check_gap(text, at, len(text), family)


def _mistral_turns(text: str) -> Iterator[Message]:
    at = 0
    for m in _MISTRAL.finditer(text):
        _check_gap(text, at, m.start(), "mistral")
        at = m.end()
        if m.group(1) is not None:
            yield Message("system", m.group(1).strip())
            continue
        yield Message("user", m.group(2).strip())
        if m.group(3).strip() or m.end() == len(text) or text[m.end() - 4:m.end()] == "</s>":
            yield Message("assistant", m.group(3).strip())
    _check_gap(text, at, len(text), "mistral")
