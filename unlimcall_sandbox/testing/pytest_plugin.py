"""pytest plugin ``unlimcall_sandbox``: an isolated UnlimCall Sandbox for your test session.

Installed with the package (entry point ``pytest11``), it adds fixtures and nothing else
until one is used:

- ``unlimcall`` (session): a sandbox started for the session — a ``unlimcall-sandbox
  serve`` process on a free loopback port, temp database, embedded Redis, time scale 3600
  (``--unlimcall-time-scale``), webhooks limited to loopback (``UNLIMCALL_WEBHOOK_EGRESS``
  and ``UNLIMCALL_WEBHOOK_ALLOW`` from your environment override it) — or, with
  ``--unlimcall-url`` / ``UNLIMCALL_SANDBOX_URL`` (plus ``UNLIMCALL_ADMIN_TOKEN``), one
  that is already running (a CI service container).
- ``unlimcall_account``: a fresh account with a token holding every scope and an agent.
- ``unlimcall_inbox``: a fresh webhook inbox inside the sandbox.

Helpers on ``unlimcall``: ``new_account``, ``place_call``, ``wait_for_call``,
``fast_forward``, ``fire``, ``fault``, ``inbox``. All synchronous (httpx), so they work
from any test.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from unlimcall_sandbox.server.settings import ALL_SCOPES


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("unlimcall", "UnlimCall Sandbox")
    group.addoption(
        "--unlimcall-url",
        default=os.environ.get("UNLIMCALL_SANDBOX_URL"),
        help="use a running sandbox at this base URL instead of starting one",
    )
    group.addoption(
        "--unlimcall-time-scale",
        default="3600",
        help="time scale of the sandbox the plugin starts (default 3600)",
    )
    group.addoption("--unlimcall-seed", default="0", help="seed of the sandbox it starts")


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

    def fast_forward(self) -> dict[str, Any]:
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes] | None, log: Path | None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            detail = log.read_text()[-3000:] if log else ""
            raise RuntimeError(f"the sandbox exited ({proc.returncode}):\n{detail}")
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
        _wait_ready(url.rstrip("/"), None, None)
        sandbox = Sandbox(url.rstrip("/"), admin)
        try:
            yield sandbox
        finally:
            sandbox.close()
        return
    data_dir = Path(tempfile.mkdtemp(prefix="unlimcall-"))
    port = _free_port()
    admin = "adm_" + secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLIMCALL_")}
    env.update(
        UNLIMCALL_DATA_DIR=str(data_dir),
        UNLIMCALL_PORT=str(port),
        UNLIMCALL_HOST="127.0.0.1",
        UNLIMCALL_ADMIN_TOKEN=admin,
        UNLIMCALL_LOG_REQUESTS="false",
        UNLIMCALL_TIME_SCALE=str(request.config.getoption("--unlimcall-time-scale")),
        UNLIMCALL_SEED=str(request.config.getoption("--unlimcall-seed")),
        # Webhooks of a test session stay on this machine unless the integrator says
        # otherwise (a receiver on a CI service network, say).
        UNLIMCALL_WEBHOOK_EGRESS=os.environ.get("UNLIMCALL_WEBHOOK_EGRESS", "loopback"),
        UNLIMCALL_WEBHOOK_ALLOW=os.environ.get("UNLIMCALL_WEBHOOK_ALLOW", ""),
    )
    cli = Path(sys.executable).parent / "unlimcall-sandbox"
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "unlimcall_sandbox.cli.main"]
    log = data_dir / "sandbox.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "serve"], env=env, stdout=out, stderr=out)  # noqa: S603
    sandbox = Sandbox(f"http://127.0.0.1:{port}", admin)
    try:
        _wait_ready(sandbox.url, proc, log)
        yield sandbox
    finally:
        sandbox.close()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def unlimcall_account(unlimcall: Sandbox) -> Account:
    return unlimcall.new_account()


@pytest.fixture
def unlimcall_inbox(unlimcall: Sandbox) -> Inbox:
    return unlimcall.inbox()
