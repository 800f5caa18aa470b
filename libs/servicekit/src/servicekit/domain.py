"""The base of every service's domain errors. Pure Python: a service's `domain` package imports it
and still nothing of FastAPI, SQLAlchemy or aio-pika.

A domain error says which rule refused the request; the app builder's one handler
(`servicekit.errors`) answers it with the error envelope from what the error carries: `code`
(machine-readable, stable), `status` (the HTTP status), `str(error)` as the sentence for humans
and `details` (anything JSON-encodable, or None). A subclass sets them as class attributes, or
per instance in its `__init__`.
"""

from typing import Any


class DomainError(Exception):
    code: str = "domain_error"
    # 409: the request conflicts with the current state, the usual reason a rule says no.
    status: int = 409
    details: Any = None
