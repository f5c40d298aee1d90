"""Request and response bodies of `rmkit serve` (pydantic), as they appear in the OpenAPI docs.

    RewardsRequest.model_validate({"conversations": [[{"role": "user", "content": "2+2?"},
                                                      {"role": "assistant", "content": "4"}]]})

Shapes: rmkit's own (/v1/rewards, /v1/compare, /v1/rank), OpenRLHF's remote RM (/get_reward: fully
formatted text in), vLLM classification (/classify, /v1/classify: verl's reward loop) and SGLang's
reward-model embeddings (/v1/embeddings). Rewards are raw logits; a reward is null only when the
server's truncation policy is "skip" and the input was too long.
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
    """OpenRLHF's remote reward model (`--remote_rm_url`): fully formatted texts (prompt + response, decoded
    with special tokens), tokenized as given (no chat template) after its padding is stripped."""
    model_config = ConfigDict(extra="allow")
    query: list[str] = Field(description="Prompt + response texts, one per sample.")
    prompts: Optional[list] = Field(None, description="Sent by OpenRLHF; accepted, not used (the query holds the prompt).")
    labels: Optional[list] = Field(None, description="Sent by OpenRLHF; accepted, not used.")


class GetRewardResponse(BaseModel):
    rewards: list[Optional[float]]
    scores: list[Optional[float]]
    extra_logs: dict = Field(default_factory=dict)


class ClassifyRequest(BaseModel):
    """vLLM `/classify` (what verl's reward loop sends): texts tokenized as given; the reward comes back raw
    unless `use_activation` (or vLLM's older `activation`) is true."""
    model_config = ConfigDict(extra="allow")
    model: Optional[str] = Field(None, description="Accepted and ignored: one server serves one model.")
    input: Union[str, list[str]]
    use_activation: Optional[bool] = Field(None, description="true: sigmoid(reward), as vLLM's default; "
                                                             "absent or false: the raw reward.")
    activation: Optional[bool] = Field(None, description="vLLM < 0.11.2's name for use_activation.")
    add_special_tokens: Optional[bool] = Field(None, description="false: the text's own tokens only (no BOS added); "
                                                                 "absent or true: the tokenizer's special tokens, "
                                                                 "a BOS already in the text not doubled.")


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


class EmbeddingsRequest(BaseModel):
    """SGLang's reward-model shape (`/v1/embeddings`, what verl's reward loop sends to an SGLang engine)."""
    model_config = ConfigDict(extra="allow")
    model: Optional[str] = Field(None, description="Accepted and ignored: one server serves one model.")
    input: Union[str, list[str]]


class EmbeddingData(BaseModel):
    object: str = "embedding"
    index: int
    embedding: list[Optional[float]] = Field(description="[raw reward]")


class EmbeddingsResponse(BaseModel):
    object: str = "list"
    model: str
    data: list[EmbeddingData]
    usage: ClassifyUsage


class HealthResponse(BaseModel):
    status: str
    model: str
    queue_depth: int = Field(description="Conversations waiting to be scored.")
    in_flight: int = Field(description="Conversations in the scoring call now running.")
