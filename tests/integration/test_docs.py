"""The front door: the contract for code generators (``servers`` is this sandbox) beside the
original file, the control plane's description, the landing page, the offline Swagger UI
pages and their assets, the favicon — and, in Chromium, /docs rendering and answering with
no request leaving the sandbox."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator
from litestar.routes import HTTPRoute

from tests.support.browser import LAUNCH_ARGS
from tests.support.contract import SPEC_PATH
from tests.support.sandbox import ADMIN, Sandbox
from unlimcall_sandbox.server.api import control_openapi
from unlimcall_sandbox.server.api.docs import STATIC, base_for
from unlimcall_sandbox.server.settings import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


class Page(HTMLParser):
    """The parts of an HTML page these tests look at."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.lang: str | None = None
        self.title = ""
        self.headings: list[str] = []
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.data: dict[str, str] = {}
        self._in: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = values.get("lang")
        for attr in ("href", "src"):
            if attr in values:
                self.urls.append((tag, attr, values[attr]))
        self.data.update({k: v for k, v in values.items() if k.startswith("data-")})
        if tag in ("title", "h1", "h2"):
            self._in = tag
            if tag != "title":
                self.headings.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in is not None:
            self.headings[-1] += data

    def links(self, tag: str, attr: str) -> list[str]:
        return [v for t, a, v in self.urls if (t, a) == (tag, attr)]


def _same_origin(url: str) -> bool:
    """A URL that cannot leave the sandbox: a path on the page's own origin."""
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and url.startswith("/")


def _without_servers(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "servers"}


# -- the contracts ---------------------------------------------------------------------------


async def test_the_contract_for_code_generators_points_here_and_is_otherwise_the_file(
    sandbox: Sandbox,
) -> None:
    r = await sandbox.client.get("/v1/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    served = r.json()
    original = json.loads(SPEC_PATH.read_bytes())
    assert served["servers"] == [
        {"url": f"{sandbox.base_url}/v1", "description": "This UnlimCall sandbox"}
    ]
    assert original["servers"][0]["url"] == "https://api.unlimcall.com/v1"
    assert _without_servers(served) == _without_servers(original)
    assert list(served) == list(original)  # same key order: a diff shows only `servers`
    assert "host" in r.headers["vary"].lower()
    again = await sandbox.client.get("/v1/openapi.json")
    assert again.content == r.content


async def test_the_original_contract_is_the_file_byte_for_byte(sandbox: Sandbox) -> None:
    r = await sandbox.client.get("/openapi/unlimcall-openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.content == SPEC_PATH.read_bytes()


async def test_the_advertised_base_trusts_only_loopback_hosts(sandbox: Sandbox) -> None:
    async def servers(host: str) -> str:
        r = await sandbox.client.get("/v1/openapi.json", headers={"Host": host})
        assert r.status_code == 200
        url: str = r.json()["servers"][0]["url"]
        return url

    assert await servers("localhost:9999") == "http://localhost:9999/v1"
    assert await servers("[::1]:8081") == "http://[::1]:8081/v1"
    # Anyone can send any Host: a foreign one gets the configured base URL, never itself.
    configured = f"{sandbox.settings.base_url}/v1"
    assert await servers("evil.example") == configured
    assert await servers("evil.example:8080") == configured
    assert await servers("localhost.evil.example") == configured
    assert await servers("localhost:99999") == configured
    r = await sandbox.client.get("/_sandbox/openapi.json", headers={"Host": "evil.example"})
    assert r.json()["servers"][0]["url"] == sandbox.settings.base_url
    # Each base URL is rendered once and kept, a bounded number of them.
    cache = sandbox.app.state.documents.contract.cache_info()
    assert cache.currsize <= cache.maxsize


def test_base_url_rules() -> None:
    plain = Settings(host="127.0.0.1", port=8080)
    assert base_for(plain, "http", "127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert base_for(plain, "https", "LOCALHOST:8443") == "https://localhost:8443"
    assert base_for(plain, "http", "app.localhost") == "http://app.localhost"
    assert base_for(plain, "http", "127.1.2.3:1") == "http://127.1.2.3:1"
    assert base_for(plain, "http", None) == "http://127.0.0.1:8080"
    assert base_for(plain, "http", "10.0.0.5:8080") == "http://127.0.0.1:8080"
    assert base_for(plain, "http", "a b") == "http://127.0.0.1:8080"
    assert base_for(plain, "http", "localhost:80/x") == "http://127.0.0.1:8080"
    bound = Settings(host="10.0.0.5", port=9000)
    assert base_for(bound, "http", "10.0.0.5:9000") == "http://10.0.0.5:9000"
    assert base_for(bound, "http", "10.0.0.6:9000") == "http://10.0.0.5:9000"
    public = Settings(public_url="https://sandbox.example.test/")
    assert base_for(public, "http", "localhost:8080") == "https://sandbox.example.test"


async def test_the_control_plane_description_covers_every_route(sandbox: Sandbox) -> None:
    r = await sandbox.client.get("/_sandbox/openapi.json")  # public: no token
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    spec = r.json()
    assert spec["servers"][0]["url"] == sandbox.base_url
    assert spec["components"]["securitySchemes"]["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["adminToken"]["description"],
    }
    described = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    routed = set()
    for router in control_openapi.ROUTERS:
        for route in router.routes:
            assert isinstance(route, HTTPRoute)
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            routed |= {(m, path) for m in route.methods if m not in ("OPTIONS", "HEAD")}
    assert described == routed
    # The inbox's receiver is the one operation without the admin token.
    open_ops = [
        (m, p) for p, item in spec["paths"].items() for m, op in item.items() if "security" in op
    ]
    assert open_ops == [("post", "/_sandbox/inbox/{name}")]
    # Every $ref resolves.
    for ref in re.findall(r'"#/components/schemas/([^"]+)"', r.text):
        assert ref in spec["components"]["schemas"], ref


def test_every_control_plane_body_is_described() -> None:
    """A new POST/PUT/PATCH under /_sandbox must say what it reads (control_openapi.BODIES),
    or that it reads nothing; a struct read with read_struct must be the one described."""
    described = set(control_openapi.BODIES) | control_openapi.BODILESS | control_openapi.ANY_BODY
    for router in control_openapi.ROUTERS:
        for route in router.routes:
            assert isinstance(route, HTTPRoute)
            for handler in route.route_handlers:
                name = handler.handler_name
                if handler.fn.__module__.startswith("litestar."):
                    continue
                if handler.http_methods & {"POST", "PUT", "PATCH"}:
                    assert name in described, f"{name}: add it to control_openapi.BODIES"
                read = re.search(r"read_struct\(request, (\w+)\)", inspect.getsource(handler.fn))
                if read is not None:
                    body = control_openapi.BODIES.get(name)
                    assert getattr(body, "__name__", body) == read[1], name


async def test_control_plane_answers_as_described(sandbox: Sandbox) -> None:
    spec = (await sandbox.client.get("/_sandbox/openapi.json")).json()

    def validator(operation: dict[str, Any], status: int) -> Draft202012Validator:
        schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
        return Draft202012Validator({**schema, "components": spec["components"]})

    create = spec["paths"]["/_sandbox/accounts"]["post"]
    body = {"companyName": "Docs Co", "primaryContactEmail": "docs@test.example"}
    request_schema = create["requestBody"]["content"]["application/json"]["schema"]
    Draft202012Validator({**request_schema, "components": spec["components"]}).validate(body)
    r = await sandbox.client.post("/_sandbox/accounts", json=body, headers=sandbox.admin)
    assert r.status_code == 201
    validator(create, 201).validate(r.json())
    r = await sandbox.client.post("/_sandbox/accounts", json=body)
    assert r.status_code == 401
    validator(create, 401).validate(r.json())


# -- the pages -------------------------------------------------------------------------------

LANDING_LINKS = {
    "/dashboard",
    "/docs",
    "/_sandbox/docs",
    "/v1/openapi.json",
    "/openapi/unlimcall-openapi.json",
    "/_sandbox/openapi.json",
    "/healthz",
    "/metrics",
}


async def test_the_landing_page_links_everything_and_every_link_answers(
    sandbox: Sandbox,
) -> None:
    r = await sandbox.client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    page = Page(r.text)
    assert page.lang == "en"
    assert page.title.strip() == "UnlimCall Sandbox"
    assert page.headings[0] == "UnlimCall Sandbox"
    assert len([h for h in page.headings if h]) >= 3
    assert "prefers-color-scheme: dark" in r.text
    anchors = page.links("a", "href")
    assert set(anchors) >= LANDING_LINKS
    assert f"{sandbox.base_url}/v1/me" in r.text  # the commands name this sandbox
    assert "make serve" in r.text and "make test" in r.text
    for _tag, _attr, url in page.urls:
        assert _same_origin(url), url
    for url in anchors + page.links("link", "href"):
        answer = await sandbox.client.get(url)
        assert answer.status_code == 200, url


@pytest.mark.parametrize(
    ("path", "spec_url"),
    [("/docs", "/v1/openapi.json"), ("/_sandbox/docs", "/_sandbox/openapi.json")],
)
async def test_docs_pages_and_their_assets_are_served_by_the_sandbox(
    sandbox: Sandbox, path: str, spec_url: str
) -> None:
    r = await sandbox.client.get(path)  # public, also the control plane's: no token
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    page = Page(r.text)
    assert page.lang == "en" and page.title and page.headings
    assert page.data["data-spec-url"] == spec_url
    for _tag, _attr, url in page.urls:
        assert _same_origin(url), url
    scripts = page.links("script", "src")
    styles = page.links("link", "href")
    assert "/docs/static/swagger-ui-bundle.js" in scripts
    assert "/docs/static/swagger-ui.css" in styles
    expected = {".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for url in [*scripts, *styles, spec_url]:
        answer = await sandbox.client.get(url)
        assert answer.status_code == 200, url
        wanted = expected.get(Path(url).suffix, "application/json")
        assert wanted in answer.headers["content-type"], (url, answer.headers["content-type"])
    init = await sandbox.client.get("/docs/static/docs.js")
    assert "validatorUrl: null" in init.text


async def test_favicon(sandbox: Sandbox) -> None:
    r = await sandbox.client.get("/favicon.ico")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/x-icon"
    assert r.content[:4] == b"\x00\x00\x01\x00"
    r = await sandbox.client.get("/favicon.svg")
    assert (r.status_code, r.headers["content-type"]) == (200, "image/svg+xml")


def test_the_docs_assets_are_package_data() -> None:
    """``server/static/docs/*`` in package-data takes files, not folders."""
    assert '"server/static/docs/*"' in PYPROJECT.read_text()
    assert all(p.is_file() for p in STATIC.iterdir())
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE", "README.txt"} <= {
        p.name for p in STATIC.iterdir()
    }
    # The vendored files are the ones README.txt names (unmodified swagger-ui-dist).
    notes = (STATIC / "README.txt").read_text()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()
        assert re.search(rf"{re.escape(name)}\s+sha256 {digest}", notes), name


# -- in a browser ----------------------------------------------------------------------------


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
async def test_docs_render_and_try_it_out_without_leaving_the_sandbox(sandbox: Sandbox) -> None:
    from playwright.async_api import Request, Route, async_playwright, expect

    client = await sandbox.admin_post("/accounts/1042/oauth-clients", {"scopes": ["read:balance"]})
    contract = json.loads(SPEC_PATH.read_bytes())
    v1_ops = sum(  # Swagger UI lists the contract's webhooks too (OpenAPI 3.1)
        len(item) for part in ("paths", "webhooks") for item in contract.get(part, {}).values()
    )
    control = (await sandbox.client.get("/_sandbox/openapi.json")).json()
    control_ops = sum(len(item) for item in control["paths"].values())
    origin = urlsplit(sandbox.base_url)
    attempted: list[str] = []

    async def only_the_sandbox(route: Route, request: Request) -> None:
        target = urlsplit(request.url)
        if (target.scheme, target.hostname, target.port) == (
            origin.scheme,
            origin.hostname,
            origin.port,
        ):
            await route.continue_()
        else:
            attempted.append(request.url)
            await route.abort()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=LAUNCH_ARGS,
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1000})
            await context.route("**/*", only_the_sandbox)
            errors: list[str] = []
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            await page.goto(f"{sandbox.base_url}/docs")
            await expect(page.locator(".opblock")).to_have_count(v1_ops, timeout=15_000)
            await expect(page.locator(".servers select")).to_contain_text(f"{sandbox.base_url}/v1")
            # OAuth client_credentials: the contract's tokenUrl is production's; the page
            # sends the token request to this sandbox instead (the route below would see it).
            await page.locator("button.authorize").first.click()
            oauth = page.locator(".auth-container", has_text="clientCredentials")
            await oauth.locator("#client_id_clientCredentials").fill(client["clientId"])
            await oauth.locator("#client_secret_clientCredentials").fill(client["clientSecret"])
            await oauth.locator(
                "label[for='read:balance-clientCredentials-checkbox-oauth2']"
            ).click()
            await oauth.locator("button.authorize").click()
            await expect(oauth.get_by_role("button", name="Remove authorization")).to_be_visible()
            await oauth.get_by_role("button", name="Close").click()
            balance = page.locator(".opblock-get", has=page.locator('[data-path="/balance"]'))
            await balance.locator(".opblock-summary").click()
            await balance.get_by_role("button", name="Try it out").click()
            await balance.get_by_role("button", name="Execute").click()
            answer = balance.locator(".live-responses-table tr.response .response-col_status").first
            await expect(answer).to_have_text("200", timeout=15_000)
            await expect(balance.locator(".live-responses-table")).to_contain_text("currency")

            await page.goto(f"{sandbox.base_url}/_sandbox/docs")
            await expect(page.locator(".opblock")).to_have_count(control_ops, timeout=15_000)
            await page.locator("button.authorize").first.click()
            admin = page.locator(".auth-container", has_text="adminToken")
            await admin.locator("#auth-bearer-value").fill(ADMIN)
            await admin.locator("button.authorize").click()
            await expect(admin.get_by_role("button", name="Remove authorization")).to_be_visible()
            await admin.get_by_role("button", name="Close").click()
            clock = page.locator(".opblock-get", has=page.locator('[data-path="/_sandbox/clock"]'))
            await clock.locator(".opblock-summary").click()
            await clock.get_by_role("button", name="Try it out").click()
            await clock.get_by_role("button", name="Execute").click()
            answer = clock.locator(".live-responses-table tr.response .response-col_status").first
            await expect(answer).to_have_text("200", timeout=15_000)
            await expect(clock.locator(".live-responses-table")).to_contain_text("sandboxTime")
            await context.close()
        finally:
            await browser.close()
    assert attempted == []
    assert errors == []
