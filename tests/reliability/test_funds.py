"""Funds are real (issue 15, item 5): 200 concurrent placements on an account holding
0.10 USD spend at most balance + creditLimit (plus one billing increment); the calls
that are let through end with one CDR each, the others are ``originate_failed``; a call
whose cost reaches the limit is cut there and billed to that point."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.rating import price_cents

pytestmark = pytest.mark.slow

LONG_CALL = "+15005550008"  # always answered, 90..480 s of talk


def _increment(sb: Sandbox, number: str) -> float:
    """One billing increment to ``number``: one second at its rate, rounded up to the cent."""
    rate: Decimal = sb.rt.rates.rate_for(number).cents_per_minute
    return price_cents(1, rate) / 100


async def _ended_events(sb: Sandbox, call_id: str) -> list[dict[str, Any]]:
    call = await sb.wait_call(call_id, timeout=60)
    return [e for e in call["events"] if e["event"] == "call.ended"]


async def _cdrs(sb: Sandbox, token: str, since: str) -> list[dict[str, Any]]:
    r = await sb.client.get(
        "/v1/cdrs", params={"from": since, "limit": "1000"}, headers=sb.bearer(token)
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["calls"]
    return items


@pytest.mark.parametrize(
    "account",
    [
        {"accountType": "prepaid", "balance": 0.10},
        {"accountType": "postpaid", "balance": 0.0, "creditLimit": 0.10},
    ],
    ids=["prepaid", "postpaid"],
)
async def test_200_concurrent_calls_cannot_overspend(fresh: Any, account: dict[str, Any]) -> None:
    async with fresh() as sb:
        since = iso(sb.rt.clock.now() - 60)
        _, token, agent_id = await sb.customer_with_agent(currency="USD", **account)

        async def place(i: int) -> Any:
            number = LONG_CALL if i % 2 else f"+1415555{i:04d}"
            return await sb.client.post(
                "/v1/calls",
                json={"aiAgentId": agent_id, "toNumber": number},
                headers=sb.bearer(token),
            )

        answers = await sb.concurrently([place(i) for i in range(200)])
        accepted = [r.json()["callId"] for r in answers if r.status_code == 200]
        rejected = [r for r in answers if r.status_code != 200]
        assert accepted, "the first call fits in 0.10 USD"
        assert rejected, "200 calls cannot all fit in 0.10 USD"
        for r in rejected:
            assert r.status_code == 502, r.text
            assert r.json()["error"] == "originate_failed", r.text
        for call_id in accepted:
            assert len(await _ended_events(sb, call_id)) == 1
        cdrs = await _cdrs(sb, token, since)
        assert len(cdrs) == len(accepted)
        balance = (await sb.client.get("/v1/balance", headers=sb.bearer(token))).json()
        floor = -(account.get("creditLimit") or 0.0)
        assert balance["balance"] >= floor - _increment(sb, LONG_CALL)
        spent = round(account["balance"] - balance["balance"], 4)
        assert spent == round(sum(c["sellPriceCents"] for c in cdrs) / 100, 4)


async def test_a_call_is_cut_when_its_cost_reaches_the_limit(fresh: Any) -> None:
    async with fresh(time_scale=60.0) as sb:
        since = iso(sb.rt.clock.now() - 60)
        customer, token, agent_id = await sb.customer_with_agent(
            currency="USD", accountType="prepaid", balance=0.10
        )
        call_id = await sb.place_call(token, agent_id, LONG_CALL)
        await sb.wait_call(call_id, state="answered", timeout=60)
        # While it talks, the account is left with one cent: the call's hold is released
        # when it ends, so one cent is all it may cost.
        await sb.patch_account(customer, balance=0.01)
        [ended] = await _ended_events(sb, call_id)
        assert ended["hangupReason"] == "insufficient_funds", ended
        [cdr] = await _cdrs(sb, token, since)
        rate = sb.rt.rates.rate_for(LONG_CALL).cents_per_minute
        assert cdr["sellPriceCents"] == 1
        assert price_cents(cdr["billsec"] + 1, rate) > 1  # billed to the point it hit 0
        assert ended["durationSec"] == cdr["billsec"]
        call = await sb.call(call_id)
        assert call["endedAt"] is not None
        balance = (await sb.client.get("/v1/balance", headers=sb.bearer(token))).json()
        assert balance["balance"] == 0.0
        assert balance["blocked"] is True
        r = await sb.client.post(
            "/v1/calls",
            json={"aiAgentId": agent_id, "toNumber": LONG_CALL},
            headers=sb.bearer(token),
        )
        assert r.status_code == 502 and r.json()["error"] == "originate_failed", r.text


async def test_the_hang_up_is_scheduled_where_the_funds_run_out(fresh: Any) -> None:
    """Funds known when the call is answered: it hangs up (in sandbox time) at the
    second its cost reaches the limit, instead of talking on unbilled."""
    async with fresh(time_scale=3600.0) as sb:
        customer, token, agent_id = await sb.customer_with_agent(
            currency="USD", accountType="postpaid", balance=0.0, creditLimit=0.02
        )
        rate = sb.rt.rates.rate_for(LONG_CALL).cents_per_minute
        affordable = max(s for s in range(1000) if price_cents(s, rate) <= 2)
        seen_cut = False
        for _ in range(5):  # each call's talk is drawn from 90..480 s: nearly all exceed it
            await sb.patch_account(customer, balance=0.0)
            call_id = await sb.place_call(token, agent_id, LONG_CALL)
            [ended] = await _ended_events(sb, call_id)
            call = await sb.call(call_id)
            if call["talkSec"] <= affordable:
                assert ended["hangupReason"] != "insufficient_funds", ended
                continue
            assert ended["hangupReason"] == "insufficient_funds", ended
            assert ended["durationSec"] == affordable
            balance = (await sb.client.get("/v1/balance", headers=sb.bearer(token))).json()
            assert balance["balance"] == -0.02
            assert balance["blocked"] is True
            seen_cut = True
            break
        assert seen_cut
