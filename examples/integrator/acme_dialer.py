"""Acme's integration with UnlimCall: what an integrator would write (no sandbox imports)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx


class UnlimCallError(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code


class Dialer:
    def __init__(self, api_url: str, token: str, agent_id: str) -> None:
        self.http = httpx.Client(
            base_url=api_url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        )
        self.agent_id = agent_id

    def _check(self, r: httpx.Response) -> Any:
        if r.status_code >= 400:
            raise UnlimCallError(r.status_code, r.json().get("error", "unknown"))
        return r.json()

    def balance(self) -> float:
        return float(self._check(self.http.get("/balance"))["balance"])

    def dial(self, number: str) -> str:
        return str(
            self._check(
                self.http.post("/calls", json={"aiAgentId": self.agent_id, "toNumber": number})
            )["callId"]
        )

    def subscribe(self, event: str, url: str) -> str:
        return str(
            self._check(self.http.post("/hooks", json={"event": event, "target_url": url}))[
                "secret"
            ]
        )

    def recent_cdrs(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self._check(self.http.get("/cdrs"))["calls"]
        return calls


def accept_webhook(
    secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300
) -> dict[str, Any]:
    """Verify ``X-Unlimcall-Signature`` (t=<unix>,v1=<hex>) and return the event."""
    parts = dict(p.split("=", 1) for p in headers["x-unlimcall-signature"].split(","))
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, parts["v1"]):
        raise ValueError("bad signature")
    if abs(time.time() - int(parts["t"])) > tolerance:
        raise ValueError("stale signature")
    event: dict[str, Any] = json.loads(body)
    return event
