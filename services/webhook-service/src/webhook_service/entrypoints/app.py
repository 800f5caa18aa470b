"""webhook-service's app: its routes, its state, its consumer and its sender (servicekit.app
builds the rest: lifespan, middleware, error mapping, health, readiness, metrics, docs).

It publishes no events, so it has no outbox and no relay: the consumer, the inbox pruning and
the sender are its background work."""

from collections.abc import Iterable
from datetime import timedelta

from fastapi import FastAPI

from netguard import Resolver
from servicekit.app import build_app
from servicekit.background import Background, inbox_pruning, supervised
from servicekit.service import Platform, Service
from servicekit.uow import Units
from webhook_service.adapters.cipher import cipher_from
from webhook_service.adapters.sender import HttpSender, signed_headers
from webhook_service.config import Settings
from webhook_service.domain.deliveries import RetrySchedule
from webhook_service.domain.webhooks import UrlPolicy
from webhook_service.entrypoints import routes_webhooks
from webhook_service.entrypoints.deps import AppState
from webhook_service.entrypoints.workers import INBOX, make_consumer, observe, queue_specs
from webhook_service.service_layer.deliveries import Sender
from webhook_service.service_layer.unit_of_work import UnitOfWork

# The routes take small JSON bodies only.
MAX_BODY_BYTES = 64 << 10
# A delivery taken by a sender is not taken again for this long beyond the attempt's timeout.
LEASE_MARGIN = timedelta(seconds=60)


def create_app(settings: Settings, *, resolver: Resolver | None = None) -> FastAPI:
    """`resolver` replaces the system's name resolution for deliveries (tests)."""
    policy = UrlPolicy(
        allowed_hosts=settings.allowed_host_list,
        allow_http_loopback=settings.allow_http_loopback,
    )

    async def start(platform: Platform) -> AppState:
        units = Units(platform.db, UnitOfWork)
        cipher = cipher_from(
            settings.secrets_key.get_secret_value() if settings.secrets_key else None,
            development_secret=(
                settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
            ),
        )
        transport = HttpSender(
            timeout=settings.delivery_timeout_seconds,
            allowed_hosts=settings.allowed_host_list,
            allow_loopback=settings.allow_http_loopback,
            resolver=resolver,
        )
        sender = Sender(
            units=units,
            transport=transport,
            sign=signed_headers,
            cipher=cipher,
            policy=policy,
            schedule=RetrySchedule(settings.retry_delays),
            lease=timedelta(seconds=settings.delivery_timeout_seconds) + LEASE_MARGIN,
            batch=settings.sender_batch,
            concurrency=settings.sender_concurrency,
            poll_seconds=settings.sender_poll_seconds,
            observe=observe,
        )
        return AppState(
            units=units,
            cipher=cipher,
            policy=policy,
            sender=sender,
            transport=transport,
            max_webhooks_per_user=settings.max_webhooks_per_user,
        )

    async def stop(state: AppState) -> None:
        await state.transport.aclose()

    def background(platform: Platform, state: AppState) -> Iterable[Background]:
        work = []
        if settings.run_sender:
            work.append(supervised("sender", state.sender.run))
        if settings.run_consumers:
            begin = state.units.begin("consumer")
            retention = timedelta(hours=settings.inbox_retention_hours)
            work += [
                supervised("consumer", make_consumer(platform, state).run),
                inbox_pruning(INBOX, begin, retention),
            ]
        return work

    service = Service(
        name="webhook-service",
        description=(
            "Webhooks: your URLs told of your jobs' ends (succeeded, failed, cancelled) and your "
            "models' deployments, signed per Standard Webhooks, retried with back-off, logged."
        ),
        routers=[routes_webhooks.router],
        start=start,
        stop=stop,
        max_body_bytes=MAX_BODY_BYTES,
        json_body_exempt=(),
        pools={"consumer": 2, "sender": 2},
        queues=queue_specs,
        background=background,
        describe=lambda state: {
            "http_loopback": settings.allow_http_loopback,
            "max_attempts": state.sender.schedule.max_attempts,
        },
    )
    return build_app(service, settings)
