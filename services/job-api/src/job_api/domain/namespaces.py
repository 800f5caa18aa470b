"""Output namespaces: whose names a user may give their models.

A job's `output_model` is `owner/name`; the owner part must be a namespace the job's user holds:
- their own user name (the token's `sub`), when it is a valid Hub name;
- the Hugging Face user of the token they linked (the Hub vouched for it);
- an organisation namespace an admin granted them.
Admins hold only theirs, like everyone. Hub names are compared without regard to case, as the
Hub compares them.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from job_api.domain.errors import DomainError

# One part of a Hub repo id: runs of letters and digits joined by single '-', '_' or '.'.
HUB_NAME_PART_PATTERN = r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$"
_HUB_NAME_PART = re.compile(HUB_NAME_PART_PATTERN)
MAX_NAMESPACE_CHARS = 96


class NamespaceSource(StrEnum):
    USER = "user"
    HUGGINGFACE = "huggingface"
    GRANT = "grant"


@dataclass(frozen=True)
class Namespace:
    name: str
    source: NamespaceSource


def is_namespace(value: str) -> bool:
    """Whether `value` can be the owner part of a Hub repo id."""
    return len(value) <= MAX_NAMESPACE_CHARS and bool(_HUB_NAME_PART.fullmatch(value))


def same_namespace(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def own_namespace(user_id: str) -> str | None:
    """The namespace a user's id gives them, if that id is a valid Hub name."""
    return user_id if is_namespace(user_id) else None


def owner_of(output_model: str) -> str:
    return output_model.split("/", 1)[0]


def held_namespaces(
    user_id: str, hf_username: str | None, granted: Iterable[str]
) -> list[Namespace]:
    """Every namespace a user holds, each once (the first source that gives it wins): their own
    name, their linked Hub user, then their grants in order."""
    held: list[Namespace] = []
    candidates = [(own_namespace(user_id), NamespaceSource.USER)]
    candidates.append((hf_username, NamespaceSource.HUGGINGFACE))
    candidates.extend((name, NamespaceSource.GRANT) for name in granted)
    for name, source in candidates:
        if name and not any(same_namespace(name, n.name) for n in held):
            held.append(Namespace(name, source))
    return held


@dataclass(frozen=True)
class HubUser:
    """Whose a Hugging Face token is, as the Hub said."""

    name: str
    # "user" or "org" (the Hub's `type`).
    kind: str
    # The token's role: "read", "write" or "fineGrained" (None when the Hub does not say).
    role: str | None


class NamespaceError(DomainError):
    """A namespace or linked-account request that cannot be honoured; `status` is its HTTP
    status (entry points map it)."""

    def __init__(self, code: str, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class UnreadableToken(Exception):
    """A stored token that the configured keys cannot decrypt (the key changed)."""


class TokenCipher(Protocol):
    """Encrypts secrets for storage (adapters.token_cipher.FernetCipher)."""

    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, ciphertext: str) -> str:
        """The plaintext; raises UnreadableToken when no configured key opens it."""
        ...
