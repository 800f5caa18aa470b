"""A URL a user gives is data, never a door.

- `refusal(host)` / `url_refusal(url)`: why a host is refused from its text alone (address
  literals in every spelling, internal and metadata names); None for anything else.
- `address_refusal(address)`: why an address may not be reached (loopback, private, link-local,
  CGNAT, multicast, reserved, IPv6 local ranges and IPv4-embedding forms of those).
- `GuardedClient`: a fetch that connects only to vetted public addresses (checked at connect time,
  on every redirect), never downgrades to http, stops at a byte cap and a deadline.
- `GuardedTransport`: the same connect-time check as an httpx transport; `guarded_http` an httpx
  client on it that follows no redirect and reads no proxy from the environment, `GuardedHttp`
  the base of what holds one (an async context manager that closes it).

An operator's allow-list (`files.example.com`, or `.example.com` for every name below it) lifts the
refusals for those hosts.
"""

from netguard.addresses import Refusal, address_refusal
from netguard.client import GuardedClient, GuardedHttp, GuardedResponse, guarded_http
from netguard.errors import DeadlineExceeded, GuardError, RedirectRefused, TooLarge, UrlRefused
from netguard.hosts import host_allowed, normalise_host, refusal, url_refusal
from netguard.resolve import Resolver, StaticResolver, SystemResolver
from netguard.transport import GuardedBackend, GuardedTransport

__all__ = [
    "DeadlineExceeded",
    "GuardError",
    "GuardedBackend",
    "GuardedClient",
    "GuardedHttp",
    "GuardedResponse",
    "GuardedTransport",
    "RedirectRefused",
    "Refusal",
    "Resolver",
    "StaticResolver",
    "SystemResolver",
    "TooLarge",
    "UrlRefused",
    "address_refusal",
    "guarded_http",
    "host_allowed",
    "normalise_host",
    "refusal",
    "url_refusal",
]
