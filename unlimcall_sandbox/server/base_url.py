"""The base URL a document advertises (the contract's ``servers``, RFC 8414 ``issuer`` and
``token_endpoint``, the landing page): ``UNLIMCALL_PUBLIC_URL`` when set; else the request's
``Host`` only when it names this machine (a loopback name or address, the bind address, or
a name in ``UNLIMCALL_ALLOWED_HOSTS``); else the configured base URL. The ``Host`` header is
the caller's to choose: ``Host: evil.example`` is never echoed."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from litestar import Request

from unlimcall_sandbox.server.settings import Settings

# A Host header: a name or a bracketed IPv6 address, and an optional port.
_HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?")


def is_loopback(name: str) -> bool:
    name = name.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(settings: Settings, name: str) -> bool:
    """May a ``Host`` naming ``name`` (lower case, IPv6 in brackets) be echoed?"""
    bare = name.strip("[]").rstrip(".")
    return (
        is_loopback(name)
        or bare == settings.host.strip("[]").lower()
        or bare in settings.allowed_hosts
        or name in settings.allowed_hosts
    )


def base_for(settings: Settings, scheme: str, host_header: str | None) -> str:
    """The base URL to advertise for a request with this scheme and ``Host`` header."""
    if settings.public_url or not host_header:
        return settings.base_url
    match = _HOST.fullmatch(host_header.strip())
    if match is None or int(match["port"] or 0) > 65535:
        return settings.base_url
    if not host_allowed(settings, match["name"].lower()):
        return settings.base_url
    return f"{'https' if scheme == 'https' else 'http'}://{match[0].lower()}"


def advertised_base(request: Request[Any, Any, Any]) -> str:
    settings: Settings = request.app.state.settings
    return base_for(settings, request.scope["scheme"], request.headers.get("host"))
