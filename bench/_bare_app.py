"""The baseline of bench/api_throughput.py: a bare FastAPI app with one JSON GET and one POST
that echoes a small validated body, served exactly like `job-api serve` (one uvicorn worker
process, the same logging set-up, access log off, same default loop/http implementations).

Run: python bench/_bare_app.py --port 8123
"""

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from servicekit.logging import configure_logging


class Echo(BaseModel):
    job_type: str
    base_model: str
    training_data_url: str
    output_model: str
    gpu_provider: str


def create_app() -> FastAPI:
    app = FastAPI(title="bare")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/item")
    async def item() -> dict[str, Any]:
        return {
            "data": {
                "id": "0b6a4c1e-9c7f-4f51-9d5e-3f3b8c7f2a10",
                "status": "pending",
                "progress": 0.0,
            }
        }

    @app.post("/echo", status_code=201)
    async def echo(body: Echo) -> dict[str, Any]:
        return {"data": body.model_dump()}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    configure_logging(json_logs=False, level="INFO")  # job-api's default settings
    uvicorn.run(create_app(), host=args.host, port=args.port, access_log=False, log_config=None)


if __name__ == "__main__":
    main()
