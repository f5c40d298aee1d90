"""HelpSteer2 (`nvidia/HelpSteer2`) per-response ratings → PreferencePair, one per prompt.

Rows are `{prompt, response, helpfulness, correctness, coherence, complexity, verbosity}` (0-4);
consecutive rows share a prompt (two responses each). The response with the higher helpfulness is
chosen; a tie is dropped (counted as `helpfulness_tie` in `dropped`); `meta["margin"]` keeps the
helpfulness difference. Multi-turn prompts hold earlier turns as `{user turn 1}\\n<extra_id_1>Assistant
\\n{assistant turn 1}\\n<extra_id_1>User\\n{user turn 2}`; they become real messages.

    load_pairs("nvidia/HelpSteer2", format="helpsteer2")
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable, Iterator, Mapping

from rmkit.data.schema import Conversation, DataError, Message, PreferencePair
from rmkit.data.sources.common import get_field

HUB_ID = "nvidia/HelpSteer2"
ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
_TURN = re.compile(r"\n?<extra_id_1>(User|Assistant)\n?")


def matches(columns: set[str]) -> bool:
    return {"prompt", "response", "helpfulness"} <= columns


def parse_prompt(text: str, where: dict) -> Conversation:
    parts = _TURN.split(text)
    messages = [Message("user", parts[0])]
    for tag, content in zip(parts[1::2], parts[2::2]):
        messages.append(Message("user" if tag == "User" else "assistant", content))
    if messages[-1].role != "user":
        raise DataError("multi-turn prompt must end with a User turn", **where, field="prompt")
    return messages


def _rating(row: Mapping[str, Any], where: dict) -> dict[str, float]:
    out = {}
    for name in ATTRIBUTES:
        if name in row or name == "helpfulness":
            value = get_field(row, name, where, kind=(int, float))
            out[name] = float(value)
    return out


def _groups(rows: Iterable[tuple[int, Mapping[str, Any]]]) -> Iterator[list[tuple[int, Mapping]]]:
    group: list = []
    for index, row in rows:
        if group and row.get("prompt") != group[0][1].get("prompt"):
            yield group
            group = []
        group.append((index, row))
    if group:
        yield group


def _pair(group: list[tuple[int, Mapping]], file: str | None, dropped: Counter
          ) -> PreferencePair | None:
    first, row0 = group[0]
    where = {"file": file, "row": first}
    prompt = parse_prompt(get_field(row0, "prompt", where), where)
    rated = []
    for index, row in group:
        w = {"file": file, "row": index}
        rated.append((_rating(row, w), get_field(row, "response", w, allow_empty=True)))
    if len(rated) < 2:
        dropped["single_response"] += 1
        return None
    best = max(range(len(rated)), key=lambda i: rated[i][0]["helpfulness"])
    worst = min(range(len(rated)), key=lambda i: rated[i][0]["helpfulness"])
    margin = rated[best][0]["helpfulness"] - rated[worst][0]["helpfulness"]
    if margin == 0:
        dropped["helpfulness_tie"] += 1
        return None
    meta = {"margin": margin, "rating_chosen": rated[best][0], "rating_rejected": rated[worst][0]}
    return PreferencePair(id=f"helpsteer2:{first}", source="helpsteer2", prompt=prompt,
                          chosen=[Message("assistant", rated[best][1])],
                          rejected=[Message("assistant", rated[worst][1])], meta=meta
                          ).validate(file=file, row=first)


def iter_rows(rows: Iterable[tuple[int, Mapping[str, Any]]], *, file: str | None,
              dropped: Counter | None = None) -> Iterator[PreferencePair | DataError]:
    """Pairs from consecutive rows sharing a prompt; a malformed group yields its DataError."""
    dropped = dropped if dropped is not None else Counter()
    for group in _groups(rows):
        try:
            pair = _pair(group, file, dropped)
        except DataError as e:
            yield e
            continue
        if pair is not None:
            yield pair
