"""PostgreSQL plumbing shared by the services: DSN forms, the engine, and per-service databases.

Each service owns one database and, inside it, one schema owned by its own login role; the admin
DSN is used only here, at deploy or test time, to set that up. The service role cannot create
objects anywhere else, so a migration that forgets its schema fails loudly instead of landing in
`public`.
"""

import base64
import contextlib
import re
from collections.abc import Sequence
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg  # asyncpg ships no type information
import orjson
from scramp import ScramMechanism
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from servicekit.logging import redact_url

_ACCEPTED_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_MAX_IDENTIFIER_LENGTH = 63  # PostgreSQL's NAMEDATALEN - 1; longer names are silently truncated


_SCRAM = ScramMechanism("SCRAM-SHA-256")
_SCRAM_ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def scram_sha256_verifier(password: str, *, salt: bytes | None = None) -> str:
    """The `rolpassword` value PostgreSQL stores for `password`, computed here (as `psql`'s
    `\\password` does) so that `CREATE ROLE ... PASSWORD` never carries the plain text, which
    `log_statement = ddl`, pg_stat_activity or an error report could show.

    Only for ASCII passwords: PostgreSQL falls back to the raw bytes when SASLprep refuses a
    password, scramp raises; for ASCII both are the identity.
    """
    if not password.isascii():
        raise ValueError("client-side SCRAM verifiers are only computed for ASCII passwords")
    salt_, stored_key, server_key, iterations = _SCRAM.make_auth_info(
        password, iteration_count=_SCRAM_ITERATIONS, salt=salt
    )
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt_).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def _convert(dsn: str, scheme: str) -> str:
    given, sep, rest = dsn.partition("://")
    if not sep or given.lower() not in _ACCEPTED_SCHEMES:
        raise ValueError(f"not a PostgreSQL DSN: {redact_url(dsn)}")
    return f"{scheme}://{rest}"


def asyncpg_dsn(dsn: str) -> str:
    """`dsn` in the plain `postgresql://` form `asyncpg.connect` accepts."""
    return _convert(dsn, "postgresql")


def sqlalchemy_dsn(dsn: str) -> str:
    """`dsn` in the `postgresql+asyncpg://` form SQLAlchemy needs to pick the async driver."""
    return _convert(dsn, "postgresql+asyncpg")


def json_text(value: object) -> str:
    """The JSON text of `value`, as the engine serialises JSON/JSONB parameters (orjson)."""
    return orjson.dumps(value).decode()


def make_engine(
    dsn: str, *, application_name: str, pool_size: int = 10, max_overflow: int = 10
) -> AsyncEngine:
    """The service's async engine, its sessions named `application_name` in pg_stat_activity."""
    return create_async_engine(
        sqlalchemy_dsn(dsn),
        pool_size=pool_size,
        max_overflow=max_overflow,
        # No pre-ping: it costs three round trips per checkout. A connection that died with a
        # PostgreSQL restart fails one statement and is replaced by the pool.
        pool_pre_ping=False,
        # The most recently returned connection first: a light load keeps reusing one warm
        # connection, and the rest of a burst's connections stay idle (FIFO would rotate
        # through every connection the pool ever opened).
        pool_use_lifo=True,
        # JSON/JSONB parameters and results through orjson (several times faster than the
        # standard library).
        json_serializer=json_text,
        json_deserializer=orjson.loads,
        connect_args={"server_settings": {"application_name": application_name}},
    )


def with_credentials(dsn: str, *, user: str, password: str, database: str | None = None) -> str:
    """`dsn` (usually the admin one) rewritten to log in as `user`; host, port and options kept."""
    parts = urlsplit(dsn)
    _, _, hostinfo = parts.netloc.rpartition("@")
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{hostinfo}"
    path = parts.path if database is None else f"/{quote(database, safe='')}"
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def _identifier(name: str, what: str) -> str:
    """`name` double-quoted for DDL, after checking it is a plain lowercase identifier."""
    if not _IDENTIFIER.match(name) or len(name) > _MAX_IDENTIFIER_LENGTH:
        raise ValueError(
            f"{what} name {name!r} must match {_IDENTIFIER.pattern} and be at most "
            f"{_MAX_IDENTIFIER_LENGTH} characters"
        )
    return f'"{name}"'


def _literal(value: str) -> str:
    """`value` as a SQL string literal; DDL takes no bind parameters.

    The E'' form with doubled backslashes is read the same whatever
    standard_conforming_strings is set to.
    """
    if "\x00" in value:
        raise ValueError("a SQL string literal cannot contain NUL characters")
    escaped = value.replace("\\", "\\\\").replace("'", "''")
    return f"E'{escaped}'"


def _password_literal(password: str) -> str:
    # Send a verifier where we can, so the plain text never appears in statement logs.
    return _literal(scram_sha256_verifier(password) if password.isascii() else password)


async def _ensure_database(conn: asyncpg.Connection, database: str) -> None:
    exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
    if exists:
        return
    # Another replica's bootstrap may win the race between the check and the create; same outcome.
    with contextlib.suppress(asyncpg.DuplicateDatabaseError):
        await conn.execute(f"CREATE DATABASE {_identifier(database, 'database')}")


async def _ensure_role(conn: asyncpg.Connection, role: str, password: str) -> None:
    quoted = _identifier(role, "role")
    secret = _password_literal(password)
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    if not exists:
        try:
            await conn.execute(f"CREATE ROLE {quoted} LOGIN PASSWORD {secret}")
            return
        except asyncpg.DuplicateObjectError:
            pass  # created concurrently: fall through and set the password we were given
    await conn.execute(f"ALTER ROLE {quoted} WITH LOGIN PASSWORD {secret}")


async def bootstrap_service_database(
    admin_dsn: str, *, database: str, role: str, password: str, schema: str
) -> None:
    """Create (or bring up to date) a service's database, login role and schema. Idempotent.

    Afterwards `role` can connect to `database` only, owns `schema` (its search_path), and
    cannot create objects in `public`; other roles lose their default CONNECT on the database.
    Running it again resets the password and repairs the grants.
    """
    db = _identifier(database, "database")
    owner = _identifier(role, "role")
    own_schema = _identifier(schema, "schema")
    if schema == "public":
        raise ValueError("a service schema must not be 'public'")
    if not password:
        raise ValueError("the service role needs a password")

    admin = asyncpg_dsn(admin_dsn)
    conn = await asyncpg.connect(admin)
    try:
        await _ensure_database(conn, database)
        await _ensure_role(conn, role, password)
    finally:
        await conn.close()

    conn = await asyncpg.connect(_with_database(admin, database))
    try:
        async with conn.transaction():
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {own_schema} AUTHORIZATION {owner}")
            # IF NOT EXISTS keeps an existing owner; a schema created by hand is handed over.
            await conn.execute(f"ALTER SCHEMA {own_schema} OWNER TO {owner}")
            await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            await conn.execute(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
            await conn.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {owner}")
            await conn.execute(f"ALTER ROLE {owner} SET search_path = {own_schema}")
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, database: str, *, roles: Sequence[str] = ()) -> None:
    """Remove a database and the given roles, kicking out any session still connected. For tests."""
    db = _identifier(database, "database")
    quoted_roles = [_identifier(role, "role") for role in roles]
    conn = await asyncpg.connect(asyncpg_dsn(admin_dsn))
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        await conn.execute(f"DROP DATABASE IF EXISTS {db}")
        for role in quoted_roles:
            await conn.execute(f"DROP ROLE IF EXISTS {role}")
    finally:
        await conn.close()
