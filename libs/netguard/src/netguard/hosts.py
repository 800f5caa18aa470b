"""Which host a URL a user gave may name, judged from its text alone (no lookup).

An address literal is judged in every spelling a resolver accepts as one: dotted, decimal
(`2130706433`), hex (`0x7f000001`), octal (`0177.0.0.1`), short (`127.1`, `10.1`) and mixed forms
(the grammar of `inet_aton`), bracketed IPv6 with or without a zone id, trailing dots, full-width
and other compatibility characters (UTS #46 mapping). A name is refused when it only means
something inside a network (below). Any other name passes here: what it resolves to is checked
when a connection is made (`netguard.transport`).
"""

import re
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import unquote, urlsplit

import idna

from netguard.addresses import IPAddress, Refusal, address_refusal

# Cloud metadata services: GCP (`metadata.google.internal`, its `metadata.goog` alias and the bare
# `metadata` a VM's search domain completes), AWS (`instance-data`, `instance-data.ec2.internal`).
# Their addresses (169.254.169.254, fd00:ec2::254, Alibaba's 100.100.100.200) are refused as
# addresses as well.
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.goog",
        "metadata.google.internal",
        "instance-data",
        "instance-data.ec2.internal",
    }
)

# Zones that only exist on a machine or inside a network: each name and every name below it.
# `localhost` (RFC 6761), `local` (mDNS, RFC 6762, and Kubernetes' `cluster.local`), `internal`
# (ICANN's private-use TLD; GCP and AWS internal DNS), `home.arpa` (RFC 8375), the reverse-lookup
# zones, the never-delegated `home`/`corp`/`lan`/`intranet`/`localdomain` of home routers and
# corporate networks, and the Kubernetes API service.
LOCAL_ZONES = (
    "localhost",
    "localdomain",
    "local",
    "internal",
    "home.arpa",
    "in-addr.arpa",
    "ip6.arpa",
    "home",
    "corp",
    "lan",
    "intranet",
    "kubernetes.default",
    "kubernetes.default.svc",
)

MALFORMED = Refusal("malformed", "not a valid host name or address")
_EMPTY = Refusal("malformed", "missing")
_METADATA = Refusal("metadata", "the name of a cloud metadata service")
_LOCAL = Refusal("local_name", "a name that only exists on a local machine or network")
_SINGLE_LABEL = Refusal(
    "single_label", "a single-label name (completed by a local network's search domains)"
)

# One part of an inet_aton address: hex (`0x` alone is 0), octal (a leading 0) or decimal.
_AT_PART = re.compile(r"0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*")
# A last label a URL parser takes for a number: such a host is an address or nothing.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_NAME = re.compile(r"[\w.-]+")


def normalise_host(host: str) -> str:
    """The host as a resolver sees it: without brackets, percent-encoding, upper case,
    compatibility characters and trailing dots. ValueError if it has characters no host has."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = unquote(text)  # `%25` before a zone id; a percent-encoded name
    try:
        text = idna.uts46_remap(text, std3_rules=False, transitional=False)
    except idna.IDNAError as exc:
        raise ValueError("not a host") from exc
    return text.lower().rstrip(".")


def inet_aton(text: str) -> int | None:
    """The IPv4 address `text` spells for `inet_aton` (and so for `getaddrinfo`), as an int;
    None when it is not such a number. ValueError when it is one but out of range."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_AT_PART.fullmatch(p) for p in parts):
        return None
    values = [
        int(p[2:] or "0", 16) if p.startswith("0x") else int(p, 8) if p[0] == "0" else int(p)
        for p in parts
    ]
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (5 - len(values))):
        raise ValueError("out of range")
    number = last
    for i, value in enumerate(head):
        number |= value << (24 - 8 * i)
    return number


def parse_address(name: str) -> IPAddress | None:
    """`name` (normalised) as an address literal; None for a name. ValueError for something that
    reads as an address but is none (`1.2.3.4.5`, `0x1.0x100.1.1`, `::ffff:zz`)."""
    if ":" in name:
        return IPv6Address(name)
    number = inet_aton(name)
    if number is not None:
        return IPv4Address(number)
    if _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
        raise ValueError("a number that is no address")
    return None


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """Whether an operator's allow-list names `host`: an entry `files.example.com` names that host,
    an entry `.example.com` every name below example.com (not example.com itself)."""
    try:
        name = normalise_host(host)
    except ValueError:
        return False
    for entry in allowed_hosts:
        try:
            rule = normalise_host(entry)
        except ValueError:
            continue
        if rule.startswith("."):
            if len(rule) > 1 and name.endswith(rule):
                return True
        elif rule and name == rule:
            return True
    return False


def _name_refusal(name: str) -> Refusal | None:
    if not _NAME.fullmatch(name):
        return MALFORMED
    if name in METADATA_NAMES:
        return _METADATA
    if any(name == zone or name.endswith(f".{zone}") for zone in LOCAL_ZONES):
        return _LOCAL
    if "." not in name:
        return _SINGLE_LABEL
    return None


def refusal(host: str, *, allowed_hosts: Iterable[str] = ()) -> Refusal | None:
    """Why `host` (as a URL names it) is refused, or None. An allow-listed host is never refused;
    a name not known to be internal is not refused here (its addresses are checked at connect
    time)."""
    if host_allowed(host, allowed_hosts):
        return None
    try:
        name = normalise_host(host)
        address = parse_address(name) if name else None
    except ValueError:
        return MALFORMED
    if not name:
        return _EMPTY
    if address is not None:
        return address_refusal(address)
    return _name_refusal(name)


def url_refusal(url: str, *, allowed_hosts: Iterable[str] = ()) -> Refusal | None:
    """`refusal` of the host `url` names (a URL without a host is refused as malformed)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return MALFORMED
    if not host:
        return _EMPTY
    return refusal(host, allowed_hosts=allowed_hosts)
