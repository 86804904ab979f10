"""The egress policy as pure functions: host normalisation, the address classifier, the
three policies with the allow-list, the settings, and the worker's vetting resolver
with an injected lookup. Nothing here connects anywhere or looks anything up."""

from __future__ import annotations

import re
import socket
import string
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import aiohappyeyeballs
import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unlimcall_sandbox.server.egress import (
    Egress,
    EgressBlocked,
    classify,
    is_loopback,
    normalise_host,
)
from unlimcall_sandbox.server.settings import Settings
from unlimcall_sandbox.workers.resolver import (
    VettingResolver,
    precheck,
    vetted_addresses,
    webhook_session,
)

LINK_LOCAL = "link-local (169.254.0.0/16, cloud metadata)"
PRIVATE_10 = "private (10.0.0.0/8)"
RESERVED = "reserved (240.0.0.0/4)"
UNSPECIFIED = str(IPv4Address(0))  # 0.0.0.0, spelled so no linter takes it for a bind


# host as written -> the address (or name) it means
NORMALISED = [
    # numeric IPv4 forms that getaddrinfo reads as 127.0.0.1
    ("2130706433", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("0X7F.0.0.1", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),
    ("127.0.0.1..", "127.0.0.1"),
    # the same tricks on blocked addresses
    ("167772161", "10.0.0.1"),
    ("012.1", "10.0.0.1"),
    ("0xa.0.0.1", "10.0.0.1"),
    ("2852039166", "169.254.169.254"),
    ("0xA9FEA9FE", "169.254.169.254"),
    ("0251.0376.0251.0376", "169.254.169.254"),
    ("0", UNSPECIFIED),
    ("4026531841", "240.0.0.1"),
    ("4294967295", "255.255.255.255"),
    # IPv6: brackets, zone ids (raw and as a URL writes them), embedded IPv4
    ("[::1]", "::1"),
    ("[fd00::1]", "fd00::1"),
    ("fe80::1%eth0", "fe80::1"),
    ("[fe80::1%25eth0]", "fe80::1"),
    ("[::ffff:10.0.0.1]", "::ffff:10.0.0.1"),
    ("::ffff:a00:1", "::ffff:10.0.0.1"),
    ("::10.0.0.1", "::10.0.0.1"),
    ("[::]", "::"),
    # names: case, trailing dots, IDNs
    ("LOCALHOST.", "localhost"),
    ("Example.COM.", "example.com"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
    ("\uff11\uff10\uff0e\uff10\uff0e\uff10\uff0e\uff11", "10.0.0.1"),  # fullwidth digits and dots
    ("0x", "0x"),  # not a number to inet_aton: a name
    ("08", "08"),  # 8 is no octal digit: a name
    ("1.2.3.4.5", "1.2.3.4.5"),
    ("my_service.internal", "my_service.internal"),
]


@pytest.mark.parametrize(("host", "means"), NORMALISED)
def test_host_normalisation(host: str, means: str) -> None:
    got = normalise_host(host)
    if isinstance(got, str):
        assert got == means
    else:
        assert got == ip_address(means)


@pytest.mark.parametrize("host", ["exa mple.com", "a..b", "-bad.example", "[fe80::zz]", "a/b", ""])
def test_hosts_that_are_neither_address_nor_name(host: str) -> None:
    with pytest.raises(ValueError, match="is not a valid"):
        normalise_host(host)


@given(st.text(alphabet=string.hexdigits + "xX.", min_size=1, max_size=16))
def test_numeric_ipv4_forms_are_read_as_the_system_reads_them(text: str) -> None:
    """Whatever inet_aton (what getaddrinfo uses for numeric hosts) takes for an address,
    normalisation takes for the same address; what it refuses is not an address here."""
    try:
        system: IPv4Address | None = IPv4Address(socket.inet_aton(text))
    except OSError:
        system = None
    try:
        ours = normalise_host(text)
    except ValueError:
        ours = None
    if system is not None:
        assert ours == system
    elif not text.endswith("."):  # a trailing dot is stripped before reading the number
        assert not isinstance(ours, IPv4Address)


# address (any form) -> why `public` refuses it (None: allowed)
CLASSIFIED: list[tuple[str, str | None]] = [
    # allowed: loopback and public unicast
    ("127.0.0.1", None),
    ("127.255.255.254", None),
    ("2130706433", None),
    ("::1", None),
    ("::ffff:127.0.0.1", None),
    ("8.8.8.8", None),
    ("11.0.0.1", None),
    ("100.63.255.255", None),
    ("100.128.0.1", None),
    ("172.15.255.255", None),
    ("172.32.0.1", None),
    ("169.253.255.255", None),
    ("223.255.255.255", None),
    ("2606:4700:4700::1111", None),
    ("::ffff:8.8.8.8", None),
    ("64:ff9b::8.8.8.8", None),
    ("2002:808:808::1", None),
    # refused
    (UNSPECIFIED, "unspecified ('this network', 0.0.0.0/8)"),
    ("0.1.2.3", "unspecified ('this network', 0.0.0.0/8)"),
    ("10.0.0.1", PRIVATE_10),
    ("10.255.255.255", PRIVATE_10),
    ("172.16.0.1", "private (172.16.0.0/12)"),
    ("172.31.255.255", "private (172.16.0.0/12)"),
    ("192.168.1.1", "private (192.168.0.0/16)"),
    ("100.64.0.1", "carrier-grade NAT (100.64.0.0/10)"),
    ("100.127.255.255", "carrier-grade NAT (100.64.0.0/10)"),
    ("169.254.169.254", LINK_LOCAL),
    ("2852039166", LINK_LOCAL),
    ("192.0.0.8", "IETF protocol assignments (192.0.0.0/24)"),
    ("192.0.2.1", "documentation (192.0.2.0/24)"),
    ("198.51.100.1", "documentation (198.51.100.0/24)"),
    ("203.0.113.1", "documentation (203.0.113.0/24)"),
    ("198.18.0.1", "benchmarking (198.18.0.0/15)"),
    ("198.19.255.255", "benchmarking (198.18.0.0/15)"),
    ("192.88.99.1", "6to4 relay anycast (192.88.99.0/24)"),
    ("224.0.0.1", "multicast (224.0.0.0/4)"),
    ("239.255.255.250", "multicast (224.0.0.0/4)"),
    ("240.0.0.1", RESERVED),
    ("255.255.255.254", RESERVED),
    ("255.255.255.255", "broadcast (255.255.255.255)"),
    ("::", "unspecified (::)"),
    ("fe80::1", "link-local (fe80::/10)"),
    ("fe80::1%eth0", "link-local (fe80::/10)"),
    ("febf::1", "link-local (fe80::/10)"),
    ("fc00::1", "unique-local (fc00::/7)"),
    ("fd00::1", "unique-local (fc00::/7)"),
    ("fec0::1", "site-local (fec0::/10)"),
    ("ff02::1", "multicast (ff00::/8)"),
    ("2001:db8::1", "documentation (2001:db8::/32)"),
    ("3fff::1", "documentation (3fff::/20)"),
    ("2001::1", "IETF protocol assignments (2001::/23)"),
    ("100::1", "discard-only (100::/64)"),
    ("64:ff9b:1::1", "NAT64 local-use (64:ff9b:1::/48)"),
    ("4000::1", "reserved (outside global unicast 2000::/3)"),
    ("::ffff:0:a00:1", "reserved (outside global unicast 2000::/3)"),  # SIIT, not mapped
    # IPv4 inside IPv6: mapped, compatible, NAT64, 6to4
    ("::ffff:10.0.0.1", f"IPv4-mapped 10.0.0.1, {PRIVATE_10}"),
    ("::ffff:169.254.169.254", f"IPv4-mapped 169.254.169.254, {LINK_LOCAL}"),
    ("::ffff:0.0.0.0", "IPv4-mapped 0.0.0.0, unspecified ('this network', 0.0.0.0/8)"),
    ("::10.0.0.1", f"IPv4-compatible 10.0.0.1, {PRIVATE_10}"),
    ("::8.8.8.8", "IPv4-compatible 8.8.8.8, deprecated (::/96)"),
    ("::127.0.0.1", "IPv4-compatible 127.0.0.1, loopback (127.0.0.0/8)"),
    ("64:ff9b::10.0.0.1", f"NAT64 10.0.0.1, {PRIVATE_10}"),
    ("64:ff9b::169.254.169.254", f"NAT64 169.254.169.254, {LINK_LOCAL}"),
    ("64:ff9b::240.0.0.1", f"NAT64 240.0.0.1, {RESERVED}"),
    ("64:ff9b::127.0.0.1", "NAT64 127.0.0.1, loopback (127.0.0.0/8)"),
    ("2002:a00:1::1", f"6to4 10.0.0.1, {PRIVATE_10}"),
    ("2002:a9fe:a9fe::", f"6to4 169.254.169.254, {LINK_LOCAL}"),
]


@pytest.mark.parametrize(("address", "reason"), CLASSIFIED)
def test_classifier(address: str, reason: str | None) -> None:
    assert classify(address) == reason


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.10.20.30", True),
        ("0x7f.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("::127.0.0.1", False),
        ("64:ff9b::127.0.0.1", False),
        (UNSPECIFIED, False),
        ("::", False),
        ("10.0.0.1", False),
        ("8.8.8.8", False),
    ],
)
def test_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_classify_takes_addresses_only() -> None:
    with pytest.raises(ValueError, match="is a host name, not an address"):
        classify("example.com")


def test_blocked_message_is_the_documented_one() -> None:
    with pytest.raises(EgressBlocked) as caught:
        Egress.parse("public").check_address("240.0.0.1")
    assert str(caught.value) == (
        "egress_blocked: 240.0.0.1 is reserved (240.0.0.0/4) (UNLIMCALL_WEBHOOK_EGRESS=public)"
    )
    assert isinstance(caught.value, OSError)  # what aiohttp passes on from a resolver


# policy, address -> why it refuses (None: allowed)
POLICIES: list[tuple[str, str, str | None]] = [
    ("loopback", "127.0.0.1", None),
    ("loopback", "127.0.0.53", None),
    ("loopback", "::1", None),
    ("loopback", "::ffff:127.0.0.1", None),
    ("loopback", "2130706433", None),
    ("loopback", "8.8.8.8", "not loopback"),
    ("loopback", "10.0.0.1", "not loopback"),
    ("loopback", "::127.0.0.1", "not loopback"),
    ("loopback", UNSPECIFIED, "not loopback"),
    ("public", "127.0.0.1", None),
    ("public", "8.8.8.8", None),
    ("public", "10.0.0.1", PRIVATE_10),
    ("public", "169.254.169.254", LINK_LOCAL),
    ("any", "10.0.0.1", None),
    ("any", "169.254.169.254", None),
    ("any", "240.0.0.1", None),
    ("any", "ff02::1", None),
]


@pytest.mark.parametrize(("policy", "address", "reason"), POLICIES)
def test_policies(policy: str, address: str, reason: str | None) -> None:
    assert Egress.parse(policy).reason(address) == reason


ALLOW = ["10.9.0.0/16", "[fd00::1]", "198.18.0.7", "receiver", "Bücher.example.", " "]


@pytest.mark.parametrize("policy", ["loopback", "public"])
@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.9.9.9", True),
        ("::ffff:10.9.9.9", True),
        ("0xa.9.1.2", True),
        ("10.10.0.1", False),
        ("fd00::1", True),
        ("fd00::2", False),
        ("198.18.0.7", True),
        ("198.18.0.8", False),
    ],
)
def test_allow_list_adds_addresses_to_the_policy(policy: str, address: str, allowed: bool) -> None:
    egress = Egress.parse(policy, ALLOW)
    assert (egress.reason(address) is None) is allowed


@pytest.mark.parametrize("policy", ["loopback", "public"])
def test_allow_listed_names_may_resolve_anywhere(policy: str) -> None:
    egress = Egress.parse(policy, ALLOW)
    assert egress.check_host("RECEIVER.") == "receiver"
    assert egress.check_resolved("receiver", ["172.18.0.5"]) == [IPv4Address("172.18.0.5")]
    assert egress.check_host("xn--bcher-kva.example") == "xn--bcher-kva.example"
    with pytest.raises(EgressBlocked, match=re.escape("172.18.0.5 is")):
        egress.check_resolved("other", ["172.18.0.5"])


def test_names_under_loopback_are_refused_before_any_lookup() -> None:
    egress = Egress.parse("loopback")
    assert egress.check_host("localhost.") == "localhost"
    with pytest.raises(EgressBlocked) as caught:
        egress.check_host("h1.example.test")
    assert str(caught.value) == (
        "egress_blocked: h1.example.test is a name other than localhost (not looked up)"
        " (UNLIMCALL_WEBHOOK_EGRESS=loopback)"
    )


def test_a_name_with_one_refused_address_is_refused() -> None:
    egress = Egress.parse("public")
    assert egress.check_host("example.test") == "example.test"
    assert egress.check_resolved("example.test", ["8.8.8.8", "2606:4700::1"]) == [
        IPv4Address("8.8.8.8"),
        IPv6Address("2606:4700::1"),
    ]
    with pytest.raises(EgressBlocked, match="^" + re.escape("egress_blocked: 10.0.0.1 is private")):
        egress.check_resolved("example.test", ["8.8.8.8", "10.0.0.1"])
    # a socket given non-canonical text would look it up again: refused
    with pytest.raises(EgressBlocked, match="not an address"):
        egress.check_resolved("example.test", ["0x8.8.8.8"])


@pytest.mark.parametrize(
    ("policy", "allow", "message"),
    [
        ("open", [], "UNLIMCALL_WEBHOOK_EGRESS must be one of loopback, public, any"),
        ("", [], "UNLIMCALL_WEBHOOK_EGRESS"),
        ("public", ["10.0.0.0/33"], "UNLIMCALL_WEBHOOK_ALLOW: '10.0.0.0/33'"),
        ("public", ["not a host"], "UNLIMCALL_WEBHOOK_ALLOW: 'not a host'"),
    ],
)
def test_bad_settings_name_the_variable(policy: str, allow: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Egress.parse(policy, allow)


def test_settings_from_the_environment() -> None:
    assert Settings().webhook_egress == "public"
    settings = Settings.from_env(
        {
            "UNLIMCALL_WEBHOOK_EGRESS": "loopback",
            "UNLIMCALL_WEBHOOK_ALLOW": " receiver, 10.9.0.0/16 ,",
        }
    )
    assert (settings.webhook_egress, settings.webhook_allow) == (
        "loopback",
        ("receiver", "10.9.0.0/16"),
    )
    with pytest.raises(ValueError, match="UNLIMCALL_WEBHOOK_EGRESS"):
        Settings.from_env({"UNLIMCALL_WEBHOOK_EGRESS": "everywhere"})
    with pytest.raises(ValueError, match="UNLIMCALL_WEBHOOK_ALLOW"):
        Settings.from_env({"UNLIMCALL_WEBHOOK_ALLOW": "10.0.0.0/99"})


# -- the worker's side: precheck and the vetting resolver, with an injected lookup -------


class FakeDNS:
    """A lookup that answers from a table and remembers what it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, name: str) -> list[str]:
        self.asked.append(name)
        if name not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "fake DNS: no such name")
        return self.table[name]


@pytest.mark.parametrize(
    ("policy", "url", "error"),
    [
        ("public", "https://240.0.0.1/x", f"240.0.0.1 is {RESERVED}"),
        ("public", "https://4026531841/x", f"240.0.0.1 is {RESERVED}"),
        (
            "public",
            "https://[::ffff:10.0.0.1]/x",
            f"::ffff:10.0.0.1 is IPv4-mapped 10.0.0.1, {PRIVATE_10}",
        ),
        ("public", "https://[fe80::1%25eth0]:8443/x", "fe80::1 is link-local (fe80::/10)"),
        ("public", "https://user:pw@169.254.169.254/x", f"169.254.169.254 is {LINK_LOCAL}"),
        ("public", "https://example.test/x", None),
        ("public", "https://127.0.0.1/x", None),
        ("loopback", "https://example.test/x", "example.test is a name other than localhost"),
        ("loopback", "http://0x7f.1:8080/x", None),
        ("loopback", "http://LOCALHOST.:8080/x", None),
        ("loopback", "http://[::1]:8080/x", None),
        ("any", "https://[fd00::1]/x", None),
        ("public", "https://-bad.example/x", "'-bad.example' is not a valid host name"),
        ("any", "https://-bad.example/x", None),
    ],
)
def test_precheck(policy: str, url: str, error: str | None) -> None:
    blocked = precheck(Egress.parse(policy), url)
    if error is None:
        assert blocked is None
    else:
        assert blocked is not None and error in str(blocked)


async def test_vetted_addresses_look_up_only_what_the_policy_lets_through() -> None:
    dns = FakeDNS({"pub.test": ["8.8.8.8"], "priv.test": ["10.0.0.1"], "localhost": ["10.0.0.1"]})
    public, loopback = Egress.parse("public"), Egress.parse("loopback")
    assert await vetted_addresses(public, dns, "pub.test") == [IPv4Address("8.8.8.8")]
    with pytest.raises(EgressBlocked, match=re.escape("10.0.0.1 is private")):
        await vetted_addresses(public, dns, "priv.test")
    # numeric forms and localhost are answered without a lookup, whatever DNS would say
    assert await vetted_addresses(loopback, dns, "0x7f.1") == [IPv4Address("127.0.0.1")]
    assert await vetted_addresses(public, dns, "localhost") == [
        IPv4Address("127.0.0.1"),
        IPv6Address("::1"),
    ]
    assert dns.asked == ["pub.test", "priv.test"]
    with pytest.raises(EgressBlocked, match=re.escape("pub.test is a name other than localhost")):
        await vetted_addresses(loopback, dns, "pub.test")
    assert dns.asked == ["pub.test", "priv.test"]


async def test_the_resolver_hands_aiohttp_numeric_addresses_of_the_asked_family() -> None:
    dns = FakeDNS({"dual.test": ["8.8.8.8", "2606:4700::1"]})
    resolver = VettingResolver(Egress.parse("public"), dns)
    both = await resolver.resolve("dual.test", 443, socket.AF_UNSPEC)
    assert [(r["host"], r["port"], r["family"]) for r in both] == [
        ("8.8.8.8", 443, socket.AF_INET),
        ("2606:4700::1", 443, socket.AF_INET6),
    ]
    assert all(r["flags"] & socket.AI_NUMERICHOST for r in both)
    v6 = await resolver.resolve("dual.test", 443, socket.AF_INET6)
    assert [r["host"] for r in v6] == ["2606:4700::1"]
    with pytest.raises(OSError, match="has no usable address"):
        await VettingResolver(Egress.parse("public"), FakeDNS({"v4.test": ["8.8.8.8"]})).resolve(
            "v4.test", 443, socket.AF_INET6
        )


async def test_aiohttp_refuses_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed aiohttp hands a resolver's EgressBlocked on as the ``os_error`` of a
    ClientConnectorError, and opens no connection (any attempt would trip the wire)."""
    attempts: list[Any] = []

    async def tripwire(*args: Any, **kwargs: Any) -> Any:
        attempts.append(kwargs.get("addr_infos"))
        raise OSError("tripwire: a connection was attempted")

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", tripwire)
    dns = FakeDNS({"priv.test": ["10.0.0.1"]})
    session = webhook_session(Egress.parse("public"), dns, 4)
    try:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.post("http://priv.test:9/x", data=b"{}")
    finally:
        await session.close()
    assert isinstance(caught.value.os_error, EgressBlocked)
    assert str(caught.value.os_error).startswith("egress_blocked: 10.0.0.1 is private")
    assert (dns.asked, attempts) == (["priv.test"], [])
