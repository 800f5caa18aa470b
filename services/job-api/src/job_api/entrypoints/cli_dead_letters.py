"""`job-api dead-letters`: list, show and replay the messages in the dead-letter queue.

A message lands there when its consumer rejected it (it could not be parsed, or its handler refused
it); infrastructure errors never put one there. Listing and showing leave the queue as it is (the
messages are read and put back). Replaying puts a message back on the queue it was dead-lettered
from (RabbitMQ's `x-first-death-queue` header), with its id, so the consumer's inbox still
recognises one it had applied; it leaves the dead-letter queue once the broker confirmed the copy.
Claim secrets in worker reports are never printed.
"""

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import aio_pika
import typer
from aio_pika.abc import AbstractIncomingMessage
from rich.console import Console
from rich.table import Column, Table

from job_api.config import Settings
from messaging.broker import Broker
from servicekit.cli import load_settings

dead_letters = typer.Typer(help="List, show and replay dead-lettered messages.")
out = Console()
REDACTED = "[redacted]"
SECRET_FIELDS = frozenset({"claim_secret"})


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    event_type: str | None
    queue: str | None
    reason: str | None
    routing_key: str | None
    dead_lettered_at: datetime | None
    body: bytes

    def payload(self) -> Any:
        """The body as JSON with secrets redacted, or the raw text when it is not JSON."""
        try:
            return _redact(json.loads(self.body))
        except ValueError:
            return self.body.decode("utf-8", errors="replace")


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if k in SECRET_FIELDS else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _header(message: AbstractIncomingMessage, key: str) -> str | None:
    value = (message.headers or {}).get(key)
    if isinstance(value, bytes):
        return value.decode()
    return str(value) if value is not None else None


def _dead_letter(message: AbstractIncomingMessage) -> DeadLetter:
    deaths = (message.headers or {}).get("x-death")
    first: Any = deaths[0] if isinstance(deaths, list) and deaths else {}
    if not isinstance(first, dict):
        first = {}
    keys = first.get("routing-keys") or []
    when = first.get("time")
    return DeadLetter(
        message_id=message.message_id or "",
        event_type=message.type,
        queue=_header(message, "x-first-death-queue"),
        reason=_header(message, "x-first-death-reason"),
        routing_key=str(keys[0]) if keys else message.routing_key,
        dead_lettered_at=when if isinstance(when, datetime) else None,
        body=message.body,
    )


async def _connect(settings: Settings) -> Broker:
    broker = Broker(
        settings.amqp_url.get_secret_value(), settings.broker_names, client_name="job-api-cli"
    )
    await broker.connect()
    return broker


async def read_dead_letters(settings: Settings, *, limit: int = 1000) -> list[DeadLetter]:
    """The first `limit` dead letters, oldest first; the queue is left as it was."""
    broker = await _connect(settings)
    try:
        channel = await broker.channel()
        queue = await channel.get_queue(broker.names.dead_letter_queue, ensure=False)
        found: list[DeadLetter] = []
        while len(found) < limit:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            found.append(_dead_letter(message))
        # Unacknowledged: closing the channel puts every one back.
        await channel.close()
        return found
    finally:
        await broker.close()


async def replay_dead_letters(settings: Settings, message_ids: set[str] | None) -> list[str]:
    """Put the dead letters with these ids (all when None) back on their queues; returns the ids
    replayed. Others are left in the dead-letter queue."""
    broker = await _connect(settings)
    replayed: list[str] = []
    try:
        channel = await broker.channel()
        queue = await channel.get_queue(broker.names.dead_letter_queue, ensure=False)
        held: list[AbstractIncomingMessage] = []
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            held.append(message)
            letter = _dead_letter(message)
            if message_ids is not None and letter.message_id not in message_ids:
                continue
            if not letter.queue:
                out.print(f"[yellow]{letter.message_id}: no original queue recorded; kept[/yellow]")
                continue
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body=message.body,
                    message_id=message.message_id,
                    type=message.type,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=letter.queue,
            )
            await message.ack()
            replayed.append(letter.message_id)
        await channel.close()  # what was not replayed goes back to the dead-letter queue
        return replayed
    finally:
        await broker.close()


@dead_letters.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 100,
) -> None:
    """List dead letters, oldest first."""
    letters = asyncio.run(read_dead_letters(load_settings(Settings), limit=limit))
    table = Table("type", "from queue", "reason", "routing key", "when")
    # Ids are what `show` and `replay` take: never wrapped.
    table.columns.insert(0, Column("message id", no_wrap=True, min_width=36))
    for d in letters:
        table.add_row(
            d.message_id,
            d.event_type or "-",
            d.queue or "-",
            d.reason or "-",
            d.routing_key or "-",
            d.dead_lettered_at.isoformat() if d.dead_lettered_at else "-",
        )
    out.print(table)
    out.print(f"{len(letters)} dead letter(s)")


@dead_letters.command("show")
def show_cmd(message_id: str) -> None:
    """Show one dead letter: where it came from and its body (secrets redacted)."""
    letters = asyncio.run(read_dead_letters(load_settings(Settings)))
    found = next((d for d in letters if d.message_id == message_id), None)
    if found is None:
        out.print(f"[red]no dead letter {message_id}[/red]")
        raise typer.Exit(1)
    out.print(f"message id: {found.message_id}")
    out.print(f"type:       {found.event_type or '-'}")
    out.print(f"from queue: {found.queue or '-'} ({found.reason or 'unknown reason'})")
    out.print(f"routing key: {found.routing_key or '-'}")
    payload = found.payload()
    if isinstance(payload, str):
        out.print(payload, markup=False, highlight=False)
    else:
        out.print_json(data=payload)


@dead_letters.command("replay")
def replay_cmd(
    message_ids: Annotated[list[str] | None, typer.Argument(help="Ids to replay.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
) -> None:
    """Put dead letters back on the queue they came from (after fixing what made them fail)."""
    if not message_ids and not all_:
        raise typer.BadParameter("name message ids, or pass --all")
    wanted = None if all_ else set(message_ids or [])
    replayed = asyncio.run(replay_dead_letters(load_settings(Settings), wanted))
    for message_id in replayed:
        out.print(f"replayed {message_id}")
    if wanted is not None and (missing := wanted - set(replayed)):
        out.print(f"[red]not replayed: {', '.join(sorted(missing))}[/red]")
        raise typer.Exit(1)
