"""The dashboard in a real browser (Debian's Chromium driven by Playwright), offline: every
request that is not to this machine is aborted and counted (none may happen).

- What issue 18 promises, end to end on a real ``serve`` process: the printed link signs
  in once (no code or token left in the address bar, no portal token minted), "Start demo"
  fills the call floor, a call's story opens, a webhook's signature shows as verified.
- Each view in light and dark: axe-core (vendored in ``vendor/``, injected by the test,
  never shipped) finds no serious or critical violation; no sideways scrolling at
  1280×720 or 1024×768; screenshots in ``test-artifacts/``.
- A call's timeline in order, the inspector (verdict, headers, body, copy as curl,
  replay), and the keyboard.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.browser import LAUNCH_ARGS
from tests.support.sandbox import Sandbox

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
CLI = Path(sys.executable).parent / "unlimcall-sandbox"
LAPTOP = {"width": 1280, "height": 720}
SMALL_LAPTOP = {"width": 1024, "height": 768}
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


@dataclass
class Watch:
    """What the browser tried beyond this machine, and the page's own errors."""

    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def clean(self) -> None:
        assert self.blocked == [], f"requests beyond loopback: {self.blocked}"
        assert self.errors == [], f"page errors: {self.errors}"


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def new_context(browser: Any, watch: Watch, viewport: dict[str, int] = LAPTOP) -> Any:
    from playwright.async_api import Request, Route

    context = await browser.new_context(viewport=viewport)
    # axe-core goes in through the DevTools protocol, so the page's CSP does not stop it
    # and the page itself never ships or loads it.
    await context.add_init_script(path=str(AXE))

    async def loopback_only(route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            watch.blocked.append(request.url)
            await route.abort()

    await context.route("**/*", loopback_only)
    return context


async def open_page(context: Any, watch: Watch) -> Any:
    page = await context.new_page()
    page.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    return page


async def link(sandbox: Sandbox) -> str:
    r = await sandbox.client.post("/_sandbox/dashboard/links", headers=sandbox.admin)
    assert r.status_code == 201, r.text
    return f"{sandbox.base_url}{r.json()['path']}"


async def signed_in(page: Any, url: str, base: str) -> None:
    from playwright.async_api import expect

    await page.goto(url)
    await expect(page.locator("#live")).to_have_text("live", timeout=15_000)
    assert page.url.startswith(f"{base}/dashboard")
    assert "code=" not in page.url and "token" not in page.url


async def axe_serious(page: Any) -> list[str]:
    result = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.help + ' — ' + v.nodes.slice(0, 3)"
        ".map(n => n.target.join(' ')).join(' | '))"
    )
    return list(result)


async def check_view(page: Any, name: str, backend: str) -> None:
    """axe in light and dark, no sideways scrolling, a screenshot of each."""
    ARTIFACTS.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        assert await axe_serious(page) == [], (name, scheme)
        assert await page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        ), (name, scheme, "scrolls sideways")
        await page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}-{scheme}-{backend}.png"))
    await page.emulate_media(color_scheme="light")


async def token_count(client: httpx.AsyncClient, admin: dict[str, str]) -> int:
    r = await client.get("/_sandbox/accounts", headers=admin)
    total = 0
    for account in r.json()["accounts"]:
        r = await client.get(f"/_sandbox/accounts/{account['customerId']}/overview", headers=admin)
        total += len(r.json()["tokens"])
    return total


async def wait_for(predicate: str, page: Any, timeout: float = 30.0) -> None:
    """Poll ``predicate`` (a JavaScript expression) until it holds. (Playwright's own
    wait_for_function evaluates strings inside the page, which its CSP forbids.)"""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(predicate):
        assert time.monotonic() < deadline, f"never true: {predicate}"
        await asyncio.sleep(0.1)


# -- issue 18's "done when", on a real `serve` --------------------------------------------------


@asynccontextmanager
async def served(tmp: Path, time_scale: float) -> AsyncIterator[tuple[str, str, str]]:
    """``unlimcall-sandbox serve`` as a user runs it (loopback webhooks only): its base URL,
    the dashboard link and the admin token from its banner."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLIMCALL_")}
    env.update(
        UNLIMCALL_DATA_DIR=str(tmp / "data"),
        UNLIMCALL_PORT="0",
        UNLIMCALL_TIME_SCALE=str(time_scale),
        UNLIMCALL_LOG_REQUESTS="false",
        UNLIMCALL_WEBHOOK_EGRESS="loopback",
    )
    out = tmp / "serve.out"
    proc = _spawn(env, out)
    try:
        deadline = time.monotonic() + 60
        while "  Try:" not in out.read_text(errors="replace"):
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            await asyncio.sleep(0.05)
        text = out.read_text()
        dashboard = re.search(
            r"Dashboard:\s+(http://127\.0\.0\.1:\d+/dashboard/login\?code=\S+)", text
        )
        admin = re.search(r"Admin token:\s+(\S+)", text)
        assert dashboard and admin, text
        base = dashboard.group(1).split("/dashboard")[0]
        yield base, dashboard.group(1), admin.group(1)
    finally:
        await asyncio.to_thread(_stop, proc)


def _spawn(env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as sink:
        return subprocess.Popen([str(CLI), "serve"], env=env, stdout=sink, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


async def test_serve_link_then_start_demo_then_a_calls_story_and_a_verified_signature(
    tmp_path: Path, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("one real serve process is enough (SQLite in its data dir)")
    from playwright.async_api import expect

    watch = Watch()
    async with (
        served(tmp_path, time_scale=20) as (base, url, admin_token),
        httpx.AsyncClient(base_url=base, timeout=30) as client,
        chromium() as browser,
    ):
        admin = {"Authorization": f"Bearer {admin_token}"}
        tokens_before = await token_count(client, admin)
        context = await new_context(browser, watch)
        page = await open_page(context, watch)
        # One click: signed in, and the address bar keeps no code.
        await signed_in(page, url, base)
        assert page.url == f"{base}/dashboard"
        [cookie] = await context.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (
            "unlimcall_dashboard",
            True,
            "Strict",
        )
        assert await page.evaluate("document.cookie") == ""  # HttpOnly: not for scripts

        # Start demo: a living floor within moments.
        await page.get_by_role("button", name="Start demo").click()
        await expect(page.locator("#tiles li[data-agent]")).to_have_count(12, timeout=15_000)
        await expect(page.locator("#demo-status")).to_contain_text("Demo running")
        await wait_for(
            "document.querySelectorAll('#tiles li[data-activity=talking]').length >= 3", page
        )
        await wait_for("Number(document.querySelector('#kpi-flight').textContent) >= 3", page)
        await expect(page.locator("#floor-company")).to_contain_text("Northwind Dialers (demo)")
        await expect(page.get_by_role("button", name="Stop demo")).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-demo-floor.png"))

        # A call's whole story: the first call that ended.
        await page.get_by_role("link", name="Calls", exact=True).click()
        ended = page.locator("#calls tbody tr", has=page.locator(".chip.st-ended"))
        await expect(ended.first).to_be_visible(timeout=30_000)
        await ended.first.click()
        await expect(page.locator("#story-id")).not_to_be_empty()
        states = page.locator("#timeline li[data-kind=state] .what")
        await expect(states.first).to_have_text("queued")
        await expect(states.last).to_have_text("ended", timeout=15_000)
        labels = await states.all_text_contents()
        assert labels[:2] == ["queued", "ringing"] and labels[-1] == "ended"
        assert labels[2] in ("answered", "busy", "no answer", "failed")
        await expect(page.locator("#story-cdr")).to_contain_text("Disposition")

        # One webhook's verified signature, in the inspector.
        await page.get_by_role("link", name="Webhooks", exact=True).click()
        await expect(page.locator("#messages button").first).to_be_visible(timeout=30_000)
        await page.locator("#messages button").first.click()
        await expect(page.locator("#verdict")).to_contain_text("Signature verified")

        await page.get_by_role("button", name="Stop demo").click()
        await expect(page.get_by_role("button", name="Start demo")).to_be_visible()
        assert await token_count(client, admin) == tokens_before  # nothing minted

        # The link was spent: a second browser gets the sign-in form.
        other = await new_context(browser, watch)
        again = await open_page(other, watch)
        await again.goto(url)
        await expect(again.locator("#signin-expired")).to_be_visible()
        assert again.url == f"{base}/dashboard"
        await other.close()
        await context.close()
    watch.clean()


# -- every view, light and dark ----------------------------------------------------------------


async def test_every_view_passes_axe_in_light_and_dark_and_fits_a_laptop(
    fresh: Any, backend: str
) -> None:
    from playwright.async_api import expect

    watch = Watch()
    async with fresh(time_scale=30.0) as sb, chromium() as browser:
        # Long enough to outlast every view's checks (30x: 60 sandbox minutes = 2 real
        # minutes); the test stops it at the end.
        r = await sb.client.post(
            "/_sandbox/demo", json={"agents": 8, "minutes": 60}, headers=sb.admin
        )
        assert r.status_code == 201, r.text
        customer = r.json()["customerId"]
        context = await new_context(browser, watch)
        page = await open_page(context, watch)
        await signed_in(page, await link(sb), sb.base_url)
        await expect(page.locator("#account")).to_have_value(customer)
        await expect(page.locator("#tiles li[data-agent]")).to_have_count(8, timeout=15_000)
        await wait_for("document.querySelectorAll('#charts-h ~ .charts svg').length === 4", page)
        await check_view(page, "floor", backend)

        await page.goto(f"{sb.base_url}/dashboard#/calls")
        await expect(page.locator("#calls tbody tr[data-call]").first).to_be_visible()
        await check_view(page, "calls", backend)

        ended = page.locator("#calls tbody tr", has=page.locator(".chip.st-ended"))
        await expect(ended.first).to_be_visible(timeout=30_000)
        await ended.first.locator("a").click()
        await expect(page.locator("#timeline li").first).to_be_visible()
        await expect(page.locator("#story-deliveries .delivery").first).to_be_visible(
            timeout=15_000
        )
        await check_view(page, "story", backend)

        await page.goto(f"{sb.base_url}/dashboard#/webhooks")
        await expect(page.locator("#verdict")).to_contain_text("Signature verified", timeout=15_000)
        await page.get_by_role("button", name="Copy as curl").click()
        await expect(page.locator("#curl")).to_contain_text("curl -X POST")
        await check_view(page, "webhooks", backend)

        await page.goto(f"{sb.base_url}/dashboard#/account")
        await expect(page.locator("#cdrs tbody tr").first).to_be_visible()
        await check_view(page, "account", backend)

        await page.set_viewport_size(SMALL_LAPTOP)
        for view in ("floor", "calls", "webhooks", "account"):
            await page.goto(f"{sb.base_url}/dashboard#/{view}")
            await expect(page.locator(f"#view-{view}")).to_be_visible()
            await expect(page.locator("#live")).to_have_text("live")
            assert await page.evaluate(
                "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
            ), view
        await page.screenshot(path=str(ARTIFACTS / f"dashboard-account-1024-{backend}.png"))

        signin = await open_page(await new_context(browser, watch), watch)
        await signin.goto(f"{sb.base_url}/dashboard")
        await expect(signin.get_by_label("Admin token")).to_be_visible()
        await expect(signin.get_by_role("button", name="Start demo")).to_be_hidden()
        await expect(signin.get_by_role("navigation")).to_be_hidden()
        await check_view(signin, "signin", backend)
        r = await sb.client.post("/_sandbox/demo/stop", headers=sb.admin)
        assert r.status_code == 200
    watch.clean()


# -- a call's story, the inspector, the keyboard -------------------------------------------------


async def _hooked_account(sandbox: Sandbox, inbox: str) -> tuple[str, str, str]:
    customer, token, agent = await sandbox.customer_with_agent(companyName=f"E2E {inbox}")
    for event in ("call.transferred", "call.ended"):
        r = await sandbox.client.post(
            "/v1/hooks",
            headers=sandbox.bearer(token),
            json={"event": event, "target_url": f"{sandbox.base_url}/_sandbox/inbox/{inbox}"},
        )
        assert r.status_code == 200
    return customer, token, agent


async def test_a_calls_timeline_shows_its_states_in_order(sandbox: Sandbox, backend: str) -> None:
    from playwright.async_api import expect

    customer, _, agent = await _hooked_account(sandbox, f"story-{backend}")
    watch = Watch()
    async with chromium() as browser:
        context = await new_context(browser, watch)
        page = await open_page(context, watch)
        await signed_in(page, await link(sandbox), sandbox.base_url)
        await page.select_option("#account", customer)
        await page.get_by_role("link", name="Account", exact=True).click()
        await expect(page.locator("#call-agent")).to_have_value(agent)
        # Placed from the page: the control plane's call placement, no token minted.
        await page.select_option("#call-preset", "+15005550006")
        await page.get_by_role("button", name="Call", exact=True).click()
        await page.locator("#call-result a").click()
        await expect(page.locator("#view-story")).to_be_visible()
        await expect(page.locator("#timeline li[data-kind=state]").last).to_have_text(
            re.compile("ended"), timeout=20_000
        )
        steps = await page.locator(
            "#timeline li:not([data-kind=attempt]) .what"
        ).all_text_contents()
        assert steps[:6] == [
            "queued",
            "ringing",
            "answered",
            "transferred to a human",
            "ended",
            steps[5],
        ]
        assert steps[5].startswith("CDR ") and "ANSWERED" in steps[5]
        assert steps[6] == "call.ended emitted"
        await expect(page.locator("#story-facts")).to_contain_text("transferred")
        await expect(page.locator("#story-cdr")).to_contain_text("ANSWERED")
        deliveries = page.locator("#story-deliveries .delivery")
        await expect(deliveries).to_have_count(2, timeout=20_000)
        first = deliveries.filter(has_text="call.transferred")
        await expect(first.locator("tbody tr")).to_have_count(1, timeout=20_000)
        await expect(first.locator("tbody tr").first).to_contain_text("200")
        await expect(first.locator("tbody tr").first).to_contain_text("✓ verified")
        await expect(first.locator("tbody tr").first).to_contain_text('"signature":"verified"')
        await first.get_by_role("button", name="Redeliver").click()
        await expect(first.locator("tbody tr")).to_have_count(2, timeout=20_000)
        await expect(page.locator("#timeline li[data-kind=attempt]")).to_have_count(3)
        # Now that it has ended, the calls table says how it went.
        await page.goto(f"{sandbox.base_url}/dashboard#/calls")
        await expect(page.locator("#calls tbody tr").first).to_contain_text("transferred")
        await context.close()
    watch.clean()


async def test_the_inspector_shows_a_verified_signature_copies_curl_and_replays(
    sandbox: Sandbox, backend: str
) -> None:
    from playwright.async_api import expect

    inbox = f"inspect-{backend}"
    customer, token, agent = await _hooked_account(sandbox, inbox)
    call_id = await sandbox.place_call(token, agent, "+15005550006")
    await sandbox.wait_deliveries(
        lambda items: len(items) == 2 and all(d["status"] == "delivered" for d in items),
        customerId=customer,
    )
    watch = Watch()
    async with chromium() as browser:
        context = await new_context(browser, watch)
        page = await open_page(context, watch)
        await signed_in(page, await link(sandbox), sandbox.base_url)
        await page.goto(f"{sandbox.base_url}/dashboard#/webhooks/{inbox}")
        await expect(page.locator("#inbox-name")).to_have_value(inbox)
        await expect(page.locator("#messages button")).to_have_count(2)
        await page.locator("#messages button", has_text="call.ended").click()
        await expect(page.locator("#verdict")).to_contain_text("Signature verified")
        headers = page.locator("#message-headers")
        await expect(headers).to_contain_text("x-unlimcall-signature")
        await expect(headers).to_contain_text("x-unlimcall-delivery")
        await expect(page.locator("#message-json")).to_contain_text(f'"callId": "{call_id}"')
        await page.get_by_role("button", name="Raw").click()
        await expect(page.locator("#message-raw")).to_contain_text(f'"callId":"{call_id}"')
        await page.get_by_role("button", name="Copy as curl").click()
        curl = page.locator("#curl")
        await expect(curl).to_contain_text(
            f"curl -X POST '{sandbox.base_url}/_sandbox/inbox/{inbox}'"
        )
        await expect(curl).to_contain_text("-H 'x-unlimcall-signature: t=")
        await expect(curl).to_contain_text("--data-raw '{")
        await page.get_by_label("Send to").fill("http://127.0.0.1:3000/hooks")
        await expect(curl).to_contain_text("curl -X POST 'http://127.0.0.1:3000/hooks'")
        await page.get_by_role("link", name="Open its call").click()
        await expect(page.locator("#story-id")).to_have_text(call_id)
        await page.go_back()
        await expect(page.locator("#verdict")).to_be_visible()
        await page.get_by_role("button", name="Replay").click()
        await expect(page.locator("#messages button")).to_have_count(3, timeout=20_000)
        newest = page.locator("#messages button").first
        await expect(newest).to_contain_text("call.ended")
        await expect(newest).to_contain_text("verified")
        await context.close()
    watch.clean()


async def test_the_keyboard_reaches_every_view_and_a_calls_story(
    sandbox: Sandbox, backend: str
) -> None:
    from playwright.async_api import expect

    customer, token, agent = await _hooked_account(sandbox, f"keys-{backend}")
    call_id = await sandbox.place_call(token, agent, "+15005550002")
    await sandbox.wait_call(call_id)
    watch = Watch()
    async with chromium() as browser:
        context = await new_context(browser, watch, SMALL_LAPTOP)
        page = await open_page(context, watch)
        await signed_in(page, await link(sandbox), sandbox.base_url)
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
        for name in ("Calls", "Webhooks", "Account", "Call floor"):
            for _ in range(40):
                if await page.evaluate("document.activeElement.textContent") == name:
                    break
                await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.textContent") == name
            await page.keyboard.press("Enter")
            heading = page.locator("main .view:not([hidden]) h1")
            await expect(heading).to_be_focused()
            await page.keyboard.press("Shift+Tab")  # back into the header, from the heading
            await page.evaluate("document.querySelector('.skip').focus()")
        await page.select_option("#account", customer)
        await page.goto(f"{sandbox.base_url}/dashboard#/calls")
        row_link = page.locator(f'#calls tr[data-call="{call_id}"] a')
        await row_link.focus()
        await page.keyboard.press("Enter")
        await expect(page.locator("#story-id")).to_have_text(call_id)
        await expect(page.locator("#timeline")).to_contain_text("busy")
        await context.close()
    watch.clean()
