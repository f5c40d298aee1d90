"""The canonical data model every rmkit stage speaks: Message, Conversation, PreferencePair, BestOfN.

    >>> from rmkit.data import Message, PreferencePair
    >>> p = PreferencePair(id="1", source="demo", prompt=[Message("user", "2+2?")],
    ...                    chosen=[Message("assistant", "4")], rejected=[Message("assistant", "5")])
    >>> [m.content for m in p.chosen_conversation]
    ['2+2?', '4']

No torch here: curation and decontamination import this module on machines without it.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

ROLES = ("system", "user", "assistant", "tool")
"""`tool`: a tool's result in an agentic rollout (TRL's tool loop, OpenAI's format); an assistant message may
carry `tool_calls`. The chat template renders both where it supports them; where it drops them, rendering
raises a DataError naming the message (`rmkit.models.chat`), never a silent drop."""


class DataError(ValueError):
    """A malformed input row. The message names the file, the row and the field."""

    @property
    def skip_key(self) -> str:
        """How a skipped row is counted in a report: its field and the reason, without file and row."""
        return f"{self.field or 'row'}: {self.reason}"

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 field: str | None = None):
        self.file, self.row, self.field, self.reason = file, row, field, message
        where = ", ".join(x for x in (f"file {file}" if file else "",
                                      f"row {row}" if row is not None else "",
                                      f"field '{field}'" if field else "") if x)
        super().__init__(f"{where}: {message}" if where else message)


ERRORS = ("raise", "skip")
"""The row-error policy every reader takes (`--errors`): "raise" at the first malformed row, or "skip" it,
counted. `check_errors` validates it and `on_row_error` applies it: the rule is written only here."""


def check_errors(errors: str) -> None:
    """A ValueError unless `errors` is one of ERRORS."""
    if errors not in ERRORS:
        raise ValueError(f"--errors must be raise or skip, got {errors!r}")


def on_row_error(error: DataError, errors: str, skipped: Counter | None, key: str | None = None) -> None:
    """The row-error rule: under "raise" `error` goes out; under "skip" it is counted in `skipped` (under
    `key`, by default its field and reason) and the caller goes on with the next row."""
    if errors == "raise":
        raise error
    if skipped is not None:
        skipped[key or error.skip_key] += 1


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str
    tool_calls: tuple | None = None
    """An assistant's tool calls, as OpenAI and TRL write them ({"type": "function", "function": {"name",
    "arguments"}}); kept as given and handed to the chat template."""
    name: str | None = None
    """A tool message's tool name (TRL's tool loop sets it)."""
    tool_call_id: str | None = None
    """A tool message's answer to which call (OpenAI's format)."""

    def __post_init__(self):
        if self.role not in ROLES:
            raise DataError(f"role must be one of {ROLES}, got {self.role!r}")
        if not isinstance(self.content, str):
            raise DataError(f"content must be a string, got {type(self.content).__name__}")
        if self.tool_calls is not None and self.role != "assistant":
            raise DataError(f"only an assistant message carries tool_calls, not a {self.role!r} message")

    @property
    def has_tools(self) -> bool:
        return self.role == "tool" or bool(self.tool_calls)

    def key(self) -> tuple:
        """Everything that changes how the message renders, hashable: for grouping shared contexts."""
        calls = json.dumps(list(self.tool_calls), sort_keys=True, default=str) if self.tool_calls else None
        return self.role, self.content, calls, self.name, self.tool_call_id

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [dict(c) if isinstance(c, Mapping) else c for c in self.tool_calls]
        for name in ("name", "tool_call_id"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


Conversation = list[Message]


def to_conversation(value: Any, *, default_role: str = "user", where: Mapping[str, Any] | None = None
                    ) -> Conversation:
    """Turn a string, a message dict, a list of message dicts or Messages into a Conversation.

    A bare string becomes one message of `default_role`. Errors name `where` (file/row/field).
    """
    where = dict(where or {})
    if isinstance(value, str):
        return [Message(default_role, value)]
    if isinstance(value, Message):
        return [value]
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise DataError(f"expected a string or a list of messages, got {type(value).__name__}", **where)
    out: Conversation = []
    for i, m in enumerate(value):
        if isinstance(m, Message):
            out.append(m)
            continue
        out.append(_message(m, i, where))
    return out


def _message(m: Any, i: int, where: dict) -> Message:
    if not isinstance(m, Mapping) or "role" not in m or ("content" not in m and not m.get("tool_calls")):
        raise DataError(f"message {i} must be an object with 'role' and 'content'", **where)
    if m["role"] not in ROLES:
        raise DataError(f"message {i} has role {m['role']!r}; expected one of {ROLES}", **where)
    content = m.get("content")
    if content is None and m.get("tool_calls"):  # OpenAI: an assistant turn that only calls tools
        content = ""
    if not isinstance(content, str):
        raise DataError(f"message {i} content must be a string", **where)
    calls = m.get("tool_calls")
    if calls is not None and (m["role"] != "assistant" or not isinstance(calls, Sequence) or isinstance(calls, str)
                              or not all(isinstance(c, Mapping) for c in calls)):
        raise DataError(f"message {i}: tool_calls must be a list of objects on an assistant message", **where)
    extra = {k: m[k] for k in ("name", "tool_call_id") if m.get(k) is not None}
    for k, v in extra.items():
        if not isinstance(v, str):
            raise DataError(f"message {i} {k} must be a string", **where)
    return Message(m["role"], content, tuple(dict(c) for c in calls) if calls else None, **extra)


def conversation_to_dicts(conv: Iterable[Message]) -> list[dict[str, Any]]:
    return [m.to_dict() for m in conv]


def _check_prompt(prompt: Conversation, where: dict) -> None:
    if not prompt:
        raise DataError("prompt is empty", **where, field="prompt")
    if prompt[-1].role != "user":
        raise DataError(f"prompt must end with a user turn, ends with {prompt[-1].role!r}",
                        **where, field="prompt")


def _check_response(resp: Conversation, name: str, where: dict) -> None:
    if not resp:
        raise DataError(f"{name} is empty", **where, field=name)
    if resp[0].role != "assistant":
        raise DataError(f"{name} must start with an assistant turn", **where, field=name)
    # an empty reply ("") is a reply like any other: it is scored; training drops a pair with an empty side


@dataclass(slots=True)
class PreferencePair:
    """A prompt (shared context ending with a user turn) and two replies; chosen is preferred."""

    id: str
    source: str
    prompt: Conversation
    chosen: Conversation
    rejected: Conversation
    category: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen_conversation(self) -> Conversation:
        return [*self.prompt, *self.chosen]

    @property
    def rejected_conversation(self) -> Conversation:
        return [*self.prompt, *self.rejected]

    def validate(self, *, file: str | None = None, row: int | None = None) -> "PreferencePair":
        where = {"file": file, "row": row}
        _check_prompt(self.prompt, where)
        _check_response(self.chosen, "chosen", where)
        _check_response(self.rejected, "rejected", where)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "prompt": conversation_to_dicts(self.prompt),
                "chosen": conversation_to_dicts(self.chosen),
                "rejected": conversation_to_dicts(self.rejected),
                "category": self.category, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, file: str | None = None, row: int | None = None
                  ) -> "PreferencePair":
        where = {"file": file, "row": row}
        for k in ("prompt", "chosen", "rejected"):
            if k not in d:
                raise DataError("missing", **where, field=k)
        pair = cls(id=str(d.get("id", row)), source=str(d.get("source", "")),
                   prompt=to_conversation(d["prompt"], where={**where, "field": "prompt"}),
                   chosen=to_conversation(d["chosen"], default_role="assistant",
                                          where={**where, "field": "chosen"}),
                   rejected=to_conversation(d["rejected"], default_role="assistant",
                                            where={**where, "field": "rejected"}),
                   category=d.get("category"), meta=dict(d.get("meta") or {}))
        return pair.validate(file=file, row=row)


@dataclass(slots=True)
class BestOfN:
    """A prompt with N completions; `correct[i]` marks the right ones (or `scores` rates them)."""

    id: str
    source: str
    prompt: Conversation
    completions: list[Conversation]
    correct: list[bool] | None = None
    scores: list[float] | None = None
    subset: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def validate(self, *, file: str | None = None, row: int | None = None) -> "BestOfN":
        where = {"file": file, "row": row}
        _check_prompt(self.prompt, where)
        if not self.completions:
            raise DataError("no completions", **where, field="completions")
        for c in self.completions:
            _check_response(c, "completions", where)
        for name in ("correct", "scores"):
            v = getattr(self, name)
            if v is not None and len(v) != len(self.completions):
                raise DataError(f"{len(v)} {name} for {len(self.completions)} completions",
                                **where, field=name)
        return self

    def conversations(self) -> list[Conversation]:
        return [[*self.prompt, *c] for c in self.completions]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "prompt": conversation_to_dicts(self.prompt),
                "completions": [conversation_to_dicts(c) for c in self.completions],
                "correct": self.correct, "scores": self.scores, "subset": self.subset,
                "meta": self.meta}
