"""Every query is scoped to its user: what one user owns (a dataset, a job, its history and live
stream, a registered model, a private worker) another cannot read, list, change or delete through
the gateway, and the owner's objects are as they were afterwards. (schemathesis's
object_level_authorization check replays reads it can link to their owner; this goes through
every route explicitly.)"""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from security_stack import SecurityStack, client
from security_workers import create_job, enroll, job_request, poll

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EXTERNAL = "https://storage.googleapis.com/ftd-examples/pairs.csv"


@pytest.fixture
async def owned(stack: SecurityStack) -> AsyncIterator[dict[str, str]]:
    """The owner's objects: a dataset, a pending job, a registered model, a private worker."""
    worker = await enroll(stack, "ownership-worker")
    async with client(stack, "owner") as http:
        rows = b"text,label\n" + b"a good day,positive\na bad day,negative\n" * 8
        r = await http.post(
            "/api/finetune/upload",
            data={"job_type": "classifier"},
            files={"file": ("reviews.csv", rows, "text/csv")},
        )
        assert r.status_code == 201, r.text
        dataset = r.json()["data"]["id"]
        pending = await create_job(http, job_request("owner/pending", EXTERNAL))
        done = await create_job(http, job_request("owner/done", EXTERNAL))
        for update in ({"status": "running"}, {"status": "completed"}):
            r = await http.patch(
                f"/api/finetune/jobs/{done['id']}", json=update, headers=worker.bearer
            )
            assert r.status_code == 200, r.text

        async def registered() -> str | None:
            models = (await http.get("/api/models")).json()["data"]
            return next((m["id"] for m in models if m["job_id"] == done["id"]), None)

        model = await poll(registered, timeout=60, what="the owner's model")
        private = await enroll(stack, "owner-private", owner="owner")
        yield {"dataset": dataset, "job": pending["id"], "model": model, "worker": private.id}


async def test_another_user_can_neither_see_nor_touch_what_a_user_owns(
    stack: SecurityStack, owned: dict[str, str]
) -> None:
    job, dataset, model, worker = owned["job"], owned["dataset"], owned["model"], owned["worker"]
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/finetune/jobs/{job}", {}),
        ("GET", f"/api/finetune/jobs/{job}/events", {}),
        ("DELETE", f"/api/finetune/jobs/{job}", {}),
        ("GET", f"/api/finetune/datasets/{dataset}", {}),
        ("GET", f"/api/finetune/datasets/{dataset}/preview", {}),
        ("DELETE", f"/api/finetune/datasets/{dataset}", {}),
        ("GET", f"/api/models/{model}", {}),
        ("POST", f"/api/models/{model}/deploy", {}),
        ("POST", f"/api/models/{model}/undeploy", {}),
        ("DELETE", f"/api/models/{model}", {}),
        ("DELETE", f"/api/models/{model}", {"params": {"delete_repo": "true"}}),
        ("GET", f"/api/workers/{worker}", {}),
        ("DELETE", f"/api/workers/{worker}", {}),
    ]
    async with client(stack, "intruder") as http:
        for method, path, extra in attempts:
            r = await http.request(method, path, **extra)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"].endswith("not_found"), (method, path, r.text)
        async with http.stream("GET", f"/api/finetune/jobs/{job}/stream") as r:
            assert r.status_code == 404
        # The owner's objects are in none of the intruder's lists.
        for path in ("/api/finetune/jobs", "/api/finetune/datasets", "/api/models", "/api/workers"):
            listed = (await http.get(path)).text
            for value in owned.values():
                assert value not in listed, (path, value)
        r = await http.get("/api/finetune/jobs", params={"user_id": "owner"})
        assert r.status_code == 403, r.text

    async with client(stack, "owner") as http:
        assert (await http.get(f"/api/finetune/jobs/{job}")).json()["data"]["status"] == "pending"
        assert (await http.get(f"/api/finetune/datasets/{dataset}")).status_code == 200
        assert (await http.get(f"/api/models/{model}")).json()["data"]["status"] != "deployed"
        own = (await http.get(f"/api/workers/{worker}")).json()["data"]
        assert own["status"] != "revoked"
        await http.delete(f"/api/finetune/jobs/{job}")
