import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from scramp import ScramMechanism

from servicekit.db import (
    bootstrap_service_database,
    drop_database,
    scram_sha256_verifier,
    with_credentials,
)

pytestmark = pytest.mark.integration

ADMIN_DSN = os.environ.get("FTD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Service:
    database: str
    role: str
    password: str
    schema: str

    def dsn(self, database: str | None = None) -> str:
        return with_credentials(
            ADMIN_DSN, user=self.role, password=self.password, database=database or self.database
        )

    async def bootstrap(self, password: str | None = None) -> None:
        await bootstrap_service_database(
            ADMIN_DSN,
            database=self.database,
            role=self.role,
            password=password or self.password,
            schema=self.schema,
        )


async def _service() -> AsyncIterator[Service]:
    name = f"ftd_sk_test_{uuid.uuid4().hex[:12]}"
    service = Service(database=name, role=name, password="it's a \\ pass'word", schema="svc")
    try:
        yield service
    finally:
        await drop_database(ADMIN_DSN, service.database, roles=[service.role])


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    async for created in _service():
        yield created


@pytest.fixture
async def other_service() -> AsyncIterator[Service]:
    async for created in _service():
        yield created


async def _admin_fetchval(query: str, *args: object) -> object:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def test_service_role_creates_only_in_its_own_schema(service: Service) -> None:
    await service.bootstrap()
    await service.bootstrap()  # idempotent

    conn = await asyncpg.connect(service.dsn())
    try:
        await conn.execute("CREATE TABLE jobs (id int PRIMARY KEY)")
        schema = await conn.fetchval("SELECT schemaname FROM pg_tables WHERE tablename = 'jobs'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.sneaky (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE SCHEMA elsewhere")
    finally:
        await conn.close()

    assert schema == service.schema


async def test_other_service_roles_cannot_connect(service: Service, other_service: Service) -> None:
    await service.bootstrap()
    await other_service.bootstrap()

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await asyncpg.connect(other_service.dsn(database=service.database))


async def test_rerun_resets_the_password_without_storing_plain_text(service: Service) -> None:
    await service.bootstrap()
    first = await _stored_verifier(service.role)

    await service.bootstrap(password="a-new-password-for-the-role")
    second = await _stored_verifier(service.role)

    assert _recompute(second, b"a-new-password-for-the-role") == second
    assert first.startswith("SCRAM-SHA-256$")
    assert second.startswith("SCRAM-SHA-256$")
    assert first != second


async def _stored_verifier(role: str) -> str:
    stored = await _admin_fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
    assert isinstance(stored, str)
    return stored


def _recompute(stored: str, password: bytes) -> str:
    """Recompute a PostgreSQL-made verifier with its own salt."""
    iterations, salt = stored.split("$")[1].split(":")
    assert iterations == "4096"
    # scramp SASLprep-normalises as PostgreSQL does (the identity for these test passwords).
    salt_, stored_key, server_key, _ = ScramMechanism("SCRAM-SHA-256").make_auth_info(
        password.decode("utf-8"), iteration_count=4096, salt=base64.b64decode(salt)
    )
    b64 = base64.b64encode
    return f"SCRAM-SHA-256$4096:{b64(salt_).decode()}${b64(stored_key).decode()}:{b64(server_key).decode()}"


async def test_scram_verifier_matches_what_postgres_stores() -> None:
    # Let PostgreSQL hash a password itself, then recompute with its salt: the same string.
    password = "Plain ASCII p@ss: with 'quotes' and \\backslashes"
    role = f"ftd_sk_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(ADMIN_DSN)
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute("SET LOCAL password_encryption = 'scram-sha-256'")
        literal = password.replace("'", "''")
        await conn.execute(f"CREATE ROLE {role} PASSWORD '{literal}'")
        stored = await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
    finally:
        await transaction.rollback()
        await conn.close()

    iterations, salt = stored.split("$")[1].split(":")
    assert iterations == "4096"
    assert scram_sha256_verifier(password, salt=base64.b64decode(salt)) == stored


async def test_non_ascii_password_reaches_postgres_intact(service: Service) -> None:
    # Not pre-hashed (SASLprep is PostgreSQL's to apply), so this one travels as an E'' literal.
    password = "pässwörd with 'quote' and \\ backslash"  # already NFKC-normal

    await service.bootstrap(password=password)

    stored = await _stored_verifier(service.role)
    assert _recompute(stored, password.encode("utf-8")) == stored
