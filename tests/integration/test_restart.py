"""Restarting the sandbox keeps everything."""

from __future__ import annotations

from pathlib import Path

from tests.support.sandbox import fresh_database, fresh_redis_url, make_settings, running


async def test_restart_keeps_accounts_tokens_and_cdrs(backend: str, tmp_path: Path) -> None:
    async with fresh_database(backend, tmp_path) as db_url:
        settings = make_settings(tmp_path, db_url, await fresh_redis_url(backend))
        async with running(settings) as sb:
            customer = await sb.account(balance=9.99)
            token = await sb.token(customer)
            # Taken before generating: the history ends at "now" and sandbox time runs on
            # (3600x here), so a window computed later could miss its oldest CDRs.
            since = _week_ago(sb)
            await sb.admin_post(f"/accounts/{customer}/cdrs/generate", {"count": 12})
            before = (
                await sb.client.get("/v1/cdrs", params={"from": since}, headers=sb.bearer(token))
            ).json()
        async with running(settings) as sb:
            h = sb.bearer(token)
            assert (await sb.client.get("/v1/balance", headers=h)).json()["balance"] == 9.99
            after = (await sb.client.get("/v1/cdrs", params={"from": since}, headers=h)).json()
            assert after == before
            assert after["count"] == 12
            assert (
                await sb.client.get("/v1/me", headers=sb.bearer(await sb.token("1042")))
            ).json()["customerId"] == "1042"


def _week_ago(sb: object) -> str:
    from unlimcall_sandbox.server.clock import iso

    return iso(sb.rt.clock.now() - 7 * 86400 - 60)  # type: ignore[attr-defined]
