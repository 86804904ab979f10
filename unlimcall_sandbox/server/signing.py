"""Webhook signatures: ``X-Unlimcall-Signature: t=<unix>,v1=<hex>``.

``hex`` is HMAC-SHA256 keyed with the hook secret exactly as ``POST /hooks`` returned it
(UTF-8), over ``f"{t}.{raw_body}"``. Pure functions; integrators import
``verify_signature`` from ``server`` (or ``unlimcall_sandbox.server.signing``) to check deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Unlimcall-Signature"


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body`` signed at ``timestamp`` (default: now, wall clock)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={compute_signature(secret, t, body)}"


def verify_signature(
    secret: str,
    header: str | bytes,
    body: bytes | str,
    tolerance: int = 300,
    now: float | None = None,
) -> bool:
    """True when ``header`` is a valid signature of ``body`` made within ``tolerance`` s.

    ``body`` must be the raw request body, byte for byte. Several ``v1=`` entries are
    accepted (any one matching is enough). ``tolerance=0`` skips the age check.
    Never raises: a header it cannot parse (any text or bytes at all) is simply False.
    """
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            return False
    if not isinstance(header, str) or not isinstance(body, str | bytes):
        return False
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not (value.isascii() and value.isdigit() and len(value) <= 12):
                return False
            timestamp = int(value)
        elif key == "v1" and value.isascii():
            # compare_digest refuses non-ASCII str; such a value can never match anyway.
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if tolerance and abs(current - timestamp) > tolerance:
        return False
    expected = compute_signature(secret, timestamp, raw)
    return any(hmac.compare_digest(expected, c) for c in candidates)
