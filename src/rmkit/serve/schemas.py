"""Request and response bodies of `rmkit serve` (pydantic), as they appear in the OpenAPI docs.

    RewardsRequest.model_validate({"conversations": [[{"role": "user", "content": "2+2?"},
                                                      {"role": "assistant", "content": "4"}]]})

Shapes: rmkit's own (/v1/rewards, /v1/compare, /v1/rank), OpenRLHF's `serve_rm` (/get_reward:
fully formatted text in) and vLLM / SGLang classification (/classify, /v1/classify). Rewards are raw
logits; a reward is null only when the server's truncation policy is "skip" and the input was too long.
"""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class MessageIn(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


Conversation = list[MessageIn]
Turns = Union[str, Conversation]
"""A bare string is one message (a user turn for a prompt, an assistant turn for a response)."""


class RewardsRequest(BaseModel):
    conversations: list[Conversation] = Field(
        description="Conversations to score, each a list of {role, content} messages.")


class RewardsResponse(BaseModel):
    rewards: list[Optional[float]]


class CompareRequest(BaseModel):
    prompt: Turns = Field(description="The shared context: a user message as a string, or messages.")
    responses: list[Turns] = Field(min_length=2, max_length=2,
                                   description="Exactly two replies: an assistant message as a string, or messages.")


class CompareResponse(BaseModel):
    rewards: list[Optional[float]]
    prob_first_better: Optional[float] = Field(description="P(first ≻ second) = sigmoid((r1 − r2) / T); T = 1 unless `rmkit calibrate --save` fitted one.")


class RankRequest(BaseModel):
    prompt: Turns
    responses: list[Turns] = Field(min_length=1, description="N candidate replies (best-of-N).")


class RankResponse(BaseModel):
    rewards: list[Optional[float]]
    order: list[int] = Field(description="Indices of `responses`, best first (ties keep input order; "
                                         "unscored last).")
    best: int


class GetRewardRequest(BaseModel):
    """OpenRLHF `serve_rm`: fully formatted texts, tokenized as given (no chat template)."""
    model_config = ConfigDict(extra="allow")
    query: list[str]


class GetRewardResponse(BaseModel):
    rewards: list[Optional[float]]
    scores: list[Optional[float]]
    extra_logs: dict = Field(default_factory=dict)


class ClassifyRequest(BaseModel):
    """vLLM / SGLang `/classify`: texts tokenized as given; the reward comes back raw (no sigmoid)."""
    model_config = ConfigDict(extra="allow")
    model: Optional[str] = Field(None, description="Accepted and ignored: one server serves one model.")
    input: Union[str, list[str]]


class ClassifyData(BaseModel):
    index: int
    label: str
    probs: list[Optional[float]]
    num_classes: int = 1


class ClassifyUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int
    completion_tokens: int = 0


class ClassifyResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[ClassifyData]
    usage: ClassifyUsage


class HealthResponse(BaseModel):
    status: str
    model: str
    queue_depth: int = Field(description="Conversations waiting to be scored.")
    in_flight: int = Field(description="Conversations in the scoring call now running.")
