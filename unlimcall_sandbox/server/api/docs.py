"""The front door: the landing page at ``/``; the contract for code generators at
``/v1/openapi.json`` (its ``servers`` is this sandbox) and the original, byte for byte, at
``/openapi/unlimcall-openapi.json``; the control plane's description at
``/_sandbox/openapi.json``; Swagger UI, shipped in the package, at ``/docs`` and
``/_sandbox/docs``. All public: the descriptions hold no secret, and "Try it out" needs a
token the user gives to Swagger UI's Authorize button."""

from __future__ import annotations

import html
import json
from functools import lru_cache
from typing import Any

from litestar import Request, Response, Router, get
from litestar.static_files import create_static_files_router

from unlimcall_sandbox.resources import directory
from unlimcall_sandbox.server.api import control_openapi
from unlimcall_sandbox.server.base_url import advertised_base
from unlimcall_sandbox.server.base_url import base_for as base_for  # importable from here too

Req = Request[Any, Any, Any]
STATIC = directory("server", "static", "docs")
ORIGINAL_PATH = "/openapi/unlimcall-openapi.json"
CONTRACT_PATH = "/v1/openapi.json"
CONTROL_PATH = "/_sandbox/openapi.json"
# Copies kept per base URL: a sandbox is reached by a handful (loopback names and ports).
_CACHED = 16


def _encode(document: dict[str, Any]) -> bytes:
    # The contract file's own layout, so that a diff shows only what changed.
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


class Documents:
    """What the front door serves; what depends on the base URL is rendered once per URL."""

    def __init__(self, contract: bytes) -> None:
        self.original = contract
        self.contract = lru_cache(maxsize=_CACHED)(self._contract)
        self.control_plane = lru_cache(maxsize=_CACHED)(self._control_plane)
        self.landing = lru_cache(maxsize=_CACHED)(self._landing)
        self.page = lru_cache(maxsize=4)(self._page)

    def _contract(self, base: str) -> bytes:
        """The contract with ``servers`` pointing here; every other byte of meaning kept."""
        document = json.loads(self.original)
        document["servers"] = [{"url": f"{base}/v1", "description": "This UnlimCall sandbox"}]
        return _encode(document)

    def _control_plane(self, base: str) -> bytes:
        document = control_openapi.build(json.loads(self.original)["components"]["schemas"])
        document["servers"] = [{"url": base, "description": "This UnlimCall sandbox"}]
        return _encode(document)

    def _landing(self, base: str) -> bytes:
        template = (STATIC / "index.html").read_text(encoding="utf-8")
        return template.replace("{{base}}", html.escape(base)).encode()

    def _page(self, title: str, spec: str, hint: str) -> bytes:
        template = (STATIC / "swagger.html").read_text(encoding="utf-8")
        for key, value in (("title", title), ("spec", spec), ("hint", hint)):
            template = template.replace("{{" + key + "}}", html.escape(value))
        return template.encode()


def documents(request: Req) -> Documents:
    found: Documents = request.app.state.documents
    return found


def _answer(content: bytes, media_type: str, by_host: bool = False) -> Response[bytes]:
    headers = {"Vary": "Host"} if by_host else {}
    return Response(content=content, media_type=media_type, headers=headers)


def contract_response(request: Req) -> Response[bytes]:
    """``GET /v1/openapi.json`` (routed in ``api.v1``)."""
    body = documents(request).contract(advertised_base(request))
    return _answer(body, "application/json", by_host=True)


@get("/", include_in_schema=False)
async def landing(request: Req) -> Response[bytes]:
    body = documents(request).landing(advertised_base(request))
    return _answer(body, "text/html", by_host=True)


@get(ORIGINAL_PATH, include_in_schema=False)
async def original_contract(request: Req) -> Response[bytes]:
    return _answer(documents(request).original, "application/json")


@get(CONTROL_PATH, include_in_schema=False)
async def control_plane_contract(request: Req) -> Response[bytes]:
    body = documents(request).control_plane(advertised_base(request))
    return _answer(body, "application/json", by_host=True)


@get("/docs", include_in_schema=False)
async def api_docs(request: Req) -> Response[bytes]:
    hint = (
        "Authorize with a token (serve prints a demo token), then Try it out. Every "
        "request from this page goes to this sandbox, the OAuth token request too."
    )
    body = documents(request).page("UnlimCall API (/v1)", CONTRACT_PATH, hint)
    return _answer(body, "text/html")


@get("/_sandbox/docs", include_in_schema=False)
async def control_plane_docs(request: Req) -> Response[bytes]:
    hint = "Authorize with the admin token (UNLIMCALL_ADMIN_TOKEN), then Try it out."
    body = documents(request).page("Control plane (/_sandbox)", CONTROL_PATH, hint)
    return _answer(body, "text/html")


@get("/favicon.ico", include_in_schema=False)
async def favicon_ico() -> Response[bytes]:
    return _answer((STATIC / "favicon.ico").read_bytes(), "image/x-icon")


@get("/favicon.svg", include_in_schema=False)
async def favicon_svg() -> Response[bytes]:
    return _answer((STATIC / "favicon.svg").read_bytes(), "image/svg+xml")


static_router = create_static_files_router(
    path="/docs/static", directories=[STATIC], include_in_schema=False
)

docs_router = Router(
    path="/",
    route_handlers=[
        landing,
        original_contract,
        control_plane_contract,
        api_docs,
        control_plane_docs,
        favicon_ico,
        favicon_svg,
        static_router,
    ],
)
