"""Host and address classification, from the text alone."""

import pytest

from netguard import address_refusal, host_allowed, normalise_host, refusal, url_refusal
from netguard.hosts import inet_aton

# Every internal or odd spelling a URL may use, with the kind it is refused as.
REFUSED_HOSTS = [
    ("169.254.169.254", "link_local"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("100.64.0.1", "shared"),
    ("100.100.100.200", "shared"),  # Alibaba Cloud's metadata service
    ("224.0.0.1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("198.18.0.1", "reserved"),
    ("192.0.2.10", "reserved"),
    # inet_aton's other spellings
    ("2130706433", "loopback"),
    ("0x7f000001", "loopback"),
    ("0X7F000001", "loopback"),
    ("0177.0.0.1", "loopback"),
    ("0177.0000.0000.0001", "loopback"),
    ("127.1", "loopback"),
    ("127.0.1", "loopback"),
    ("10.1", "private"),
    ("0x7f.1", "loopback"),
    ("0x7f.0.0.0x1", "loopback"),
    ("0xa9.0xfe.0xa9.0xfe", "link_local"),
    ("025177524776", "link_local"),  # 169.254.169.254 in octal
    ("2852039166", "link_local"),  # and in decimal
    ("0", "unspecified"),
    ("0x", "unspecified"),
    # trailing dots, case, encodings, compatibility characters
    ("127.0.0.1.", "loopback"),
    ("127.0.0.1..", "loopback"),
    ("%31%32%37.0.0.1", "loopback"),
    ("\uff11\uff12\uff17.0.0.1", "loopback"),  # full-width digits
    ("127\u30020\u30020\u30021", "loopback"),  # ideographic full stops
    # IPv6, bracketed or not, with zone ids
    ("[::1]", "loopback"),
    ("::1", "loopback"),
    ("[::]", "unspecified"),
    ("[fe80::1]", "link_local"),
    ("[fe80::1%25eth0]", "link_local"),
    ("[fe80::1%eth0]", "link_local"),
    ("[fc00::1]", "unique_local"),
    ("[fd00:ec2::254]", "unique_local"),  # AWS's IPv6 metadata service
    ("[fec0::1]", "site_local"),
    ("[ff02::1]", "multicast"),
    ("[::ffff:127.0.0.1]", "loopback"),
    ("[::ffff:7f00:1]", "loopback"),
    ("[::ffff:169.254.169.254]", "link_local"),
    ("[::127.0.0.1]", "loopback"),  # IPv4-compatible
    ("[::10.0.0.1]", "private"),
    ("[64:ff9b::a9fe:a9fe]", "link_local"),  # NAT64 of 169.254.169.254
    ("[64:ff9b::7f00:1]", "loopback"),
    ("[64:ff9b:1::1]", "private"),
    ("[2002:7f00:1::]", "loopback"),  # 6to4 of 127.0.0.1
    ("[2002:a00:1::1]", "private"),
    ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "reserved"),  # Teredo, client 192.0.2.45
    ("[2001:0:a00:1::1]", "private"),  # Teredo, server 10.0.0.1
    ("[2001:db8::1]", "reserved"),
    # names
    ("localhost", "local_name"),
    ("LOCALHOST.", "local_name"),
    ("api.localhost", "local_name"),
    ("localhost.localdomain", "local_name"),
    ("metadata", "metadata"),
    ("metadata.google.internal", "metadata"),
    ("metadata.google.internal.", "metadata"),
    ("Metadata.Google.Internal", "metadata"),
    ("metadata.goog", "metadata"),
    ("instance-data", "metadata"),
    ("instance-data.ec2.internal", "metadata"),
    ("ip-10-0-0-1.ec2.internal", "local_name"),
    ("printer.local", "local_name"),
    ("kubernetes.default.svc", "local_name"),
    ("db.svc.cluster.local", "local_name"),
    ("nas.home.arpa", "local_name"),
    ("1.0.0.127.in-addr.arpa", "local_name"),
    ("fileserver", "single_label"),
    # malformed
    ("", "malformed"),
    ("1.2.3.4.5", "malformed"),
    ("256.0.0.1", "malformed"),
    ("1.0x100.1.1", "malformed"),
    ("08.0.0.1", "malformed"),
    ("example.123", "malformed"),
    ("[::ffff:zz]", "malformed"),
    ("exa mple.com", "malformed"),
]

PUBLIC_HOSTS = [
    "storage.googleapis.com",
    "data.example.com",
    "files.test",
    "huggingface.co",
    "8.8.8.8",
    "1.1.1.1",
    "[2606:4700:4700::1111]",
    "[::ffff:8.8.8.8]",
    "[64:ff9b::808:808]",
    "bücher.de",
    "xn--bcher-kva.de",
    "my-bucket.s3.eu-west-1.amazonaws.com",
    "127.0.0.1.example.com",  # a name (its answer is checked when connecting)
]


@pytest.mark.parametrize(("host", "kind"), REFUSED_HOSTS)
def test_internal_and_odd_hosts_are_refused(host: str, kind: str) -> None:
    refused = refusal(host)
    assert refused is not None
    assert refused.kind == kind


@pytest.mark.parametrize(
    "host", ["zz9-secret.internal", "10.99.88.77", "[fd99:8877::1]", "zz9-secret", "0x0a636363"]
)
def test_reasons_never_repeat_the_host(host: str) -> None:
    refused = refusal(host)
    assert refused is not None
    assert "zz9" not in refused.reason
    assert not any(part in refused.reason for part in ("99", "88", "77", "0x"))


@pytest.mark.parametrize("host", PUBLIC_HOSTS)
def test_public_names_and_addresses_pass(host: str) -> None:
    assert refusal(host) is None


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("127.0.0.1", 0x7F000001),
        ("2130706433", 0x7F000001),
        ("0x7f000001", 0x7F000001),
        ("0177.0.0.1", 0x7F000001),
        ("127.1", 0x7F000001),
        ("10.1", 0x0A000001),
        ("1.2.3", 0x01020003),
        ("0x", 0),
        ("example", None),
        ("1.2.3.4.5", None),
        ("09", None),
    ],
)
def test_inet_aton_reads_every_numeric_spelling(text: str, number: int | None) -> None:
    assert inet_aton(text) == number


@pytest.mark.parametrize("text", ["256.1.1.1", "1.2.65536", "4294967296", "0x100000000"])
def test_inet_aton_refuses_numbers_out_of_range(text: str) -> None:
    with pytest.raises(ValueError, match="range"):
        inet_aton(text)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link_local"),
        ("::1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("fe80::1%eth0", "link_local"),
        ("192.0.0.8", "reserved"),
    ],
)
def test_resolved_addresses_are_judged_alike(address: str, kind: str) -> None:
    refused = address_refusal(address)
    assert refused is not None
    assert refused.kind == kind


def test_public_addresses_pass() -> None:
    assert address_refusal("93.184.215.14") is None
    assert address_refusal("2a00:1450:4001:82a::200e") is None


def test_the_allow_list_names_hosts_and_suffixes() -> None:
    allowed = ("files.example.com", ".corp.example.org", "10.0.0.5", "fileserver.")
    assert host_allowed("FILES.example.com.", allowed)
    assert host_allowed("a.corp.example.org", allowed)
    assert host_allowed("b.a.corp.example.org", allowed)
    assert not host_allowed("corp.example.org", allowed)  # a suffix names what is below it
    assert not host_allowed("evilcorp.example.org", allowed)
    assert not host_allowed("files.example.com.evil.net", allowed)
    assert host_allowed("10.0.0.5", allowed)
    assert not host_allowed("10.0.0.6", allowed)
    assert host_allowed("fileserver", allowed)
    assert not host_allowed("anything", ("", ".", " "))


def test_the_allow_list_overrides_refusals() -> None:
    allowed = ("files.internal", ".corp.lan", "10.0.0.5")
    assert refusal("files.internal", allowed_hosts=allowed) is None
    assert refusal("data.corp.lan", allowed_hosts=allowed) is None
    assert refusal("10.0.0.5", allowed_hosts=allowed) is None
    assert refusal("other.internal", allowed_hosts=allowed) is not None
    assert refusal("10.0.0.6", allowed_hosts=allowed) is not None


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://169.254.169.254/latest/meta-data/", "link_local"),
        ("https://127.0.0.1:5432/", "loopback"),
        ("https://user:pw@10.0.0.1/x", "private"),
        ("https://[::1]:8443/x", "loopback"),
        ("https://[fe80::1%25eth0]/x", "link_local"),
        ("https://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("https:///x", "malformed"),
        ("https://[::1/x", "malformed"),
    ],
)
def test_urls_are_judged_by_their_host(url: str, kind: str) -> None:
    refused = url_refusal(url)
    assert refused is not None
    assert refused.kind == kind


def test_a_public_url_passes() -> None:
    assert url_refusal("https://storage.googleapis.com/bucket/data.csv?X-Goog-Signature=1") is None


def test_normalise_host() -> None:
    assert normalise_host("[FE80::1%25eth0]") == "fe80::1%eth0"
    assert normalise_host("Example.COM..") == "example.com"
    assert normalise_host("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0ecom") == "example.com"
