"""Where webhooks may go, end to end: hooks are created as the contract says, and every
delivery attempt is judged by the egress policy on the address it would connect to.

Nothing here can leave the machine, even with the policy broken:
- literal targets are in 240.0.0.0/4 (reserved: the kernel does not route it), in any
  numeric or IPv6 disguise;
- names are answered by an injected lookup (``FakeDNS``), never by real DNS;
- every connection the worker's HTTP client attempts goes through ``FakeNetwork``: it
  connects loopback addresses, carries the few addresses a test routes to a loopback
  receiver, and refuses (and records) anything else. Tests assert it saw no such attempt.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_address
from typing import Any

import aiohappyeyeballs
import pytest

from tests.support.receiver import Receiver
from tests.support.sandbox import Sandbox, sandbox_for
from unlimcall_sandbox.logs import fields
from unlimcall_sandbox.server.db.engine import read
from unlimcall_sandbox.server.services import dashboard as dashboard_service

PUBLIC = "(UNLIMCALL_WEBHOOK_EGRESS=public)"
LOOPBACK = "(UNLIMCALL_WEBHOOK_EGRESS=loopback)"
RESERVED = "reserved (240.0.0.0/4)"
# Names the test sandboxes take as plain-http targets (the receiver speaks http).
HTTP_NAMES = ("localhost", "127.0.0.1", "::1", "loop.test", "lan.test", "allowed.test")


class FakeDNS:
    """The worker's name lookup in these tests: a table, and a record of every question."""

    def __init__(self) -> None:
        self.table: dict[str, list[str]] = {}
        self.asked: list[str] = []

    async def __call__(self, name: str) -> list[str]:
        self.asked.append(name)
        if name not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "fake DNS: no such name")
        return self.table[name]


def _loopback(host: str) -> bool:
    address = ip_address(host.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


class FakeNetwork:
    """Stands in for aiohttp's connect step (``aiohappyeyeballs.start_connection``)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.routes: dict[str, str] = {}
        """A non-loopback address -> the loopback address its connections reach."""
        self.attempts: list[tuple[str, int]] = []
        """Every (address, port) a connection was attempted to, in order."""
        self.refused: list[tuple[str, int]] = []
        """Attempts to addresses that are neither loopback nor routed: must stay empty."""

    async def start_connection(self, addr_infos: list[Any], **kwargs: Any) -> socket.socket:
        carried = []
        for family, type_, proto, canon, addr in addr_infos:
            host, port = addr[0], addr[1]
            self.attempts.append((host, port))
            if _loopback(host):
                carried.append((family, type_, proto, canon, addr))
            elif host in self.routes:
                carried.append((socket.AF_INET, type_, proto, canon, (self.routes[host], port)))
            else:
                self.refused.append((host, port))
        if not carried:
            raise OSError("fake network: no route to a non-loopback address")
        sock: socket.socket = await self.real(addr_infos=carried, **kwargs)
        return sock


@pytest.fixture(scope="module")
def network() -> Iterator[FakeNetwork]:
    net = FakeNetwork(aiohappyeyeballs.start_connection)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aiohappyeyeballs, "start_connection", net.start_connection)
        yield net
    assert net.refused == [], f"connections attempted beyond loopback: {net.refused}"


@pytest.fixture(scope="module")
def public_dns() -> FakeDNS:
    return FakeDNS()


@pytest.fixture(scope="module")
def loopback_dns() -> FakeDNS:
    return FakeDNS()


@pytest.fixture(scope="module")
async def public_sb(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    network: FakeNetwork,
    public_dns: FakeDNS,
) -> AsyncIterator[Sandbox]:
    async with sandbox_for(
        backend,
        tmp_path_factory.mktemp(f"egress-public-{backend}"),
        resolver=public_dns,
        hold_redis=True,
        webhook_egress="public",
        webhook_allow=("10.9.0.0/16",),
        insecure_webhook_hosts=HTTP_NAMES,
    ) as sb:
        yield sb


@pytest.fixture(scope="module")
async def loopback_sb(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    network: FakeNetwork,
    loopback_dns: FakeDNS,
) -> AsyncIterator[Sandbox]:
    async with sandbox_for(
        backend,
        tmp_path_factory.mktemp(f"egress-loopback-{backend}"),
        resolver=loopback_dns,
        hold_redis=True,
        webhook_egress="loopback",
        webhook_allow=("allowed.test",),
        insecure_webhook_hosts=HTTP_NAMES,
    ) as sb:
        yield sb


async def hooks_for(sb: Sandbox, urls: list[str]) -> tuple[str, dict[str, str]]:
    """A fresh account with a call.ended hook per URL; returns it and hook id -> URL."""
    customer = await sb.account()
    token = await sb.token(customer, ["write:hooks"])
    made: dict[str, str] = {}
    for url in urls:
        r = await sb.client.post(
            "/v1/hooks",
            json={"event": "call.ended", "target_url": url},
            headers=sb.bearer(token),
        )
        assert r.status_code == 200, (url, r.text)
        made[r.json()["id"]] = url
    return customer, made


async def fire(sb: Sandbox, customer: str) -> None:
    await sb.admin_post("/events", {"customerId": customer, "event": "call.ended"})


async def settled(sb: Sandbox, customer: str, count: int) -> dict[str, dict[str, Any]]:
    """The account's deliveries once all ``count`` are delivered or failed, by hook id."""
    items = await sb.wait_deliveries(
        lambda items: (
            len(items) == count and all(d["status"] in ("delivered", "failed") for d in items)
        ),
        customerId=customer,
    )
    return {d["hookId"]: d for d in items}


def attempts_to(network: FakeNetwork, port: int) -> list[str]:
    return [host for host, p in network.attempts if p == port]


def errors(delivery: dict[str, Any]) -> list[str | None]:
    return [a["error"] for a in delivery["attempts"]]


async def test_a_reserved_address_is_blocked_once_for_good(
    public_sb: Sandbox, network: FakeNetwork, public_dns: FakeDNS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="unlimcall.delivery")
    asked = len(public_dns.asked)
    customer, hooks = await hooks_for(public_sb, ["https://240.0.0.1/x"])
    await fire(public_sb, customer)
    [hook_id] = hooks
    d = (await settled(public_sb, customer, 1))[hook_id]
    expected = f"egress_blocked: 240.0.0.1 is {RESERVED} {PUBLIC}"
    assert d["status"] == "failed"
    assert d["nextAttemptAt"] is None
    assert [
        (a["number"], a["statusCode"], a["error"], a["outcome"], a["nextAttemptAt"])
        for a in d["attempts"]
    ] == [(1, None, expected, "permanent", None)]
    # No retry is left: making everything due changes nothing for it.
    r = await public_sb.client.post("/_sandbox/clock/fast-forward", headers=public_sb.admin)
    assert r.status_code == 200
    [after] = await public_sb.deliveries(hookId=hook_id)
    assert (after["status"], len(after["attempts"])) == ("failed", 1)
    # No lookup, no connection.
    assert len(public_dns.asked) == asked
    assert attempts_to(network, 443) == []
    # The delivery log line and the dashboard say the same.
    lines = [fields(r) for r in caplog.records if r.name == "unlimcall.delivery"]
    assert [
        (x["error"], x["outcome"], x["retry_in_sec"]) for x in lines if x["delivery_id"] == d["id"]
    ] == [(expected, "permanent", None)]
    async with read(public_sb.rt.engine) as conn:
        changed = await dashboard_service.changes(conn, int(customer), 0.0, 0.0)
    [shown] = [x for x in changed["deliveries"] if x["id"] == d["id"]]
    assert errors(shown) == [expected]


async def test_a_redelivery_of_a_blocked_delivery_is_blocked_again(
    public_sb: Sandbox, network: FakeNetwork
) -> None:
    customer, hooks = await hooks_for(public_sb, ["https://240.0.0.1/again"])
    await fire(public_sb, customer)
    [hook_id] = hooks
    d = (await settled(public_sb, customer, 1))[hook_id]
    r = await public_sb.client.post(
        f"/_sandbox/deliveries/{d['id']}/redeliver", headers=public_sb.admin
    )
    assert r.status_code == 200, r.text
    [again] = await public_sb.wait_deliveries(
        lambda items: items and items[0]["status"] == "failed" and len(items[0]["attempts"]) == 2,
        hookId=hook_id,
    )
    expected = f"egress_blocked: 240.0.0.1 is {RESERVED} {PUBLIC}"
    assert [(a["number"], a["error"], a["outcome"]) for a in again["attempts"]] == [
        (1, expected, "permanent"),
        (2, expected, "permanent"),
    ]
    assert attempts_to(network, 443) == []


async def test_disguised_reserved_addresses_are_blocked_as_what_they_are(
    public_sb: Sandbox, network: FakeNetwork, public_dns: FakeDNS
) -> None:
    expected = {
        "https://4026531841/x": f"240.0.0.1 is {RESERVED}",
        "https://0xf0.0.0.1/x": f"240.0.0.1 is {RESERVED}",
        "https://0360.0.0.1/x": f"240.0.0.1 is {RESERVED}",
        "https://240.1/x": f"240.0.0.1 is {RESERVED}",
        "https://240.0.0.1./x": f"240.0.0.1 is {RESERVED}",
        "https://[::ffff:240.0.0.1]/x": f"::ffff:240.0.0.1 is IPv4-mapped 240.0.0.1, {RESERVED}",
        "https://[::240.0.0.1]/x": f"::f000:1 is IPv4-compatible 240.0.0.1, {RESERVED}",
        "https://[64:ff9b::240.0.0.1]/x": f"64:ff9b::f000:1 is NAT64 240.0.0.1, {RESERVED}",
    }
    asked = len(public_dns.asked)
    customer, hooks = await hooks_for(public_sb, list(expected))
    await fire(public_sb, customer)
    found = await settled(public_sb, customer, len(hooks))
    for hook_id, url in hooks.items():
        assert found[hook_id]["status"] == "failed", url
        assert errors(found[hook_id]) == [f"egress_blocked: {expected[url]} {PUBLIC}"], url
    assert len(public_dns.asked) == asked
    assert attempts_to(network, 443) == []


async def test_a_name_that_resolves_to_a_blocked_address_is_blocked(
    public_sb: Sandbox, network: FakeNetwork, public_dns: FakeDNS
) -> None:
    public_dns.table.update(
        {
            "private.test": ["10.0.0.1"],
            "metadata.test": ["169.254.169.254"],
            "ula.test": ["fd00::1"],
            "rebinding.test": ["127.0.0.1", "192.168.1.1"],
        }
    )
    expected = {
        "https://private.test/x": "10.0.0.1 is private (10.0.0.0/8)",
        "https://metadata.test/latest/meta-data/": (
            "169.254.169.254 is link-local (169.254.0.0/16, cloud metadata)"
        ),
        "https://ula.test/x": "fd00::1 is unique-local (fc00::/7)",
        "https://rebinding.test/x": "192.168.1.1 is private (192.168.0.0/16)",
    }
    customer, hooks = await hooks_for(public_sb, list(expected))
    await fire(public_sb, customer)
    found = await settled(public_sb, customer, len(hooks))
    for hook_id, url in hooks.items():
        assert found[hook_id]["status"] == "failed", url
        assert errors(found[hook_id]) == [f"egress_blocked: {expected[url]} {PUBLIC}"], url
    assert {"private.test", "metadata.test", "ula.test", "rebinding.test"} <= set(public_dns.asked)
    assert attempts_to(network, 443) == []


async def test_a_name_that_resolves_to_loopback_is_delivered_under_public(
    public_sb: Sandbox, receiver: Receiver, network: FakeNetwork, public_dns: FakeDNS
) -> None:
    public_dns.table["loop.test"] = ["127.0.0.1"]
    customer, hooks = await hooks_for(public_sb, [f"http://loop.test:{receiver.port}/by-name"])
    await fire(public_sb, customer)
    [hook_id] = hooks
    [got] = await receiver.wait_for("/by-name", 1)
    assert got.headers["x-unlimcall-hook-id"] == hook_id
    d = (await settled(public_sb, customer, 1))[hook_id]
    assert [(a["statusCode"], a["error"]) for a in d["attempts"]] == [(200, None)]
    assert "loop.test" in public_dns.asked
    assert attempts_to(network, receiver.port) == ["127.0.0.1"]


async def test_the_allow_list_lets_a_listed_network_through(
    public_sb: Sandbox, receiver: Receiver, network: FakeNetwork, public_dns: FakeDNS
) -> None:
    """10.9.0.0/16 is allow-listed: the worker connects to 10.9.9.9 (which the fake
    network carries to the loopback receiver); 10.8.8.8 next to it stays blocked."""
    public_dns.table.update({"lan.test": ["10.9.9.9"], "beside.test": ["10.8.8.8"]})
    network.routes["10.9.9.9"] = "127.0.0.1"
    urls = [f"http://lan.test:{receiver.port}/lan", f"https://beside.test:{receiver.port}/x"]
    customer, hooks = await hooks_for(public_sb, urls)
    await fire(public_sb, customer)
    await receiver.wait_for("/lan", 1)
    found = await settled(public_sb, customer, 2)
    by_url = {url: found[hook_id] for hook_id, url in hooks.items()}
    assert by_url[urls[0]]["status"] == "delivered"
    assert errors(by_url[urls[1]]) == [f"egress_blocked: 10.8.8.8 is private (10.0.0.0/8) {PUBLIC}"]
    assert attempts_to(network, receiver.port) == ["10.9.9.9"]


async def test_loopback_delivers_to_localhost_and_127_without_a_lookup(
    loopback_sb: Sandbox, receiver: Receiver, loopback_dns: FakeDNS
) -> None:
    asked = len(loopback_dns.asked)
    urls = [f"http://localhost:{receiver.port}/named", f"{receiver.url}/numbered"]
    customer, _ = await hooks_for(loopback_sb, urls)
    await fire(loopback_sb, customer)
    await receiver.wait_for("/named", 1)
    await receiver.wait_for("/numbered", 1)
    found = await settled(loopback_sb, customer, 2)
    assert {d["status"] for d in found.values()} == {"delivered"}
    assert len(loopback_dns.asked) == asked


async def test_loopback_does_not_even_look_up_another_name(
    loopback_sb: Sandbox, receiver: Receiver, network: FakeNetwork, loopback_dns: FakeDNS
) -> None:
    loopback_dns.table["loop.test"] = ["127.0.0.1"]  # would reach the receiver, were it asked
    customer, hooks = await hooks_for(loopback_sb, [f"http://loop.test:{receiver.port}/no"])
    await fire(loopback_sb, customer)
    [hook_id] = hooks
    d = (await settled(loopback_sb, customer, 1))[hook_id]
    assert d["status"] == "failed"
    assert errors(d) == [
        f"egress_blocked: loop.test is a name other than localhost (not looked up) {LOOPBACK}"
    ]
    assert "loop.test" not in loopback_dns.asked
    assert receiver.for_path("/no") == []
    assert attempts_to(network, receiver.port) == []


async def test_an_allow_listed_name_is_looked_up_under_loopback(
    loopback_sb: Sandbox, receiver: Receiver, network: FakeNetwork, loopback_dns: FakeDNS
) -> None:
    """A listed name (a compose service, say) may resolve anywhere: here to 10.9.9.9,
    which the fake network carries to the loopback receiver."""
    loopback_dns.table["allowed.test"] = ["10.9.9.9"]
    network.routes["10.9.9.9"] = "127.0.0.1"
    customer, hooks = await hooks_for(loopback_sb, [f"http://allowed.test:{receiver.port}/listed"])
    await fire(loopback_sb, customer)
    [hook_id] = hooks
    [got] = await receiver.wait_for("/listed", 1)
    assert got.headers["x-unlimcall-hook-id"] == hook_id
    assert (await settled(loopback_sb, customer, 1))[hook_id]["status"] == "delivered"
    assert "allowed.test" in loopback_dns.asked


async def test_a_burst_of_generated_targets_under_loopback_goes_nowhere(
    loopback_sb: Sandbox, network: FakeNetwork, loopback_dns: FakeDNS
) -> None:
    """What schemathesis's stateful phase does: many hooks with generated hosts, then
    events. Every attempt is refused before any lookup or connection."""
    urls = [f"https://h{i}.example.test/x" for i in range(36)] + [
        "https://0.com",
        "https://p0r.dev/",
        "https://a.b/c?d=e",
        "https://xn--bcher-kva.example/x",
        "https://bücher.example/x",
        "https://EXAMPLE.TEST./x",
        "https://h.example.test:8443/x",
        "https://_srv.example.test/x",
        "https://240.0.0.1/x",
        "https://[::ffff:240.0.0.1]/x",
        "https://4026531841/",
        "https://[64:ff9b::240.0.0.1]:443/x",
        "https://0x7f.0.0.1.example.test/x",
        "https://127.0.0.1.example.test/x",
    ]
    asked = len(loopback_dns.asked)
    before = len(network.attempts)
    customer, hooks = await hooks_for(loopback_sb, urls)
    assert len(hooks) == 50
    await fire(loopback_sb, customer)
    found = await settled(loopback_sb, customer, len(hooks))
    for hook_id, url in hooks.items():
        d = found[hook_id]
        assert d["status"] == "failed", url
        [error] = errors(d)
        assert error is not None and error.startswith("egress_blocked: "), (url, error)
        assert error.endswith(LOOPBACK), (url, error)
    assert len(loopback_dns.asked) == asked
    assert len(network.attempts) == before


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@127.0.0.1/x",
        "https://user@example.test/x",
        "https://:secret@example.test/x",
        "https://@example.test/x",
        "http://user:pass@localhost:8080/x",
    ],
)
async def test_targets_with_user_info_are_refused_at_creation(sandbox: Sandbox, url: str) -> None:
    token = await sandbox.token(await sandbox.account(), ["write:hooks"])
    r = await sandbox.client.post(
        "/v1/hooks", json={"event": "call.ended", "target_url": url}, headers=sandbox.bearer(token)
    )
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input"), url
    assert "user info" in r.json()["message"]


@pytest.mark.parametrize(
    "url",
    [
        "https://240.0.0.1/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00::1]/x",
        "https://2130706433/x",
        "https://localhost:6379/x",
    ],
)
async def test_other_targets_are_judged_at_delivery_not_at_creation(
    sandbox: Sandbox, url: str
) -> None:
    """The contract's rule only (https, at most 512 characters): no event is fired."""
    token = await sandbox.token(await sandbox.account(), ["write:hooks"])
    r = await sandbox.client.post(
        "/v1/hooks", json={"event": "call.ended", "target_url": url}, headers=sandbox.bearer(token)
    )
    assert r.status_code == 200, r.text
