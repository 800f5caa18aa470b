"""Request bodies of the OpenAI-style routes (only the fields served; others are ignored, as
OpenAI clients send more than any one server reads)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_INPUTS = 2048
MAX_INPUT_CHARS = 100_000
MAX_MESSAGES = 256

Texts = str | list[str]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=300, description="`owner/name`")


class EmbeddingRequest(_Request):
    input: Texts = Field(description="A text or a list of texts (token arrays are not accepted).")
    # OpenAI's Python client asks for base64 (little-endian float32) unless told otherwise.
    encoding_format: Literal["float", "base64"] = "float"


class ClassifyRequest(_Request):
    input: Texts


class _Generation(_Request):
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: Literal[1] = 1
    stream: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str = Field(max_length=MAX_INPUT_CHARS)


class ChatRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)


class CompletionRequest(_Generation):
    prompt: str = Field(max_length=MAX_INPUT_CHARS)


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="What the key is for.")


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
