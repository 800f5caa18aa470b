"""What a guarded fetch raises. Messages name the rule that stopped it; they never repeat a
response's content, and never the host or an address it resolved to."""

from netguard.addresses import Refusal


class GuardError(Exception):
    """A fetch the guard stopped."""


class UrlRefused(GuardError):
    """The URL, or a redirect's target (`hop` > 0), names or resolves to a host that may not be
    reached."""

    def __init__(self, refusal: Refusal, *, resolved: bool = False, hop: int = 0) -> None:
        self.refusal = refusal
        self.resolved = resolved
        self.hop = hop
        whose = f"the target of redirect {hop}" if hop else "the URL"
        verb = "resolves to" if resolved else "is"
        super().__init__(f"the host of {whose} {verb} {refusal.reason}")

    @property
    def kind(self) -> str:
        return self.refusal.kind

    def at_hop(self, hop: int) -> "UrlRefused":
        return UrlRefused(self.refusal, resolved=self.resolved, hop=hop)


class RedirectRefused(GuardError):
    """A redirect the guard does not follow: too many, or from https to plain http."""

    def __init__(self, reason: str, *, hop: int) -> None:
        self.reason = reason
        self.hop = hop
        super().__init__(f"redirect {hop} refused: {reason}")


class TooLarge(GuardError):
    """The response is longer than the fetch's byte cap."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        super().__init__(f"the response is larger than {max_bytes} bytes")


class DeadlineExceeded(GuardError):
    """The fetch (every redirect and the whole body) did not finish in time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the fetch did not finish within {seconds:g} seconds")
