"""Request and response bodies of `rmkit serve` (pydantic), as they appear in the OpenAPI docs.

    RewardsRequest.model_validate({"conversations": [[{"role": "user", "content": "2+2?"},
                                                      {"role": "assistant", "content": "4"}]]})

Shapes: rmkit's own (/v1/rewards, /v1/compare, /v1/rank), OpenRLHF's remote RM (/get_reward: text in the
policy's chat template), vLLM's pooling API (/classify, /v1/classify, /pooling: verl's reward loop) and
SGLang's reward-model embeddings (/v1/embeddings). rmkit's own rewards are raw logits; /classify and
/pooling apply the sigmoid unless use_activation is false, as vLLM does. A reward is null only when the
server's truncation policy is "skip", the input was too long and no `on_error_reward` is set.
"""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class MessageIn(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: Optional[str] = Field(None, description="Required, but for an assistant turn that only calls tools.")
    tool_calls: Optional[list[dict]] = Field(None, description="An assistant's tool calls (OpenAI's format).")
    name: Optional[str] = Field(None, description="A tool message's tool name.")
    tool_call_id: Optional[str] = None


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
    """OpenRLHF's remote reward model (`--reward.remote_url`): prompt + response texts, decoded from the
    policy's ids with special tokens, so in the policy's chat template; read back into messages and
    re-rendered with the reward model's template (see `rmkit serve --policy-template`)."""
    model_config = ConfigDict(extra="allow")
    query: list[str] = Field(description="Prompt + response texts, one per sample.")
    prompts: Optional[list] = Field(None, description="Sent by OpenRLHF; accepted, not used (the query holds the prompt).")
    labels: Optional[list] = Field(None, description="Sent by OpenRLHF; accepted, not used.")


class GetRewardResponse(BaseModel):
    rewards: list[Optional[float]]
    scores: list[Optional[float]]
    extra_logs: dict = Field(default_factory=dict, description=(
        "Per-query 0/1 flags OpenRLHF averages into its logs: rmkit_fallback (the reward is the operator's "
        "--on-error-reward) and one flag per reason (rmkit_unparsed, rmkit_too_long, rmkit_unrenderable, "
        "rmkit_not_finite). Numbers only: OpenRLHF turns every value into a tensor."))
    errors: list[Optional[str]] = Field(default_factory=list, description="Why each fallback was given; null "
                                                                            "where the query was scored.")


Tokens = list[int]


class PoolingRequest(BaseModel):
    """vLLM's pooling API (`/classify`, `/pooling`; what verl's reward loop sends): texts, token ids or one
    conversation (`messages`, rendered with the reward model's chat template). As vLLM does, the
    activation (sigmoid) applies unless `use_activation` is false; rmkit's own endpoints stay raw."""
    model_config = ConfigDict(extra="allow")
    model: Optional[str] = Field(None, description="Accepted and ignored: one server serves one model.")
    input: Optional[Union[str, list[str], Tokens, list[Tokens]]] = None
    messages: Optional[list[dict]] = Field(None, description="One conversation instead of `input`.")
    use_activation: Optional[bool] = Field(None, description="false: the raw reward; absent or true: "
                                                             "sigmoid(reward), vLLM's default.")
    activation: Optional[bool] = Field(None, description="vLLM < 0.11.2's name for use_activation.")
    add_special_tokens: Optional[bool] = Field(None, description="false: the text's own tokens only (no BOS added); "
                                                                 "absent or true: the tokenizer's special tokens, "
                                                                 "a BOS already in the text not doubled.")
    truncate_prompt_tokens: Optional[int] = Field(None, ge=-1, description="Keep this many tokens (-1: the "
                                                                           "model's limit), as vLLM does.")
    truncation_side: Optional[Literal["left", "right"]] = Field(None, description="Which end truncation cuts "
                                                                                  "from [the tokenizer's side].")

    def model_post_init(self, __context) -> None:
        if (self.input is None) == (self.messages is None):
            raise ValueError("give exactly one of 'input' (text, texts or token ids) and 'messages'")

    @property
    def activated(self) -> bool:
        if self.use_activation is not None:
            return self.use_activation
        return self.activation if self.activation is not None else True


ClassifyRequest = PoolingRequest


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


class PoolingData(BaseModel):
    index: int
    object: str = "pooling"
    data: list[Optional[float]] = Field(description="[reward] (its sigmoid unless use_activation is false)")


class PoolingResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[PoolingData]
    usage: ClassifyUsage


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
