"""Deployed models as this server sees them: the registry's events projected onto one row per
model version, and who may call what.

A model is called by its name `owner/name` (the registry's repo_id). Only the user the registry
says owns it may call it: another user's model, deployed or not, is answered as not deployed
(its existence is not theirs to learn). A name is one model at a time (the registry deploys one
version of a name); should two versions of a name be deployed at once for a moment (an event
still on its way), the one deployed last wins.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from contracts.enums import JobType
from model_server.domain.errors import ModelNotDeployed, WrongModelKind


class Kind(StrEnum):
    EMBEDDING = "embedding"
    CLASSIFIER = "classifier"
    LORA = "lora"


KIND_OF_JOB = {
    JobType.EMBEDDING: Kind.EMBEDDING,
    JobType.CLASSIFIER: Kind.CLASSIFIER,
    JobType.LLM_LORA: Kind.LORA,
}


@dataclass(frozen=True)
class Deployment:
    model_id: UUID
    user_id: str
    name: str
    revision: str | None
    job_type: JobType
    deployed: bool
    changed_at: datetime
    deleted: bool = False

    @property
    def kind(self) -> Kind:
        return KIND_OF_JOB[self.job_type]

    @property
    def live(self) -> bool:
        return self.deployed and not self.deleted

    def supersedes(self, other: "Deployment | None") -> bool:
        """Whether this (an event's view) replaces `other` (the stored view of the same model):
        events can arrive out of order, the later one wins; a deletion is final."""
        if other is None:
            return True
        if other.deleted:
            return False
        return self.deleted or self.changed_at >= other.changed_at


def serving_set(rows: Iterable[Deployment]) -> dict[tuple[str, str], Deployment]:
    """(owner, name) -> the version to serve, from every live row."""
    chosen: dict[tuple[str, str], Deployment] = {}
    for row in rows:
        if not row.live:
            continue
        key = (row.user_id, row.name)
        current = chosen.get(key)
        if current is None or row.changed_at > current.changed_at:
            chosen[key] = row
    return chosen


def callable_model(
    serving: dict[tuple[str, str], Deployment], *, caller: str, name: str, kind: Kind
) -> Deployment:
    """The caller's deployed model `name` for an endpoint serving `kind` models."""
    found = serving.get((caller, name))
    if found is None:
        raise ModelNotDeployed(name)
    if found.kind is not kind:
        raise WrongModelKind(name, found.kind.value, kind.value)
    return found
