"""What the RL frameworks' reward clients send, turned into rmkit's input: the small pure helpers of the
OpenRLHF (/get_reward), vLLM (/classify: verl's reward loop) and SGLang (/v1/embeddings) endpoints.

    strip_padding("<pad><pad>Hi there<eos><pad>", pad="<pad>", eos="<eos>")   # → "Hi there<eos>"
    encode_plain(state, ["<bos>text"])    # add_special_tokens=false: the text's own tokens only

OpenRLHF decodes its rollouts with special tokens, so a query can carry the batch's padding (as its own
`serve_rm` strips before scoring). verl strips a leading BOS before /classify (vLLM adds it back), or sends
`add_special_tokens: false` with the BOS kept: both give the ids the chat template renders.
"""
from __future__ import annotations

import math
from typing import Sequence

from fastapi import HTTPException


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


def encode_plain(state, texts: Sequence[str]) -> list[list[int] | None]:
    """Token ids of texts with no special tokens added (vLLM's add_special_tokens=false), under the
    scorer's over-long policy for raw text (error → 422, skip → null; raw text cannot be cut) and the
    server's max_tokens."""
    state.check_count(len(texts), "text")
    scorer, out = state.scorer, []
    for i, text in enumerate(texts):
        ids: list[int] | None = list(scorer.tokenizer(text, add_special_tokens=False)["input_ids"])
        if scorer.max_length is not None and len(ids) > scorer.max_length:
            if scorer.config.truncation == "error":
                raise HTTPException(422, f"text {i} is too long: input of {len(ids)} tokens exceeds "
                                         f"max_length={scorer.max_length} (limit max_tokens={state.max_tokens})")
            ids = None
        if ids is not None and state.max_tokens is not None and len(ids) > state.max_tokens:
            raise HTTPException(422, f"text {i} has {len(ids)} tokens, over max_tokens={state.max_tokens}")
        out.append(ids)
    return out
