import pytest
from sqlalchemy.engine import make_url

from servicekit.db import (
    asyncpg_dsn,
    bootstrap_service_database,
    drop_database,
    make_engine,
    sqlalchemy_dsn,
    with_credentials,
)

ADMIN = "postgresql://postgres:admin-pw@db.internal:6432/postgres?sslmode=require"


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:p@h:5432/d",
        "postgres://u:p@h:5432/d",
        "postgresql+asyncpg://u:p@h:5432/d",
    ],
)
def test_dsn_forms(dsn: str) -> None:
    assert asyncpg_dsn(dsn) == "postgresql://u:p@h:5432/d"
    assert sqlalchemy_dsn(dsn) == "postgresql+asyncpg://u:p@h:5432/d"


@pytest.mark.parametrize("dsn", ["mysql://u:hunter2@h/d", "postgresql+psycopg://u@h/d", "h:5432"])
def test_other_dsns_are_refused_without_leaking_the_password(dsn: str) -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL DSN") as caught:
        sqlalchemy_dsn(dsn)

    assert "hunter2" not in str(caught.value)


def test_with_credentials_keeps_host_port_and_options() -> None:
    dsn = with_credentials(ADMIN, user="job_api", password="p@ss:w/rd'%", database="ftd_jobs")

    url = make_url(dsn)
    assert (url.username, url.password) == ("job_api", "p@ss:w/rd'%")
    assert (url.host, url.port, url.database) == ("db.internal", 6432, "ftd_jobs")
    assert url.query == {"sslmode": "require"}


def test_with_credentials_keeps_the_database_by_default() -> None:
    assert make_url(with_credentials(ADMIN, user="u", password="p")).database == "postgres"


def test_make_engine_uses_asyncpg_and_names_the_application() -> None:
    engine = make_engine("postgres://u:p@h/d", application_name="job-api", pool_size=3)

    assert engine.url.drivername == "postgresql+asyncpg"
    assert engine.pool.size() == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("database", "role", "schema"),
    [
        ('ftd"; DROP DATABASE postgres; --', "r", "s"),
        ("d", "Role", "s"),
        ("d", "r", "1schema"),
        ("d", "r", "public"),
        ("d" * 64, "r", "s"),
    ],
)
async def test_bootstrap_refuses_unsafe_identifiers(database: str, role: str, schema: str) -> None:
    # Checked before any connection is attempted: this DSN points nowhere.
    with pytest.raises(ValueError, match=r"name|public"):
        await bootstrap_service_database(
            "postgresql://nobody@invalid.invalid/x",
            database=database,
            role=role,
            password="pw",
            schema=schema,
        )


async def test_drop_refuses_unsafe_identifiers() -> None:
    with pytest.raises(ValueError, match="name"):
        await drop_database("postgresql://nobody@invalid.invalid/x", "ok", roles=["bad-role"])
