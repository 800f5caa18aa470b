"""Name resolution for the guarded transport, injectable: tests map their own names."""

import socket
from collections.abc import Mapping, Sequence
from typing import Protocol

import anyio


class Resolver(Protocol):
    async def resolve(self, host: str) -> Sequence[str]:
        """Every address `host` (a name, never an address literal) resolves to. OSError when it
        resolves to none."""
        ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo), every TCP address it answers."""

    async def resolve(self, host: str) -> Sequence[str]:
        answers = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


class StaticResolver:
    """Fixed answers: `{"files.test": ["127.0.0.1"]}`. A name it does not know does not resolve."""

    def __init__(self, answers: Mapping[str, Sequence[str]]) -> None:
        self._answers = {
            name.lower().rstrip("."): list(addresses) for name, addresses in answers.items()
        }

    async def resolve(self, host: str) -> Sequence[str]:
        addresses = self._answers.get(host.lower().rstrip("."))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return addresses
