"""GET /v1/me, /v1/balance, /v1/agents, /v1/cdrs as the contract describes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.clock import iso


def ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_demo_fixtures_are_the_contract_examples(sandbox: Sandbox) -> None:
    token = await sandbox.token("1042")
    h = sandbox.bearer(token)
    assert (await sandbox.client.get("/v1/me", headers=h)).json() == {
        "customerId": "1042",
        "companyName": "Acme Calling Co.",
        "primaryContactEmail": "yaro@acme.com",
    }
    agents = (await sandbox.client.get("/v1/agents", headers=h)).json()
    first = agents["agents"][0]
    assert (first["id"], first["sipUsername"], first["label"]) == (
        "27",
        "unl_001",
        "SDR seat — Berlin",
    )
    assert agents["count"] == len(agents["agents"]) == 3
    # The sandbox clock runs 3600x in tests: ask for the last 30 days, not the default 24 h.
    month = {"from": iso(sandbox.rt.clock.now() - 30 * 86400), "limit": "1000"}
    cdrs = (await sandbox.client.get("/v1/cdrs", params=month, headers=h)).json()
    assert cdrs["count"] > 0
    assert len({c["country"] for c in cdrs["calls"]}) >= 3
    assert {c["disposition"] for c in cdrs["calls"]} >= {"ANSWERED", "BUSY", "NO ANSWER"}
    old = (
        await sandbox.client.get(
            "/v1/cdrs",
            params={"from": "2025-05-21T00:00:00Z", "till": "2025-05-22T00:00:00Z"},
            headers=h,
        )
    ).json()
    assert old["calls"][0]["id"] == "1747852442.42"
    assert old["calls"][0]["sellPriceCents"] == 34


async def test_balance_is_exact_and_reports_states(sandbox: Sandbox) -> None:
    customer = await sandbox.account(balance=42.7831)
    token = await sandbox.token(customer, ["read:balance"])
    h = sandbox.bearer(token)
    r = await sandbox.client.get("/v1/balance", headers=h)
    assert r.json() == {
        "balance": 42.7831,
        "currency": "USD",
        "accountType": "prepaid",
        "creditLimit": None,
        "blocked": False,
        "stale": False,
    }
    await sandbox.patch_account(customer, balanceUpstream="stale")
    assert (await sandbox.client.get("/v1/balance", headers=h)).json()["stale"] is True
    await sandbox.patch_account(customer, balanceUpstream="failing")
    r = await sandbox.client.get("/v1/balance", headers=h)
    assert r.status_code == 500
    assert r.json()["error"] == "balance_unavailable"
    await sandbox.patch_account(customer, balanceUpstream="ok", balance=0)
    assert (await sandbox.client.get("/v1/balance", headers=h)).json()["blocked"] is True


async def test_postpaid_balance_blocks_past_the_credit_limit(sandbox: Sandbox) -> None:
    customer = await sandbox.account(accountType="postpaid", balance=-10, creditLimit=50)
    h = sandbox.bearer(await sandbox.token(customer, ["read:balance"]))
    body = (await sandbox.client.get("/v1/balance", headers=h)).json()
    assert (body["accountType"], body["balance"], body["creditLimit"], body["blocked"]) == (
        "postpaid",
        -10.0,
        50.0,
        False,
    )
    await sandbox.patch_account(customer, balance=-50)
    assert (await sandbox.client.get("/v1/balance", headers=h)).json()["blocked"] is True


async def test_agents_never_show_credentials(sandbox: Sandbox) -> None:
    customer = await sandbox.account()
    await sandbox.agent(customer, label="Seat A", sipUsername="seat_a_cred")
    token = await sandbox.token(customer, ["read:agents"])
    r = await sandbox.client.get("/v1/agents", headers=sandbox.bearer(token))
    body = r.json()
    assert body["count"] == 1
    assert set(body["agents"][0]) == {"id", "sipUsername", "label", "createdAt"}
    assert "password" not in r.text.lower() and "secret" not in r.text.lower()


@pytest.fixture
async def cdr_account(sandbox: Sandbox) -> tuple[str, dict[str, str], datetime]:
    """An account with 40 CDRs spread over the 40 days before a fixed anchor (in the past)."""
    customer = await sandbox.account()
    anchor = datetime(2026, 1, 31, tzinfo=UTC)
    await sandbox.admin_post(
        f"/accounts/{customer}/cdrs/generate",
        {"count": 400, "from": ts(anchor - timedelta(days=40)), "till": ts(anchor)},
    )
    token = await sandbox.token(customer, ["read:cdrs"])
    return customer, sandbox.bearer(token), anchor


async def test_cdrs_window_boundaries(
    sandbox: Sandbox, cdr_account: tuple[str, dict[str, str], datetime]
) -> None:
    _, h, anchor = cdr_account
    start = anchor - timedelta(days=31)

    async def get(params: dict[str, str]) -> tuple[int, dict[str, object]]:
        r = await sandbox.client.get("/v1/cdrs", params=params, headers=h)
        return r.status_code, r.json()

    status, body = await get({"from": ts(start), "till": ts(anchor), "limit": "1000"})
    assert status == 200 and body["count"] == len(body["calls"]) > 0  # type: ignore[arg-type]
    status, body = await get({"from": ts(start - timedelta(seconds=1)), "till": ts(anchor)})
    assert (status, body["error"]) == (400, "window_too_wide")
    status, body = await get({"from": ts(anchor), "till": ts(anchor)})
    assert (status, body["error"]) == (400, "till_must_be_after_from")
    status, body = await get({"from": ts(anchor), "till": ts(start)})
    assert (status, body["error"]) == (400, "till_must_be_after_from")
    for bad in (
        "yesterday",
        "2026-01-31",
        "2026-01-31T00:00:00",
        "2026-13-01T00:00:00Z",
        "2026-01-31T25:00:00Z",
        "",
        "1738281600",
    ):
        status, body = await get({"from": bad, "till": ts(anchor)})
        assert (status, body["error"]) == (400, "invalid_timestamp"), bad
        status, body = await get({"till": bad})
        assert (status, body["error"]) == (400, "invalid_timestamp"), bad
    status, body = await get(
        {"from": "2026-01-20T00:00:00+02:00", "till": "2026-01-30T12:30:00.123456789Z"}
    )
    assert status == 200


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "1.5", "", "99999999999999"])
async def test_cdrs_limit_outside_range_is_invalid_input(
    sandbox: Sandbox, cdr_account: tuple[str, dict[str, str], datetime], limit: str
) -> None:
    _, h, _ = cdr_account
    r = await sandbox.client.get("/v1/cdrs", params={"limit": limit}, headers=h)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input")


async def test_cdrs_limits_order_and_defaults(
    sandbox: Sandbox, cdr_account: tuple[str, dict[str, str], datetime]
) -> None:
    _, h, anchor = cdr_account
    window = {"from": ts(anchor - timedelta(days=31)), "till": ts(anchor)}
    one = (await sandbox.client.get("/v1/cdrs", params={**window, "limit": "1"}, headers=h)).json()
    assert one["count"] == 1
    default = (await sandbox.client.get("/v1/cdrs", params=window, headers=h)).json()
    assert default["count"] == 100
    full = (
        await sandbox.client.get("/v1/cdrs", params={**window, "limit": "1000"}, headers=h)
    ).json()
    starts = [c["startTime"] for c in full["calls"]]
    assert starts == sorted(starts, reverse=True)
    assert full["calls"][0] == one["calls"][0]
    for c in full["calls"]:
        assert window["from"] <= c["startTime"] <= window["till"]
        assert c["billsec"] <= c["duration"]
        assert c["sellPriceCents"] >= 0
        assert (c["billsec"] == 0) == (c["sellPriceCents"] == 0) or c["billsec"] > 0
    # Default window is the last 24 h of sandbox time: these rows are older.
    recent = (await sandbox.client.get("/v1/cdrs", headers=h)).json()
    assert recent == {"count": 0, "calls": []}


async def test_cdrs_repeated_parameter_is_invalid_input(
    sandbox: Sandbox, cdr_account: tuple[str, dict[str, str], datetime]
) -> None:
    _, h, _ = cdr_account
    r = await sandbox.client.get("/v1/cdrs?limit=5&limit=6", headers=h)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input")


async def test_cdrs_are_only_the_owners(sandbox: Sandbox) -> None:
    anchor = datetime(2026, 2, 10, tzinfo=UTC)
    window = {"from": ts(anchor - timedelta(days=2)), "till": ts(anchor), "limit": "1000"}
    owners = []
    for n in (7, 11):
        customer = await sandbox.account()
        await sandbox.admin_post(
            f"/accounts/{customer}/cdrs/generate",
            {"count": n, "from": window["from"], "till": window["till"]},
        )
        owners.append((customer, n, sandbox.bearer(await sandbox.token(customer, ["read:cdrs"]))))
    seen: list[set[str]] = []
    for _, n, h in owners:
        body = (await sandbox.client.get("/v1/cdrs", params=window, headers=h)).json()
        assert body["count"] == n
        seen.append({c["id"] for c in body["calls"]})
    assert not seen[0] & seen[1]


async def test_cdrs_on_unprovisioned_account_is_409(sandbox: Sandbox) -> None:
    customer = await sandbox.account()
    await sandbox.patch_account(customer, provisioned=False)
    h = sandbox.bearer(await sandbox.token(customer, ["read:cdrs"]))
    r = await sandbox.client.get("/v1/cdrs", headers=h)
    assert (r.status_code, r.json()["error"]) == (409, "account_not_provisioned")
