"""Whether an exception says the infrastructure failed (the database or the broker is
unreachable, a connection dropped, a serialization conflict) rather than the message or the code:
the consumer, the RPC server and the services' background loops wait out the first and report the
second."""

import asyncpg
import sqlalchemy.exc

_INFRA_TYPES: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError, refused, reset, unreachable
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash shutdown
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.InsufficientResourcesError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # pool checkout timed out
)


def is_infrastructure_error(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says the infrastructure failed, not the message."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _INFRA_TYPES):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError):
            if current.connection_invalidated:
                return True
            orig = current.orig
            if isinstance(orig, BaseException) and is_infrastructure_error(orig):
                return True
            # The asyncpg adaptor wraps the driver's exception one level deeper.
            inner = getattr(orig, "__cause__", None)
            if isinstance(inner, BaseException) and is_infrastructure_error(inner):
                return True
        current = current.__cause__ or current.__context__
    return False
