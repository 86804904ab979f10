"""pytest plugin ``unlimcall_sandbox``: an isolated UnlimCall Sandbox for your test session.

Installed with the package (entry point ``pytest11``), it adds fixtures and nothing else
until one is used:

- ``unlimcall`` (session): a sandbox started for the session — a ``unlimcall-sandbox
  serve`` process on a free loopback port, temp database, embedded Redis, time scale 60
  (``--unlimcall-time-scale``: a sandbox minute per real second, so a CDR stays in the
  default 24 h ``/v1/cdrs`` window for 24 real minutes; ``advance`` and ``fast_forward``
  move the clock when a test needs hours to pass), webhooks limited to loopback
  (``UNLIMCALL_WEBHOOK_EGRESS`` and ``UNLIMCALL_WEBHOOK_ALLOW`` from your environment
  override it) — or, with
  ``--unlimcall-url`` / ``UNLIMCALL_SANDBOX_URL`` (plus ``UNLIMCALL_ADMIN_TOKEN``), one
  that is already running (a CI service container).
- ``unlimcall_account``: a fresh account with a token holding every scope and an agent.
- ``unlimcall_inbox``: a fresh webhook inbox inside the sandbox.

Helpers on ``unlimcall``: ``new_account``, ``place_call``, ``wait_for_call``, ``now``
(sandbox time), ``advance``, ``fast_forward``, ``fire``, ``fault``, ``inbox``. All
synchronous (httpx), so they work from any test.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest

from unlimcall_sandbox.server.settings import ALL_SCOPES
from unlimcall_sandbox.testing.launch import launch_sandbox

# Sandbox seconds per real second in the sandbox the plugin starts. 60 keeps what a test
# just did inside the API's default windows (``/v1/cdrs``: the last 24 h) for 24 real
# minutes, while calls still play out in seconds; tests that need more time to pass move
# the clock (``advance``, ``fast_forward``) rather than wait.
DEFAULT_TIME_SCALE = "60"
SANDBOX_TIME_HEADER = "x-unlimcall-sandbox-time"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("unlimcall", "UnlimCall Sandbox")
    group.addoption(
        "--unlimcall-url",
        default=os.environ.get("UNLIMCALL_SANDBOX_URL"),
        help="use a running sandbox at this base URL instead of starting one",
    )
    group.addoption(
        "--unlimcall-time-scale",
        default=DEFAULT_TIME_SCALE,
        help="time scale of the sandbox the plugin starts (default 60: a sandbox minute per "
        "real second, so a CDR stays in the default 24 h window for 24 real minutes)",
    )
    group.addoption(
        "--unlimcall-seed",
        default=None,
        help="seed of the sandbox it starts (default: a random one per session, so ids never "
        "repeat across runs; give one to repeat a run's ids)",
    )


@dataclass
class Account:
    customer_id: str
    token: str
    agent_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Inbox:
    sandbox: Sandbox
    name: str

    @property
    def url(self) -> str:
        """Use it as a hook ``target_url``."""
        return f"{self.sandbox.url}/_sandbox/inbox/{self.name}"

    def messages(self) -> list[dict[str, Any]]:
        r = self.sandbox.admin.get(f"/_sandbox/inbox/{self.name}", params={"limit": "1000"})
        r.raise_for_status()
        items: list[dict[str, Any]] = r.json()["messages"]
        return items

    def answer_with(self, status: int) -> None:
        self.sandbox.admin.put(
            f"/_sandbox/inbox/{self.name}", json={"status": status}
        ).raise_for_status()

    def wait_for(
        self, count: int, event: str | None = None, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            got = [m for m in self.messages() if event is None or m["event"] == event]
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"inbox {self.name}: {len(got)} of {count} arrived")
            time.sleep(0.05)


@dataclass
class Sandbox:
    url: str
    admin_token: str
    admin: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.admin = httpx.Client(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {self.admin_token}"}
        )

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1"

    def close(self) -> None:
        self.admin.close()

    def _post(self, path: str, body: Any) -> Any:
        r = self.admin.post(f"/_sandbox{path}", json=body)
        r.raise_for_status()
        return r.json()

    def new_account(
        self, scopes: list[str] | None = None, balance: float = 100.0, **fields: Any
    ) -> Account:
        """A fresh, ready account with a token of ``scopes`` (default: all) and an agent."""
        acc = self._post(
            "/accounts",
            {
                "companyName": "Test Co",
                "primaryContactEmail": "qa@example.com",
                "balance": balance,
                **fields,
            },
        )
        customer = str(acc["customerId"])
        token = self._post(
            f"/accounts/{customer}/tokens",
            {"scopes": ALL_SCOPES if scopes is None else scopes},
        )["token"]
        agent = self._post(f"/accounts/{customer}/agents", {"label": "Test seat"})
        return Account(customer, token, str(agent["id"]))

    def inbox(self, name: str | None = None) -> Inbox:
        return Inbox(self, name or f"inbox-{secrets.token_hex(6)}")

    def place_call(self, account: Account, to: str, **extra: Any) -> str:
        r = httpx.post(
            f"{self.api_url}/calls",
            headers=account.headers,
            json={"aiAgentId": account.agent_id, "toNumber": to, **extra},
        )
        r.raise_for_status()
        return str(r.json()["callId"])

    def call(self, call_id: str) -> dict[str, Any]:
        r = self.admin.get(f"/_sandbox/calls/{call_id}")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def wait_for_call(
        self, call_id: str, state: str = "ended", timeout: float = 30.0
    ) -> dict[str, Any]:
        """The call once it reaches ``state``, with its events."""
        deadline = time.monotonic() + timeout
        while (data := self.call(call_id))["state"] != state:
            if time.monotonic() > deadline:
                raise AssertionError(f"call {call_id} stuck in {data['state']}")
            time.sleep(0.05)
        return data

    def now(self) -> datetime:
        """The sandbox's time now (timezone-aware UTC): what ``startTime``, ``createdAt``
        and the ``/v1/cdrs`` window use. Not wall time: build ``from``/``till`` from it."""
        r = self.admin.get("/_sandbox/clock")
        r.raise_for_status()
        return sandbox_time(r)

    def advance(self, seconds: float | None = None, to: str | None = None) -> dict[str, Any]:
        """Move sandbox time forward by ``seconds`` or to ``to`` (RFC 3339); every call step
        and webhook retry due in between happens, in order, at its planned time."""
        body: dict[str, Any] = {"to": to} if seconds is None else {"seconds": seconds}
        data: dict[str, Any] = self._post("/clock/advance", body)
        return data

    def fast_forward(self) -> dict[str, Any]:
        """Advance until nothing is pending: every call ends as planned (its CDR bills the
        planned talk time), every scheduled webhook retry is due."""
        data: dict[str, Any] = self._post("/clock/fast-forward", {})
        return data

    def fire(self, account: Account, event: str = "call.ended", **fields: Any) -> dict[str, Any]:
        data: dict[str, Any] = self._post(
            "/events", {"customerId": account.customer_id, "event": event, "fields": fields}
        )
        return data

    def fault(self, **rule: Any) -> dict[str, Any]:
        data: dict[str, Any] = self._post("/faults", rule)
        return data

    def clear_faults(self) -> None:
        self.admin.delete("/_sandbox/faults").raise_for_status()


def sandbox_time(response: httpx.Response) -> datetime:
    """The sandbox time a response carries (header ``X-Unlimcall-Sandbox-Time``, on every
    response of the sandbox), as a timezone-aware datetime."""
    value = response.headers[SANDBOX_TIME_HEADER]
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _wait_ready(url: str, timeout: float = 60.0) -> None:
    """Wait for a sandbox this plugin did not start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the sandbox at {url} did not become ready")


@pytest.fixture(scope="session")
def unlimcall(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    url = request.config.getoption("--unlimcall-url")
    if url:
        admin = os.environ.get("UNLIMCALL_ADMIN_TOKEN", "")
        _wait_ready(url.rstrip("/"))
        sandbox = Sandbox(url.rstrip("/"), admin)
        try:
            yield sandbox
        finally:
            sandbox.close()
        return
    settings = {
        "UNLIMCALL_TIME_SCALE": str(request.config.getoption("--unlimcall-time-scale")),
        # Webhooks of a test session stay on this machine unless the integrator says
        # otherwise (a receiver on a CI service network, say).
        "UNLIMCALL_WEBHOOK_EGRESS": os.environ.get("UNLIMCALL_WEBHOOK_EGRESS", "loopback"),
        "UNLIMCALL_WEBHOOK_ALLOW": os.environ.get("UNLIMCALL_WEBHOOK_ALLOW", ""),
    }
    seed = request.config.getoption("--unlimcall-seed")
    if seed is not None:
        settings["UNLIMCALL_SEED"] = str(seed)
    with launch_sandbox(settings) as launched:
        sandbox = Sandbox(launched.url, launched.admin_token)
        try:
            yield sandbox
        finally:
            sandbox.close()


@pytest.fixture
def unlimcall_account(unlimcall: Sandbox) -> Account:
    return unlimcall.new_account()


@pytest.fixture
def unlimcall_inbox(unlimcall: Sandbox) -> Inbox:
    return unlimcall.inbox()
