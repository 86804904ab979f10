"""``POST /oauth/token`` (client_credentials) and RFC 8414 discovery metadata."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post

from unlimcall_sandbox.server.base_url import advertised_base
from unlimcall_sandbox.server.http import runtime
from unlimcall_sandbox.server.oauth import CHALLENGE, Client, Refusal, check_request, parse_form
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import tokens as token_service
from unlimcall_sandbox.server.settings import ALL_SCOPES

Req = Request[Any, Any, Any]
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _answer(status: int, body: dict[str, Any]) -> Response[bytes]:
    """Every token endpoint answer: no-store (RFC 6749 §5.1, §5.2); a 401 carries the
    Basic challenge (RFC 7617; RFC 9110 §15.5.2: a 401 always has one); an error also
    carries this sandbox's ``message`` beside ``error_description``."""
    headers = dict(_NO_STORE)
    if status == 401:
        headers[CHALLENGE[0]] = CHALLENGE[1]
    if "error" in body:
        body.setdefault("message", body.get("error_description") or body["error"])
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _refused(refusal: Refusal) -> Response[bytes]:
    body = {"error": refusal.error, "error_description": refusal.description}
    return _answer(refusal.status, body)


@post("/oauth/token")
async def token(request: Req) -> Response[bytes]:
    rt = runtime(request)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return _refused(
            Refusal(
                400,
                "invalid_request",
                "Content-Type must be application/x-www-form-urlencoded.",
            )
        )
    try:
        form, datalist = parse_form(await request.body())
    except UnicodeDecodeError:
        return _refused(Refusal(400, "invalid_request", "The body is not UTF-8."))
    authorization = request.headers.get("authorization")
    client_id, refusal = check_request(authorization, form, datalist)
    if refusal is not None:
        return _refused(refusal)
    client = None
    if client_id and len(client_id) <= 64:
        async with rt.db.read() as conn:
            row = await token_service.get_oauth_client(conn, client_id)
            account = None if row is None else await account_service.get(conn, row.account_id)
        if row is not None and account is not None:
            client = Client(
                client_id=row.client_id,
                account_id=int(row.account_id),
                secret_hash=row.secret_hash,
                scopes=tuple(row.scopes.split()),
                suspended=account.status == "suspended",
            )
    status, body, _headers, issued = rt.oauth.exchange(
        dict(request.headers.items()) | {"Authorization": authorization or ""},
        form,
        datalist,
        client,
    )
    if issued is not None:
        async with rt.db.write() as conn:
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
    return _answer(status, body)


@get("/.well-known/oauth-authorization-server")
async def metadata(request: Req) -> Response[dict[str, Any]]:
    """RFC 8414 §2. ``issuer`` and ``token_endpoint`` from ``UNLIMCALL_PUBLIC_URL``, or from
    the request's Host only when it names this machine (``server.base_url``).
    ``response_types_supported`` is REQUIRED and lists response types as RFC 7591 §2 does,
    where a client_credentials client has none (§2.1): ``none``, the registered response
    type for "no credential from the authorization endpoint" — an empty array is refused
    by metadata validators as missing, and ``code``/``token`` would claim grants this
    server does not have (it has no authorization endpoint, §2 allows that)."""
    base = advertised_base(request)
    document = {
        "issuer": base,
        "token_endpoint": f"{base}/oauth/token",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["none"],
        "scopes_supported": list(ALL_SCOPES),
        "service_documentation": f"{base}/v1/openapi.json",
    }
    return Response(content=document, headers={"Vary": "Host"})
