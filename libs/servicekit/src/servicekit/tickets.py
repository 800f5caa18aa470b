"""Data tickets: short-lived, signed permission to download one dataset for one job attempt.

job-api mints a ticket when it grants a claim; data-service verifies it at its download route. The
worker never holds storage credentials (invariant 5), only this one URL, valid for one dataset.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt

AUDIENCE = "ftd-data-download"


@dataclass(frozen=True)
class DataTicket:
    dataset_id: UUID
    job_id: UUID
    attempt: int
    expires_at: datetime


class InvalidTicketError(Exception):
    pass


def mint_data_ticket(
    secret: str, *, dataset_id: UUID, job_id: UUID, attempt: int, ttl: timedelta
) -> tuple[str, datetime]:
    expires_at = datetime.now(UTC) + ttl
    token = jwt.encode(
        {
            "aud": AUDIENCE,
            "sub": str(dataset_id),
            "job": str(job_id),
            "att": attempt,
            "exp": expires_at,
        },
        secret,
        algorithm="HS256",
    )
    return token, expires_at


def verify_data_ticket(secret: str, token: str) -> DataTicket:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            options={"require": ["exp", "sub", "aud"]},
        )
        return DataTicket(
            dataset_id=UUID(claims["sub"]),
            job_id=UUID(claims["job"]),
            attempt=int(claims["att"]),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise InvalidTicketError("The download ticket is invalid or expired.") from exc
