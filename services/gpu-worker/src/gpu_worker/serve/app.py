"""The HTTP API: OpenAI-compatible `/v1/embeddings` and `/v1/models`, and `/v1/classify`.

Errors use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, which OpenAI
clients and LiteLLM parse.
"""

import asyncio
import base64
import hmac
import struct
import time
from collections.abc import Mapping
from typing import Any, Literal

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from gpu_worker.serve.engines import ClassifierEngine, EmbeddingEngine, Engine

log = structlog.get_logger(__name__)

MAX_INPUTS = 2048
MAX_INPUT_CHARS = 100_000


class ServeError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param


def _error(status: int, code: str, message: str, param: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


Texts = str | list[str]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    input: Texts = Field(description="A text or a list of texts (token arrays are not accepted).")
    # OpenAI's Python client asks for base64 (little-endian float32) unless told otherwise.
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    input: Texts


def _texts(value: Texts) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise ServeError(400, "empty_input", "`input` must hold at least one text.", "input")
    if len(texts) > MAX_INPUTS:
        raise ServeError(
            400, "too_many_inputs", f"At most {MAX_INPUTS} texts per request.", "input"
        )
    if any(len(t) > MAX_INPUT_CHARS for t in texts):
        raise ServeError(
            400, "input_too_long", f"A text may hold at most {MAX_INPUT_CHARS} characters.", "input"
        )
    return texts


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def create_app(engines: Mapping[str, Engine], *, api_key: str | None = None) -> FastAPI:
    app = FastAPI(title="ftd-serve", version="0.1.0", description=__doc__)
    loaded_at = int(time.time())

    def engine(name: str, expected: type[EmbeddingEngine] | type[ClassifierEngine]) -> Any:
        found = engines.get(name)
        if found is None:
            raise ServeError(404, "model_not_found", f"No model {name!r} is served here.", "model")
        if not isinstance(found, expected):
            raise ServeError(
                400,
                "wrong_model_type",
                f"{name!r} is a {found.kind} model; it cannot answer this request.",
                "model",
            )
        return found

    @app.middleware("http")
    async def check_key(request: Request, call_next: Any) -> Any:
        if api_key and request.url.path.startswith("/v1/"):
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                presented.strip().encode(), api_key.encode()
            ):
                return _error(401, "invalid_api_key", "Send the server's key as a Bearer token.")
        return await call_next(request)

    @app.exception_handler(ServeError)
    async def serve_error(_: Request, exc: ServeError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.param)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, "invalid_request", f"{where}: {first.get('msg', 'invalid')}", where)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        """The models served here."""
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": loaded_at,
                    "owned_by": "ftd-serve",
                    "ftd_type": e.kind,
                }
                for name, e in sorted(engines.items())
            ],
        }

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingRequest) -> dict[str, Any]:
        """OpenAI-compatible embeddings."""
        model: EmbeddingEngine = engine(body.model, EmbeddingEngine)
        texts = _texts(body.input)
        vectors = await asyncio.to_thread(model.embed, texts)
        tokens = await asyncio.to_thread(model.count_tokens, texts)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
                for i, v in enumerate(vectors)
            ],
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @app.post("/v1/classify")
    async def classify(body: ClassifyRequest) -> dict[str, Any]:
        """Text classification: the best label and every label's probability, per input."""
        model: ClassifierEngine = engine(body.model, ClassifierEngine)
        texts = _texts(body.input)
        results = await asyncio.to_thread(model.classify, texts)
        tokens = await asyncio.to_thread(model.count_tokens, texts)
        return {
            "object": "list",
            "data": [
                {"index": i, "label": r.label, "score": r.score, "scores": r.scores}
                for i, r in enumerate(results)
            ],
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    return app
