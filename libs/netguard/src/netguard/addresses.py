"""Which IP addresses a fetch on a user's behalf may reach: public unicast only.

The tables are explicit rather than `ipaddress`'s `is_private`/`is_global`, whose answers changed
between CPython patch releases; `is_global` is only the last word, for what no row names.
"""

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Refusal:
    """Why a host or an address is refused: `kind` for machines, `reason` (a noun phrase such as
    "a loopback address") for people. Neither repeats the host."""

    kind: str
    reason: str

    def __str__(self) -> str:
        return self.reason


def _v4(*rows: tuple[str, str, str]) -> tuple[tuple[IPv4Network, Refusal], ...]:
    return tuple((IPv4Network(net), Refusal(kind, reason)) for net, kind, reason in rows)


def _v6(*rows: tuple[str, str, str]) -> tuple[tuple[IPv6Network, Refusal], ...]:
    return tuple((IPv6Network(net), Refusal(kind, reason)) for net, kind, reason in rows)


_RESERVED = "a reserved or special-purpose address"

IPV4_REFUSED = _v4(
    ("0.0.0.0/8", "unspecified", "an unspecified ('this host') address"),
    ("10.0.0.0/8", "private", "a private network address"),
    ("100.64.0.0/10", "shared", "a carrier-grade NAT address"),
    ("127.0.0.0/8", "loopback", "a loopback address"),
    ("169.254.0.0/16", "link_local", "a link-local address (where cloud metadata services live)"),
    ("172.16.0.0/12", "private", "a private network address"),
    ("192.0.0.0/24", "reserved", _RESERVED),
    ("192.0.2.0/24", "reserved", _RESERVED),
    ("192.88.99.0/24", "reserved", _RESERVED),
    ("192.168.0.0/16", "private", "a private network address"),
    ("198.18.0.0/15", "reserved", _RESERVED),
    ("198.51.100.0/24", "reserved", _RESERVED),
    ("203.0.113.0/24", "reserved", _RESERVED),
    ("224.0.0.0/4", "multicast", "a multicast address"),
    ("255.255.255.255/32", "broadcast", "the broadcast address"),
    ("240.0.0.0/4", "reserved", _RESERVED),
)

# Forms that carry an IPv4 address inside an IPv6 one: judged by the IPv4 address they reach.
_MAPPED = IPv6Network("::ffff:0:0/96")
_COMPATIBLE = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_6TO4 = IPv6Network("2002::/16")
_TEREDO = IPv6Network("2001::/32")

# Checked before the embedded forms: `::` and `::1` lie inside the IPv4-compatible ::/96.
IPV6_REFUSED = _v6(
    ("::/128", "unspecified", "the unspecified address"),
    ("::1/128", "loopback", "a loopback address"),
    ("64:ff9b:1::/48", "private", "a local-use NAT64 address"),
    ("100::/64", "reserved", _RESERVED),
    ("2001:db8::/32", "reserved", _RESERVED),
    ("2001:10::/28", "reserved", _RESERVED),
    ("fc00::/7", "unique_local", "an IPv6 unique local (private) address"),
    ("fe80::/10", "link_local", "an IPv6 link-local address"),
    ("fec0::/10", "site_local", "an IPv6 site-local address"),
    ("ff00::/8", "multicast", "a multicast address"),
)

_NOT_PUBLIC = Refusal("not_public", "not a public address")


def _embedded(address: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for, with the name of the form."""
    if address in _MAPPED:
        mapped = address.ipv4_mapped
        assert mapped is not None
        return "an IPv4-mapped IPv6 address", mapped
    if address in _NAT64:
        return "a NAT64 address", IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _COMPATIBLE:
        return "an IPv4-compatible IPv6 address", IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _6TO4:
        sixtofour = address.sixtofour
        assert sixtofour is not None
        return "a 6to4 address", sixtofour
    return None


def _ipv4_refusal(address: IPv4Address) -> Refusal | None:
    for network, refusal in IPV4_REFUSED:
        if address in network:
            return refusal
    return None if address.is_global else _NOT_PUBLIC


def address_refusal(address: IPAddress | str) -> Refusal | None:
    """Why `address` may not be reached on a user's behalf; None for a public unicast address.

    IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4, and both ends of
    Teredo) are refused when the IPv4 address is."""
    if isinstance(address, str):
        address = ip_address(address)
    if isinstance(address, IPv4Address):
        return _ipv4_refusal(address)
    if address.scope_id:
        return Refusal("link_local", "an IPv6 address with a zone (link-scoped)")
    for network, refusal in IPV6_REFUSED:
        if address in network:
            return refusal
    embedded = _embedded(address)
    if embedded is not None:
        form, inner = embedded
        refused = _ipv4_refusal(inner)
        return None if refused is None else Refusal(refused.kind, f"{form} of {refused.reason}")
    if address in _TEREDO:
        teredo = address.teredo
        assert teredo is not None
        for end in teredo:
            refused = _ipv4_refusal(end)
            if refused is not None:
                return Refusal(refused.kind, f"a Teredo address of {refused.reason}")
        return None
    return None if address.is_global else _NOT_PUBLIC
