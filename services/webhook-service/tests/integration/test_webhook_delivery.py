"""webhook-service end to end over TCP: the real broker and database, the app under uvicorn, and a
receiver on 127.0.0.1 that verifies what it gets with the webhook's secret."""

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError
from webhook_testing import (
    WEBHOOKS,
    Receiver,
    job_ended,
    model_deployed,
    publish,
    settle,
    until,
    webhook_app,
)

from contracts.enums import JobStatus
from netguard import StaticResolver
from servicekit.testing import eventually, user_headers
from webhook_service.config import Settings

pytestmark = pytest.mark.integration

ALICE = user_headers("alice")
BOB = user_headers("bob")
ALL_EVENTS = ["job.succeeded", "job.failed", "job.cancelled", "model.deployed"]


async def _create(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str] = ALICE,
    event_types: list[str] | None = None,
) -> dict[str, Any]:
    r = await client.post(
        WEBHOOKS,
        headers=headers,
        json={"url": url, "event_types": event_types or ALL_EVENTS, "description": "ci"},
    )
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def _log(client: httpx.AsyncClient, webhook_id: str, headers: dict[str, str] = ALICE) -> Any:
    r = await client.get(f"{WEBHOOKS}/{webhook_id}/deliveries", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["data"]


async def test_events_reach_the_owners_webhooks_signed_and_nobody_elses(
    webhook_settings: Callable[..., Settings], webhooks_prefix: str, hooks: Receiver
) -> None:
    async with webhook_app(webhook_settings()) as client:
        alice = await _create(client, f"{hooks.url}/alice")
        bob = await _create(client, f"{hooks.url}/bob", BOB, ["job.succeeded"])
        succeeded = job_ended("alice")
        failed = job_ended("alice", JobStatus.FAILED, error="CUDA out of memory")
        envelopes = await publish(
            webhooks_prefix,
            succeeded,
            failed,
            job_ended("alice", JobStatus.RUNNING),  # not an end: no webhook event
            job_ended("carol"),  # nobody's webhook
        )
        deployed = await publish(
            webhooks_prefix,
            model_deployed("alice"),
            model_deployed("alice", deployed=False),  # an undeploy: no webhook event
            source="registry-service",
        )
        await until(lambda: len(hooks.at("/alice")) >= 3)
        await settle()
        got = hooks.at("/alice")
        assert len(got) == 3
        assert hooks.at("/bob") == []

        verifier = Verifier(alice["secret"])
        bodies = {}
        for request in got:
            payload = verifier.verify(request.body, request.headers)
            bodies[payload["type"]] = payload
            assert request.headers["content-type"] == "application/json"
            assert request.headers["webhook-id"].startswith("msg_")
            # A tampered body, or another secret, does not verify.
            with pytest.raises(WebhookVerificationError):
                verifier.verify(
                    request.body.replace(b"alice", b"mallory", 1) + b" ", request.headers
                )
            with pytest.raises(WebhookVerificationError):
                Verifier(bob["secret"]).verify(request.body, request.headers)
        assert set(bodies) == {"job.succeeded", "job.failed", "model.deployed"}
        assert bodies["job.succeeded"]["id"] == str(envelopes[0].id)
        assert bodies["job.succeeded"]["data"] == {
            "job_id": str(succeeded.job_id),
            "status": "completed",
            "attempt": 1,
        }
        assert bodies["job.failed"]["data"]["error"] == "CUDA out of memory"
        assert bodies["model.deployed"]["id"] == str(deployed[0].id)
        assert bodies["model.deployed"]["data"]["repo_id"] == "alice/support-embed"

        # Bob's own event reaches Bob's webhook, and only his.
        await publish(webhooks_prefix, job_ended("bob"))
        await until(lambda: len(hooks.at("/bob")) == 1)
        Verifier(bob["secret"]).verify(hooks.at("/bob")[0].body, hooks.at("/bob")[0].headers)
        await settle()
        assert len(hooks.at("/alice")) == 3

        log = await _log(client, alice["id"])
        assert sorted(d["event_type"] for d in log) == sorted(bodies)
        assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in log)
        assert all(d["log"][0]["status_code"] == 200 for d in log)
        # Bob cannot read Alice's log, nor her webhook.
        r = await client.get(f"{WEBHOOKS}/{alice['id']}/deliveries", headers=BOB)
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "webhook_not_found"


async def test_500_twice_then_200_is_three_attempts_then_delivered(
    webhook_settings: Callable[..., Settings], webhooks_prefix: str, hooks: Receiver
) -> None:
    hooks.answer(500, 500)
    async with webhook_app(webhook_settings()) as client:
        webhook = await _create(client, f"{hooks.url}/flaky", event_types=["job.cancelled"])
        await publish(webhooks_prefix, job_ended("alice", JobStatus.CANCELLED))

        async def delivered() -> Any:
            log = await _log(client, webhook["id"])
            return log if log and log[0]["status"] == "delivered" else None

        [delivery] = await eventually(delivered)
        assert delivery["attempts"] == 3
        assert [a["status_code"] for a in delivery["log"]] == [500, 500, 200]
        assert [a["attempt"] for a in delivery["log"]] == [1, 2, 3]
        assert delivery["log"][0]["error"] == "HTTP 500"
        assert delivery["log"][0]["next_retry_at"] is not None
        assert delivery["log"][2]["next_retry_at"] is None
        assert delivery["delivered_at"] is not None
        assert delivery["next_retry_at"] is None
        got = hooks.at("/flaky")
        assert len(got) == 3
        # One message, three attempts: the same webhook-id, each attempt signed afresh.
        assert len({g.headers["webhook-id"] for g in got}) == 1
        assert {g.body for g in got} == {got[0].body}
        for g in got:
            Verifier(webhook["secret"]).verify(g.body, g.headers)


async def test_a_4xx_fails_for_good_and_a_redirect_is_not_followed(
    webhook_settings: Callable[..., Settings], webhooks_prefix: str, hooks: Receiver
) -> None:
    hooks.answer(410)
    hooks.answer(302, headers={"Location": f"{hooks.url}/elsewhere"})
    async with webhook_app(webhook_settings()) as client:
        webhook = await _create(client, f"{hooks.url}/gone", event_types=["job.succeeded"])
        await publish(webhooks_prefix, job_ended("alice"))
        await publish(webhooks_prefix, job_ended("alice"))

        async def settled() -> Any:
            log = await _log(client, webhook["id"])
            return log if len(log) == 2 and all(d["status"] == "failed" for d in log) else None

        log = await eventually(settled)
        await settle()
        assert sorted(d["status_code"] for d in log) == [302, 410]
        assert all(d["attempts"] == 1 for d in log)
        assert len(hooks.at("/gone")) == 2
        assert hooks.at("/elsewhere") == []


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://10.0.0.1/hook", "webhook_url_refused"),
        ("https://169.254.169.254/latest/meta-data/", "webhook_url_refused"),
        ("https://metadata.google.internal/", "webhook_url_refused"),
        ("https://[::ffff:192.168.0.1]/", "webhook_url_refused"),
        ("http://hooks.example.com/", "webhook_url_invalid"),
        ("https://user:pw@hooks.example.com/", "webhook_url_invalid"),
    ],
)
async def test_internal_and_invalid_urls_are_refused_at_registration(
    webhook_settings: Callable[..., Settings], url: str, code: str
) -> None:
    async with webhook_app(webhook_settings()) as client:
        r = await client.post(WEBHOOKS, headers=ALICE, json={"url": url, "event_types": ALL_EVENTS})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == code
        assert error["message"]
        # PATCH keeps the same rules.
        ok = await client.post(
            WEBHOOKS,
            headers=ALICE,
            json={"url": "https://hooks.example.com/x", "event_types": ["job.failed"]},
        )
        assert ok.status_code == 201
        r = await client.patch(
            f"{WEBHOOKS}/{ok.json()['data']['id']}", headers=ALICE, json={"url": url}
        )
        assert r.status_code == 422
        assert r.json()["error"]["code"] == code
        listed = await client.get(WEBHOOKS, headers=ALICE)
        assert [w["url"] for w in listed.json()["data"]] == ["https://hooks.example.com/x"]


async def test_a_name_that_resolves_inside_is_refused_when_the_delivery_connects(
    webhook_settings: Callable[..., Settings], webhooks_prefix: str
) -> None:
    # The name passes the text check at registration; at delivery it resolves to a private
    # address, and the guarded transport refuses to connect: failed for good, no retries.
    resolver = StaticResolver({"hooks.example.com": ["10.0.0.7"]})
    async with webhook_app(webhook_settings(), resolver=resolver) as client:
        webhook = await _create(client, "https://hooks.example.com/ftd", event_types=["job.failed"])
        await publish(webhooks_prefix, job_ended("alice", JobStatus.FAILED))

        async def failed() -> Any:
            log = await _log(client, webhook["id"])
            return log if log and log[0]["status"] == "failed" else None

        [delivery] = await eventually(failed)
        assert delivery["attempts"] == 1
        assert delivery["status_code"] is None
        assert "resolves to a private network address" in delivery["error"]


async def test_secrets_appear_once_never_in_reads_logs_or_the_database(
    webhook_settings: Callable[..., Settings], hooks: Receiver, webhooks_db: AsyncEngine
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with webhook_app(webhook_settings()) as client:
            created = await _create(client, f"{hooks.url}/s")
            secret = created["secret"]
            assert secret.startswith("whsec_")
            webhook_id = created["id"]
            reads = [
                await client.get(WEBHOOKS, headers=ALICE),
                await client.get(f"{WEBHOOKS}/{webhook_id}", headers=ALICE),
                await client.patch(
                    f"{WEBHOOKS}/{webhook_id}", headers=ALICE, json={"description": "renamed"}
                ),
            ]
            ping = await client.post(f"{WEBHOOKS}/{webhook_id}/test", headers=ALICE)
            reads += [ping, await client.get(f"{WEBHOOKS}/{webhook_id}/deliveries", headers=ALICE)]
            for r in reads:
                assert r.status_code == 200, r.text
                assert secret not in r.text
                assert "secret" not in json.dumps(r.json()["data"])
            rotated = await client.post(f"{WEBHOOKS}/{webhook_id}/rotate-secret", headers=ALICE)
            assert rotated.status_code == 200
            new_secret = rotated.json()["data"]["secret"]
            assert new_secret.startswith("whsec_")
            assert new_secret != secret
            again = await client.post(f"{WEBHOOKS}/{webhook_id}/test", headers=ALICE)
            assert again.json()["data"]["status"] == "delivered"
    # The ping was signed with the secret of its time; the one after rotation with the new one.
    first, second = hooks.at("/s")
    Verifier(secret).verify(first.body, first.headers)
    Verifier(new_secret).verify(second.body, second.headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(second.body, second.headers)
    assert json.loads(first.body)["type"] == "ping"
    assert logs, "the service logged nothing: the capture is not working"
    text = repr(logs)
    for value in (
        secret,
        new_secret,
        secret.removeprefix("whsec_"),
        new_secret.removeprefix("whsec_"),
    ):
        assert value not in text
    async with webhooks_db.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT * FROM webhooks.webhooks"))).all()
    assert new_secret.removeprefix("whsec_") not in repr(rows)
    assert secret.removeprefix("whsec_") not in repr(rows)


async def test_ping_patch_disable_delete_and_ownership(
    webhook_settings: Callable[..., Settings], webhooks_prefix: str, hooks: Receiver
) -> None:
    hooks.answer(503)
    async with webhook_app(webhook_settings()) as client:
        webhook = await _create(client, f"{hooks.url}/p", event_types=["job.succeeded"])
        path = f"{WEBHOOKS}/{webhook['id']}"
        # A failing ping is tried once and says why.
        r = await client.post(f"{path}/test", headers=ALICE)
        assert r.status_code == 200
        ping = r.json()["data"]
        assert ping["status"] == "failed"
        assert ping["status_code"] == 503
        assert ping["event_type"] == "ping"
        assert len(ping["log"]) == 1
        # Another user sees none of it.
        for method, url in [
            ("GET", path),
            ("PATCH", path),
            ("DELETE", path),
            ("POST", f"{path}/test"),
            ("POST", f"{path}/rotate-secret"),
        ]:
            r = await client.request(
                method, url, headers=BOB, json={} if method == "PATCH" else None
            )
            assert r.status_code == 404, (method, url, r.text)
        assert (await client.get(WEBHOOKS, headers=BOB)).json()["data"] == []
        # Disabled: no new deliveries.
        r = await client.patch(
            path,
            headers=ALICE,
            json={"enabled": False, "event_types": ["job.failed", "job.succeeded"]},
        )
        assert r.status_code == 200
        assert r.json()["data"]["enabled"] is False
        assert r.json()["data"]["event_types"] == ["job.failed", "job.succeeded"]
        await publish(webhooks_prefix, job_ended("alice"))
        await settle(1.0)
        assert len(hooks.at("/p")) == 1
        # Unknown event types and fields are refused.
        r = await client.patch(path, headers=ALICE, json={"event_types": ["job.exploded"]})
        assert r.status_code == 422
        r = await client.patch(path, headers=ALICE, json={"secret": "whsec_mine"})
        assert r.status_code == 422
        # Deleted: gone with its log.
        r = await client.delete(path, headers=ALICE)
        assert r.status_code == 200
        assert r.json()["data"] == {"id": webhook["id"], "deleted": True}
        assert (await client.get(path, headers=ALICE)).status_code == 404
        assert (await client.get(f"{path}/deliveries", headers=ALICE)).status_code == 404
        # Without a token: 401.
        assert (await client.get(WEBHOOKS)).status_code == 401
