"""Anthropic HH-RLHF transcripts (`{"chosen": str, "rejected": str}`) → PreferencePair.

Each transcript `"\\n\\nHuman: …\\n\\nAssistant: …"` is parsed into real user / assistant messages;
the shared leading turns become the prompt and the final assistant turns become chosen / rejected.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from rmkit.data.schema import Conversation, DataError, Message, PreferencePair
from rmkit.data.sources.common import get_field, split_shared_prefix

HUB_ID = "Anthropic/hh-rlhf"
_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ ]?")
_ROLE = {"Human": "user", "Assistant": "assistant"}


def matches(columns: set[str]) -> bool:
    return columns <= {"chosen", "rejected"} | {"id", "source"} and {"chosen", "rejected"} <= columns


def parse_transcript(text: str, *, where: dict, field: str) -> Conversation:
    """Parse one transcript into messages. Text before the first speaker tag is an error."""
    parts = _TURN.split(text)
    if parts[0].strip():
        raise DataError("transcript does not start with 'Human:'", **where, field=field)
    messages = []
    for tag, content in zip(parts[1::2], parts[2::2]):
        role = _ROLE[tag]
        if messages and messages[-1].role == role:  # a speaker split over two tags: join them
            messages[-1] = Message(role, messages[-1].content + "\n\n" + content)
        else:
            messages.append(Message(role, content))
    if not messages or messages[0].role != "user":
        raise DataError("transcript has no Human turn", **where, field=field)
    return messages


def parse_row(row: Mapping[str, Any], *, file: str | None, index: int, source: str = "hh-rlhf"
              ) -> PreferencePair:
    where = {"file": file, "row": index}
    chosen = parse_transcript(get_field(row, "chosen", where), where=where, field="chosen")
    rejected = parse_transcript(get_field(row, "rejected", where), where=where, field="rejected")
    prompt, c, r = split_shared_prefix(chosen, rejected, where=where)
    return PreferencePair(id=str(row.get("id", f"{source}:{index}")), source=source, prompt=prompt,
                          chosen=c, rejected=r).validate(file=file, row=index)
