"""Where webhooks may go: the egress policy (``UNLIMCALL_WEBHOOK_EGRESS``), the allow-list
(``UNLIMCALL_WEBHOOK_ALLOW``), host normalisation and the address classifier.

Pure: no I/O, no lookups. The worker (``unlimcall_sandbox.workers.resolver``) asks it about
the host of a target URL before sending, and about every address a lookup returns before
connecting; it decides, it never connects.

Policies:
- ``loopback``: 127.0.0.0/8, ::1 (and IPv4-mapped forms of them) and the name
  ``localhost``; no other name is looked up.
- ``public`` (default): loopback plus public unicast. Private, carrier-grade NAT,
  link-local (cloud metadata), unique-local, unspecified, multicast, broadcast, reserved,
  documentation and benchmarking ranges are refused, also when embedded in IPv6
  (IPv4-mapped, IPv4-compatible, NAT64, 6to4).
- ``any``: no restriction.

The allow-list adds to ``loopback`` and ``public``: an address inside a listed CIDR is
allowed, and a listed host name is allowed whatever it resolves to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import unquote

import idna

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

POLICY_ENV = "UNLIMCALL_WEBHOOK_EGRESS"
ALLOW_ENV = "UNLIMCALL_WEBHOOK_ALLOW"
LOOPBACK = "loopback"
PUBLIC = "public"
ANY = "any"
POLICIES = (LOOPBACK, PUBLIC, ANY)
LOCALHOST = "localhost"
# The name ``localhost`` is answered without a lookup (RFC 6761 §6.3 allows it): a hosts
# file or resolver that maps it elsewhere cannot turn it into a way out.
LOCALHOST_ADDRESSES: tuple[Address, ...] = (IPv4Address("127.0.0.1"), IPv6Address("::1"))


def _nets(*rows: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ip_network(cidr), reason) for cidr, reason in rows)


_LOOPBACK_V4 = IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = IPv6Address("::1")
# Checked in order: the broadcast address before the reserved block holding it.
_BLOCKED_V4 = _nets(
    ("0.0.0.0/8", "unspecified ('this network', 0.0.0.0/8)"),
    ("10.0.0.0/8", "private (10.0.0.0/8)"),
    ("100.64.0.0/10", "carrier-grade NAT (100.64.0.0/10)"),
    ("169.254.0.0/16", "link-local (169.254.0.0/16, cloud metadata)"),
    ("172.16.0.0/12", "private (172.16.0.0/12)"),
    ("192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24)"),
    ("192.0.2.0/24", "documentation (192.0.2.0/24)"),
    ("192.88.99.0/24", "6to4 relay anycast (192.88.99.0/24)"),
    ("192.168.0.0/16", "private (192.168.0.0/16)"),
    ("198.18.0.0/15", "benchmarking (198.18.0.0/15)"),
    ("198.51.100.0/24", "documentation (198.51.100.0/24)"),
    ("203.0.113.0/24", "documentation (203.0.113.0/24)"),
    ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
    ("255.255.255.255/32", "broadcast (255.255.255.255)"),
    ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
)
_BLOCKED_V6 = _nets(
    ("::/128", "unspecified (::)"),
    ("64:ff9b:1::/48", "NAT64 local-use (64:ff9b:1::/48)"),
    ("100::/64", "discard-only (100::/64)"),
    ("2001::/23", "IETF protocol assignments (2001::/23)"),
    ("2001:db8::/32", "documentation (2001:db8::/32)"),
    ("3fff::/20", "documentation (3fff::/20)"),
    ("fc00::/7", "unique-local (fc00::/7)"),
    ("fe80::/10", "link-local (fe80::/10)"),
    ("fec0::/10", "site-local (fec0::/10)"),
    ("ff00::/8", "multicast (ff00::/8)"),
)
_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
_MAPPED = IPv6Network("::ffff:0:0/96")
_COMPATIBLE = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = IPv6Network("2002::/16")

_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_V4_PART = re.compile(r"^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$")


class EgressBlocked(OSError):
    """A delivery attempt that the policy refuses. An ``OSError``, so that aiohttp hands
    it on from a resolver as the cause of its connection error, without connecting."""

    def __init__(self, address: str, reason: str, policy: str) -> None:
        self.address, self.reason, self.policy = address, reason, policy
        super().__init__(f"egress_blocked: {address} is {reason} ({POLICY_ENV}={policy})")

    def __str__(self) -> str:
        return str(self.args[0])


def _legacy_ipv4(host: str) -> IPv4Address | None:
    """``inet_aton``'s reading of ``host`` (what ``getaddrinfo`` connects to): one to four
    parts, each decimal, octal (leading 0) or hex (0x); the last part fills the remaining
    bytes. None when it is not such a number."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(p.isascii() and _V4_PART.match(p) for p in parts):
        return None
    values = []
    for p in parts:
        if p[:2].lower() == "0x":
            values.append(int(p[2:], 16))
        elif p.startswith("0"):
            values.append(int(p, 8))
        else:
            values.append(int(p))
    *head, last = values
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return IPv4Address(number)


def _strip_scope(address: IPv6Address) -> IPv6Address:
    return IPv6Address(int(address)) if address.scope_id else address


def normalise_host(host: str) -> Address | str:
    """The address ``host`` means in any numeric form (``2130706433``, ``0x7f.1``,
    ``017700000001``, ``127.1``, a trailing dot, ``[v6]``, a zone id ``fe80::1%eth0`` or
    its URL form ``%25eth0``), else the host name in lower-case ASCII (IDNs as punycode)
    without the trailing dot. ValueError when it is neither."""
    text = unquote(host.strip())
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return _strip_scope(IPv6Address(text))
        except ValueError:
            raise ValueError(f"{host!r} is not a valid IPv6 address") from None
    text = text.rstrip(".")
    if not text.isascii():
        # Before the numeric reading: UTS 46 maps fullwidth digits and dots to ASCII.
        try:
            text = idna.encode(text, uts46=True).decode("ascii").rstrip(".")
        except idna.IDNAError:
            raise ValueError(f"{host!r} is not a valid host name") from None
    v4 = _legacy_ipv4(text)
    if v4 is not None:
        return v4
    name = text.lower()
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{host!r} is not a valid host name")
    return name


def as_address(value: Address | str) -> Address:
    """An address from an address or any numeric host form; ValueError for a name."""
    if isinstance(value, IPv4Address | IPv6Address):
        return _strip_scope(value) if isinstance(value, IPv6Address) else value
    found = normalise_host(value)
    if isinstance(found, str):
        raise ValueError(f"{value!r} is a host name, not an address")
    return found


def show(address: Address) -> str:
    """An address as messages print it, the same on every Python: IPv4-mapped forms as
    ``::ffff:a.b.c.d`` (3.13 prints them so; earlier versions print ``::ffff:a00:1``)."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def _embedded_ipv4(address: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address inside an IPv6 form that carries one, with the form's name."""
    if address in _MAPPED:
        return "IPv4-mapped", IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _COMPATIBLE and int(address) > 1:
        return "IPv4-compatible", IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return "NAT64", IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return "6to4", IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    return None


def is_loopback(value: Address | str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback address (the same socket on this
    host). IPv4-compatible, NAT64 and 6to4 forms are not: they leave through a gateway."""
    address = as_address(value)
    if isinstance(address, IPv4Address):
        return address in _LOOPBACK_V4
    if address == _LOOPBACK_V6:
        return True
    return address in _MAPPED and IPv4Address(int(address) & 0xFFFFFFFF) in _LOOPBACK_V4


def classify(value: Address | str) -> str | None:
    """Why ``value`` may not be reached under ``public``, or None when it may (loopback
    or public unicast). Numeric host forms are accepted and normalised first."""
    address = as_address(value)
    if isinstance(address, IPv4Address):
        if address in _LOOPBACK_V4:
            return None
        return next((reason for net, reason in _BLOCKED_V4 if address in net), None)
    if address == _LOOPBACK_V6:
        return None
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        form, v4 = embedded
        inner = classify(v4)
        if form == "IPv4-mapped":
            return None if inner is None else f"{form} {v4}, {inner}"
        if inner is None and v4 in _LOOPBACK_V4:
            # Through a translator or tunnel, "loopback" is some other machine's.
            inner = "loopback (127.0.0.0/8)"
        if inner is None and form == "IPv4-compatible":
            inner = "deprecated (::/96)"
        return None if inner is None else f"{form} {v4}, {inner}"
    reason = next((reason for net, reason in _BLOCKED_V6 if address in net), None)
    if reason is None and address not in _GLOBAL_UNICAST_V6:
        return "reserved (outside global unicast 2000::/3)"
    return reason


@dataclass(frozen=True, slots=True)
class Egress:
    """A policy with its allow-list; built once per worker from the settings."""

    policy: str = PUBLIC
    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, policy: str, allow: Iterable[str] = ()) -> Egress:
        """From the two settings; ValueError naming the variable when one is wrong."""
        name = policy.strip().lower()
        if name not in POLICIES:
            raise ValueError(f"{POLICY_ENV} must be one of {', '.join(POLICIES)} (got {policy!r})")
        networks: list[Network] = []
        hosts: set[str] = set()
        for raw in allow:
            entry = raw.strip()
            if not entry:
                continue
            try:
                if "/" in entry:
                    networks.append(ip_network(entry.strip("[]"), strict=False))
                    continue
                found = normalise_host(entry)
            except ValueError:
                raise ValueError(
                    f"{ALLOW_ENV}: {entry!r} is neither a host name, an address nor a CIDR"
                ) from None
            if isinstance(found, str):
                hosts.add(found)
            else:
                networks.append(ip_network(found))
        return cls(name, tuple(networks), frozenset(hosts))

    def _listed(self, address: Address) -> bool:
        if any(address in net for net in self.networks):
            return True
        if isinstance(address, IPv6Address) and address in _MAPPED:
            v4 = IPv4Address(int(address) & 0xFFFFFFFF)
            return any(v4 in net for net in self.networks)
        return False

    def reason(self, value: Address | str) -> str | None:
        """Why the policy refuses to connect to this address, or None."""
        address = as_address(value)
        if self.policy == ANY or self._listed(address):
            return None
        if self.policy == LOOPBACK:
            return None if is_loopback(address) else "not loopback"
        return classify(address)

    def check_address(self, value: Address | str, shown: str | None = None) -> Address:
        """The address, or EgressBlocked."""
        address = as_address(value)
        why = self.reason(address)
        if why is not None:
            raise EgressBlocked(shown or show(address), why, self.policy)
        return address

    def check_host(self, host: str) -> Address | str:
        """What can be decided about a target's host before any lookup: its address when
        it is one, else the name to look up (``localhost`` included, which the caller
        answers itself). EgressBlocked when refused: an address the policy refuses, a
        host that is neither address nor name (``any`` passes it on as it is), any name
        but ``localhost`` and listed names under ``loopback``."""
        try:
            found = normalise_host(host)
        except ValueError:
            if self.policy == ANY:
                return host
            raise EgressBlocked(repr(host), "not a valid host name", self.policy) from None
        if not isinstance(found, str):
            return self.check_address(found)
        if self.policy == LOOPBACK and found != LOCALHOST and found not in self.hosts:
            raise EgressBlocked(found, "a name other than localhost (not looked up)", self.policy)
        return found

    def check_resolved(self, name: str, addresses: Sequence[str]) -> list[Address]:
        """The addresses a lookup of ``name`` returned, parsed (zone ids kept, for the
        connection), when every one is allowed: a name that also resolves to a refused
        address is refused, whatever else it resolves to (a rebinding DNS answers both).
        EgressBlocked names the first refused one. Only canonical address text is taken:
        a socket given anything else would look it up again."""
        found: list[Address] = []
        for text in addresses:
            try:
                address = ip_address(text)
            except ValueError:
                raise EgressBlocked(repr(text), "not an address", self.policy) from None
            if self.policy != ANY and name not in self.hosts:
                self.check_address(address, shown=text)
            found.append(address)
        return found
