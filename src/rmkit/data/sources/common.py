"""Helpers shared by the source loaders: shared-prefix splitting and error context."""
from __future__ import annotations

from typing import Any, Mapping

from rmkit.data.schema import Conversation, DataError, to_conversation


def split_shared_prefix(chosen: Conversation, rejected: Conversation, *, where: dict
                        ) -> tuple[Conversation, Conversation, Conversation]:
    """Split two full conversations into (prompt, chosen reply, rejected reply).

    The prompt is the longest run of identical leading messages that ends with a user turn.
    """
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    while n > 0 and chosen[n - 1].role != "user":
        n -= 1
    if n == 0:
        raise DataError("chosen and rejected share no prompt ending with a user turn",
                        **where, field="chosen")
    return chosen[:n], chosen[n:], rejected[n:]


def get_field(row: Mapping[str, Any], name: str, where: dict, *, kind: type | tuple = str,
              allow_empty: bool = False) -> Any:
    if name not in row or row[name] is None:
        raise DataError("missing", **where, field=name)
    value = row[name]
    if not isinstance(value, kind):
        raise DataError(f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}",
                        **where, field=name)
    if not allow_empty and isinstance(value, str) and not value.strip():
        raise DataError("empty text", **where, field=name)
    return value


def conv_field(row: Mapping[str, Any], name: str, where: dict, *, default_role: str) -> Conversation:
    # a reply may be empty (scored like any other); a prompt may not
    value = get_field(row, name, where, kind=(str, list, dict), allow_empty=default_role == "assistant")
    return to_conversation(value, default_role=default_role, where={**where, "field": name})
