"""The egress policy applied to webhook connections: the HTTP session deliveries go out
on, whose resolver vets every address before aiohttp may connect to it, and the check of
a target's host before a request is made.

Two places, because aiohttp skips its resolver for hosts that look like IP literals
(``127.0.0.1``, anything with a colon, digits and dots): those are judged by
``precheck`` before the request; everything else reaches ``VettingResolver``, which looks
the name up once, vets every address and hands aiohttp only vetted numeric addresses, so
the socket connects to what was vetted with no second lookup. A refusal raised in the
resolver is an ``OSError`` (``EgressBlocked``): aiohttp turns it into a
``ClientConnectorDNSError`` whose ``os_error`` it is, before opening any connection.

The name lookup itself is injectable (``Resolver``): tests resolve made-up names to
made-up addresses without any lookup or connection.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Address

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from unlimcall_sandbox.server.egress import (
    LOCALHOST,
    LOCALHOST_ADDRESSES,
    Address,
    Egress,
    EgressBlocked,
)

Resolver = Callable[[str], Awaitable[Sequence[str]]]
"""A host name to its addresses (canonical numeric text); OSError when it has none."""

_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


async def system_resolver(name: str) -> list[str]:
    """The machine's resolver: getaddrinfo in a thread, as aiohttp does by default."""
    results = await aiohttp.ThreadedResolver().resolve(name, 0, socket.AF_UNSPEC)
    return [r["host"] for r in results]


async def vetted_addresses(egress: Egress, resolver: Resolver, host: str) -> list[Address]:
    """Every address ``host`` stands for, each allowed by ``egress``; EgressBlocked
    otherwise. ``localhost`` and numeric hosts are answered without a lookup; under
    ``loopback`` no other name (unless allow-listed) is looked up."""
    target = egress.check_host(host)
    if not isinstance(target, str):
        return [target]
    if target == LOCALHOST:
        return list(LOCALHOST_ADDRESSES)
    return egress.check_resolved(target, await resolver(target))


def precheck(egress: Egress, url: str) -> EgressBlocked | None:
    """The refusal that can be told from the target URL alone: an IP literal the policy
    refuses, a host that is no host, any name but ``localhost`` under ``loopback``."""
    try:
        host = URL(url).raw_host
    except ValueError:
        return None  # aiohttp refuses it with its own error; nothing is sent
    if host is None:
        return None
    try:
        egress.check_host(host)
    except EgressBlocked as blocked:
        return blocked
    return None


class VettingResolver(AbstractResolver):
    """aiohttp's resolver for webhook connections: looks up once, vets every address."""

    def __init__(self, egress: Egress, resolver: Resolver) -> None:
        self._egress = egress
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        for address in await vetted_addresses(self._egress, self._resolver, host):
            af = socket.AF_INET if isinstance(address, IPv4Address) else socket.AF_INET6
            if family and family != af:
                continue
            results.append(
                ResolveResult(
                    hostname=host, host=str(address), port=port, family=af, proto=0, flags=_NUMERIC
                )
            )
        if not results:
            # aiohttp assumes a lookup answers at least one address.
            raise OSError(f"{host} has no usable address")
        return results

    async def close(self) -> None:
        pass


def webhook_session(egress: Egress, resolver: Resolver, limit: int) -> aiohttp.ClientSession:
    """The session deliveries go out on. No cookie jar (deliveries are independent), no
    proxies from the environment (a proxy would connect where the policy never looked);
    redirects are refused per request; the timeout is per attempt."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, resolver=VettingResolver(egress, resolver)),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )
