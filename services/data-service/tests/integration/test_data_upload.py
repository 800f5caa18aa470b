"""Upload through a real uvicorn: stored, answered after commit, dry run, user isolation."""

import hashlib
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from data_service_testing import classifier_csv, files, user_headers
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.integration


def stored(storage_dir: Path) -> list[Path]:
    return [p for p in storage_dir.rglob("*") if p.is_file()]


async def test_upload_stores_validates_and_answers_the_dataset(
    data_client: httpx.AsyncClient, data_db: AsyncEngine, storage_dir: Path
) -> None:
    body = classifier_csv(20)
    r = await data_client.post("/api/finetune/upload", headers=user_headers(), **files(body))
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert data["format"] == "csv"
    assert data["job_type"] == "classifier"
    assert data["rows"] == 20
    assert data["columns"] == ["text", "label"]
    assert data["sha256"] == hashlib.sha256(body).hexdigest()
    assert data["stats"]["label_distribution"] == {"pos": 10, "neg": 10}
    assert data["training_data_url"] == f"ftd://datasets/{data['id']}"
    # Answered after commit: the row and the outbox event are there, the file is durable.
    async with data_db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM data.datasets")) == 1
        types = (await conn.execute(sa.text("SELECT event_type FROM data.outbox"))).scalars().all()
    assert "dataset.validated" in types or types == []  # the relay may have sent it already
    [path] = stored(storage_dir)
    assert path.read_bytes() == body
    assert path.name == data["id"]

    got = await data_client.get(f"/api/finetune/datasets/{data['id']}", headers=user_headers())
    assert got.status_code == 200
    assert got.json()["data"]["sha256"] == data["sha256"]


async def test_dry_run_validates_and_stores_nothing(
    data_client: httpx.AsyncClient, data_db: AsyncEngine, storage_dir: Path
) -> None:
    r = await data_client.post(
        "/api/finetune/upload?dry_run=true", headers=user_headers(), **files(classifier_csv())
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"]["dry_run"] is True
    assert r.json()["data"]["validation"]["valid"] is True
    assert stored(storage_dir) == []
    async with data_db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM data.datasets")) == 0


async def test_users_see_only_their_own_datasets(data_client: httpx.AsyncClient) -> None:
    r = await data_client.post(
        "/api/finetune/upload", headers=user_headers("alice"), **files(classifier_csv())
    )
    dataset_id = r.json()["data"]["id"]
    bob = user_headers("bob")
    for path in (
        f"/api/finetune/datasets/{dataset_id}",
        f"/api/finetune/datasets/{dataset_id}/preview",
    ):
        other = await data_client.get(path, headers=bob)
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "dataset_not_found"
    assert (
        await data_client.delete(f"/api/finetune/datasets/{dataset_id}", headers=bob)
    ).status_code == 404
    listed = await data_client.get("/api/finetune/datasets", headers=bob)
    assert listed.json()["data"] == []
    mine = await data_client.get("/api/finetune/datasets", headers=user_headers("alice"))
    assert [d["id"] for d in mine.json()["data"]] == [dataset_id]
    admin = await data_client.get(
        "/api/finetune/datasets", headers=user_headers("root", admin=True)
    )
    assert [d["id"] for d in admin.json()["data"]] == [dataset_id]


async def test_preview_shows_the_first_rows(data_client: httpx.AsyncClient) -> None:
    r = await data_client.post(
        "/api/finetune/upload", headers=user_headers(), **files(classifier_csv(30))
    )
    dataset_id = r.json()["data"]["id"]
    p = await data_client.get(
        f"/api/finetune/datasets/{dataset_id}/preview?rows=3", headers=user_headers()
    )
    assert p.status_code == 200
    body = p.json()["data"]
    assert body["rows"] == [
        {"text": "sentence number 0", "label": "neg"},
        {"text": "sentence number 1", "label": "pos"},
        {"text": "sentence number 2", "label": "neg"},
    ]
    assert body["truncated"] is True


async def test_delete_removes_row_and_file(
    data_client: httpx.AsyncClient, storage_dir: Path
) -> None:
    r = await data_client.post(
        "/api/finetune/upload", headers=user_headers(), **files(classifier_csv())
    )
    dataset_id = r.json()["data"]["id"]
    d = await data_client.delete(f"/api/finetune/datasets/{dataset_id}", headers=user_headers())
    assert d.status_code == 200, d.text
    assert stored(storage_dir) == []
    assert (
        await data_client.get(f"/api/finetune/datasets/{dataset_id}", headers=user_headers())
    ).status_code == 404


async def test_paging(data_client: httpx.AsyncClient) -> None:
    ids = []
    for _ in range(3):
        r = await data_client.post(
            "/api/finetune/upload", headers=user_headers(), **files(classifier_csv())
        )
        ids.append(r.json()["data"]["id"])
    first = (await data_client.get("/api/finetune/datasets?limit=2", headers=user_headers())).json()
    assert first["has_more"] is True
    assert len(first["data"]) == 2
    second = (
        await data_client.get(
            f"/api/finetune/datasets?limit=2&cursor={first['next_cursor']}", headers=user_headers()
        )
    ).json()
    assert second["has_more"] is False
    assert [d["id"] for d in first["data"] + second["data"]] == list(reversed(ids))


async def test_jsonl_upload_and_job_type_field(data_client: httpx.AsyncClient) -> None:
    lines = b"".join(b'{"instruction": "say %d", "output": "%d"}\n' % (i, i) for i in range(12))
    r = await data_client.post(
        "/api/finetune/upload",
        headers=user_headers(),
        **files(lines, "train.jsonl", job_type="llm_lora"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["data"]["format"] == "jsonl"
    assert r.json()["data"]["job_types"] == ["llm_lora"]
    wrong = await data_client.post(
        "/api/finetune/upload",
        headers=user_headers(),
        **files(lines, "train.jsonl", job_type="classifier"),
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["details"]["errors"][0]["code"] == "job_type_mismatch"


async def test_upload_needs_a_user_token(data_client: httpx.AsyncClient) -> None:
    r = await data_client.post("/api/finetune/upload", **files(classifier_csv()))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
