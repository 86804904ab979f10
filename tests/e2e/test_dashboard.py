"""The dashboard in a real browser (Debian's Chromium driven by Playwright): log in, place
a forcing-number call, watch it end, see its CDR and its delivered webhook appear — all
without a reload; signing in again mints no token. A screenshot is saved to
test-artifacts/."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.sandbox import ADMIN, Sandbox

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


async def _sign_in(page: Any, base_url: str) -> str:
    """A fresh visit: sign in, wait for the live stream; the account shown."""
    from playwright.async_api import expect

    await page.goto(f"{base_url}/dashboard")
    await page.get_by_label("Admin token").fill(ADMIN)
    await page.get_by_role("button", name="Open dashboard").click()
    await expect(page.locator("#live")).to_have_text("live", timeout=15_000)
    customer: str = await page.locator("#account").input_value()
    return customer


async def _token_count(sandbox: Sandbox, customer: str) -> int:
    r = await sandbox.client.get(f"/_sandbox/accounts/{customer}/overview", headers=sandbox.admin)
    assert r.status_code == 200, r.text
    return len(r.json()["tokens"])


async def test_dashboard_shows_a_call_and_its_webhook_live(sandbox: Sandbox, backend: str) -> None:
    from playwright.async_api import async_playwright, expect

    token = await sandbox.token("1042")
    r = await sandbox.client.post(
        "/v1/hooks",
        headers=sandbox.bearer(token),
        json={"event": "lead.completed", "target_url": f"{sandbox.base_url}/_sandbox/inbox/e2e"},
    )
    assert r.status_code == 200
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 1100})
            customer = await _sign_in(page, sandbox.base_url)
            tokens = await _token_count(sandbox, customer)
            await expect(page.locator("#tokens li")).to_have_count(tokens)
            await expect(page.locator("#balance")).to_contain_text("USD")
            await page.get_by_label("Destination").fill("+15005550008")
            await page.get_by_role("button", name="Call", exact=True).click()
            await expect(page.locator("#call-result")).to_contain_text("queued")
            call_id = (await page.locator("#call-result").text_content() or "").split()[-1]
            row = page.locator(f'#calls tr[data-call="{call_id}"]')
            await expect(row.locator(".pill")).to_have_text("ended", timeout=20_000)
            await expect(row).to_contain_text("answered (lead_completed)")
            cdr = page.locator("#cdrs tbody tr", has_text="+15005550008")
            await expect(cdr.first).to_contain_text("ANSWERED", timeout=20_000)
            delivered = page.locator("#deliveries tbody tr", has_text="lead.completed")
            await expect(delivered.first).to_contain_text("delivered", timeout=20_000)
            await expect(delivered.first).to_contain_text("#1: 200")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / f"dashboard-{backend}.png"))
            # Placing the call minted nothing; nor does a second visit's sign-in.
            assert await _token_count(sandbox, customer) == tokens
            again = await browser.new_page()
            assert await _sign_in(again, sandbox.base_url) == customer
            await expect(again.locator("#tokens li")).to_have_count(tokens)
            assert await _token_count(sandbox, customer) == tokens
        finally:
            await browser.close()
