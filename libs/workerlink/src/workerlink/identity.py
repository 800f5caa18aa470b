"""Who a worker is: its enrolled credential and the pool it belongs to."""

from dataclasses import dataclass

from contracts.credentials import WorkerToken, parse_token


@dataclass(frozen=True)
class WorkerIdentity:
    credential: WorkerToken
    # SHARED_POOL, or the private pool key (contracts.routing.pool_key of its owner).
    pool: str

    @classmethod
    def of(cls, token: str, pool: str) -> "WorkerIdentity":
        parsed = parse_token(token)
        if parsed is None:
            raise ValueError("not a worker token (ftdw_<id>_<secret>)")
        return cls(parsed, pool)

    @property
    def worker_id(self) -> str:
        return self.credential.worker_id

    @property
    def key(self) -> bytes:
        return self.credential.key

    def __repr__(self) -> str:
        return f"WorkerIdentity(worker_id={self.worker_id!r}, pool={self.pool!r})"
