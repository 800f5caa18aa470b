"""What the relay and the consumers need from a service's database: a way to open one transaction.

A service passes its `servicekit.uow.Database.write` bound to an admission pool, so the relay and
the consumers share the service's one transaction factory instead of building their own.
"""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncConnection

# Opens a transaction: commits when the block ends normally, rolls back when it raises.
Begin = Callable[[], AbstractAsyncContextManager[AsyncConnection]]
