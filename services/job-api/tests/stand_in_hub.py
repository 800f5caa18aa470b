"""A stand-in Hugging Face Hub on a loopback port: `GET /api/whoami-v2` answers as the Hub does
(importable by job-api's tests: pytest's `pythonpath` lists this folder)."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from messaging_testing import eventually

# What the Hub says about a token: (status, body).
Answer = Callable[[str], tuple[int, dict[str, Any]]]


def write_user(name: str) -> dict[str, Any]:
    """The Hub's answer for a user's write token."""
    return {
        "type": "user",
        "name": name,
        "auth": {"type": "access_token", "accessToken": {"role": "write"}},
    }


class StandInHub:
    """Records the Authorization headers it was sent (`seen`)."""

    def __init__(self, answer: Answer) -> None:
        self.seen: list[str | None] = []
        self.app = FastAPI()

        @self.app.get("/api/whoami-v2")
        async def whoami(request: Request) -> JSONResponse:
            header = request.headers.get("authorization")
            self.seen.append(header)
            status, body = answer((header or "").removeprefix("Bearer "))
            return JSONResponse(body, status_code=status)


@contextlib.asynccontextmanager
async def stand_in_hub(answer: Answer) -> AsyncIterator[tuple[StandInHub, str]]:
    """The hub and its endpoint (for FTD_HF_ENDPOINT)."""
    hub = StandInHub(answer)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(hub.app, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:

        async def started() -> bool:
            return server.started

        await eventually(started, timeout=30)
        yield hub, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()
