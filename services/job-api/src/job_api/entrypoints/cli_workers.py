"""`job-api workers`: enroll, list and revoke workers from the command line (an operator's
shared-pool workers, and `make dev`'s CPU worker, whose token is kept in a file)."""

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

from contracts.credentials import parse_token
from job_api.adapters.broker_admin import BrokerAdminError
from job_api.config import Settings
from job_api.domain.worker import Worker
from job_api.service_layer import workers as service
from job_api.service_layer.unit_of_work import UnitOfWork
from servicekit.cli import load_settings
from servicekit.db import make_engine

workers = typer.Typer(help="Enrolled workers: enroll, list, revoke.", no_args_is_help=True)
console = Console(stderr=True)
OPERATOR = "operator-cli"


def _write_token(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")


async def _provision(settings: Settings, worker: Worker, token: str) -> str | None:
    from job_api.entrypoints.app import broker_admin_from

    admin = broker_admin_from(settings)
    if admin is None:
        return None
    return await admin.provision(worker_id=worker.id.hex, pool=worker.pool, token=token)


async def _ensure(settings: Settings, name: str, kept: str) -> tuple[Worker, str]:
    """The shared-pool worker whose token is `kept`, if it is still enrolled; else a new one. Its broker user is made (again: idempotent) when the management API is configured."""
    engine = make_engine(settings.database_url, application_name="job-api-cli", pool_size=1)
    try:
        async with engine.begin() as conn:
            uow = UnitOfWork(conn)
            parsed = parse_token(kept) if kept else None
            worker = await uow.workers.get(UUID(parsed.worker_id)) if parsed else None
            if worker is None or not worker.holds_token(kept):
                enrolled = await service.enroll(
                    uow, name=name, shared=True, user_id=OPERATOR, admin=True, now=_now()
                )
                worker, kept = enrolled.worker, enrolled.token
            worker.broker_user = await _provision(settings, worker, kept)
            await uow.workers.save(worker)
    finally:
        await engine.dispose()
    return worker, kept


def _now() -> datetime:
    return datetime.now(UTC)


@workers.command("enroll")
def enroll(
    name: Annotated[str, typer.Option(help="A label shown on the Workers page.")],
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="Keep the token in this file (mode 0600) and reuse it while it stays valid; "
            "without it the token is printed on stdout."
        ),
    ] = None,
) -> None:
    """Enroll a shared-pool worker (users enroll private ones on the Workers page)."""
    settings = load_settings(Settings)
    try:
        kept = token_file.read_text().strip() if token_file and token_file.exists() else ""
        worker, token = asyncio.run(_ensure(settings, name, kept))
    except BrokerAdminError as exc:
        console.print(f"[red]the broker refused: {exc}[/red]")
        raise typer.Exit(1) from None
    if token_file is not None:
        _write_token(token_file, token)
        console.print(f"worker {worker.name} ({worker.id.hex}); token in {token_file}")
    else:
        print(token)


async def _list(settings: Settings) -> list[Worker]:
    engine = make_engine(settings.database_url, application_name="job-api-cli", pool_size=1)
    try:
        async with engine.connect() as conn:
            return await UnitOfWork(conn).workers.listed(user_id=None, include_revoked=True)
    finally:
        await engine.dispose()


@workers.command("list")
def list_workers() -> None:
    """Every enrolled worker and what its heartbeats say."""
    settings = load_settings(Settings)
    table = Table("id", "name", "pool", "status", "serves", "last seen")
    for worker in asyncio.run(_list(settings)):
        serves = ", ".join(worker.job_types or []) + (
            f" @ {worker.provider}" if worker.provider else ""
        )
        table.add_row(
            worker.id.hex,
            worker.name,
            "shared" if worker.is_shared else f"private ({worker.owner_id})",
            worker.status(now=_now(), online=timedelta(seconds=settings.worker_online_seconds)),
            serves,
            worker.last_seen_at.isoformat(timespec="seconds") if worker.last_seen_at else "-",
        )
    Console().print(table)


async def _revoke(settings: Settings, worker_id: UUID) -> Worker:
    from job_api.entrypoints.app import broker_admin_from

    engine = make_engine(settings.database_url, application_name="job-api-cli", pool_size=1)
    try:
        async with engine.begin() as conn:
            worker = await service.revoke(
                UnitOfWork(conn), worker_id, user_id=OPERATOR, admin=True, now=_now()
            )
    finally:
        await engine.dispose()
    admin = broker_admin_from(settings)
    if admin is not None and worker.broker_user is not None:
        # If this fails, job-api's periodic reconcile deletes the broker user later.
        await admin.remove(worker_id=worker.id.hex)
    return worker


@workers.command("revoke")
def revoke(worker_id: Annotated[str, typer.Argument(help="The worker's id.")]) -> None:
    """Revoke a worker: its token stops working, its broker connection closes, its job goes back."""
    settings = load_settings(Settings)
    try:
        worker = asyncio.run(_revoke(settings, UUID(worker_id)))
    except (ValueError, service.WorkerNotFound) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"revoked {worker.name} ({worker.id.hex})")
