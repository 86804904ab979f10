"""``POST /oauth/token`` (client_credentials) and RFC 8414 discovery metadata."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post

from unlimcall_sandbox.server.db.engine import read, write
from unlimcall_sandbox.server.http import runtime
from unlimcall_sandbox.server.oauth import Client, client_id_of, malformed_basic, parse_form
from unlimcall_sandbox.server.services import tokens as token_service
from unlimcall_sandbox.server.settings import ALL_SCOPES

Req = Request[Any, Any, Any]
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    body = {"error": error, "error_description": description, "message": description}
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers={**_NO_STORE, **(headers or {})},
    )


@post("/oauth/token")
async def token(request: Req) -> Response[bytes]:
    rt = runtime(request)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return _oauth_error(
            400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded."
        )
    try:
        form, datalist = parse_form(await request.body())
    except UnicodeDecodeError:
        return _oauth_error(400, "invalid_request", "The body is not UTF-8.")
    repeated = sorted(k for k, v in datalist.items() if len(v) > 1)
    if repeated:
        return _oauth_error(400, "invalid_request", f"Parameters repeated: {', '.join(repeated)}.")
    if malformed_basic(request.headers.get("authorization")):
        return _oauth_error(
            401,
            "invalid_client",
            "The HTTP Basic credentials cannot be decoded (base64 of UTF-8 'id:secret').",
            {"WWW-Authenticate": 'Basic realm="UnlimCall Sandbox"'},
        )
    client = None
    client_id = client_id_of(request.headers.get("authorization"), form)
    if client_id and len(client_id) <= 64:
        async with read(rt.engine) as conn:
            row = await token_service.get_oauth_client(conn, client_id)
        if row is not None:
            client = Client(
                client_id=row.client_id,
                account_id=int(row.account_id),
                secret_hash=row.secret_hash,
                scopes=tuple(row.scopes.split()),
            )
    status, body, headers, issued = rt.oauth.exchange(
        dict(request.headers.items()) | {"Authorization": request.headers.get("authorization", "")},
        form,
        datalist,
        client,
    )
    if issued is not None:
        async with write(rt.engine) as conn:
            await token_service.store_oauth_access_token(
                conn,
                issued.token_hash,
                issued.access_token[:12],
                issued.client.client_id,
                issued.client.account_id,
                issued.scopes,
                rt.clock.real_now(),
                issued.expires_at,
            )
    if "error" in body:
        body.setdefault("message", body.get("error_description") or body["error"])
    out_headers = {k: v for k, v in headers}
    out_headers.update(_NO_STORE)
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers=out_headers,
    )


@get("/.well-known/oauth-authorization-server")
async def metadata(request: Req) -> dict[str, Any]:
    settings = runtime(request).settings
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    return {
        "issuer": base,
        "token_endpoint": f"{base}/oauth/token",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "scopes_supported": list(ALL_SCOPES),
        "service_documentation": f"{base}/v1/openapi.json",
    }
