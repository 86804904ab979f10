"""OAuth 2.0 client_credentials (RFC 6749 §4.4) through authlib — all the glue in one place.

authlib's server classes are synchronous while our storage is async, so the token endpoint
runs in three steps: (1) read the form and the client id (Basic or POST) and load that
client from the database; (2) run authlib synchronously with the preloaded client, which
validates the grant, authenticates the client, checks the scope and generates the token,
collecting it through ``save_token``; (3) persist the token's hash, then answer with
authlib's status, body and headers (``Cache-Control: no-store``; §5.2 errors).
"""

from __future__ import annotations

import base64
import hmac
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator

from unlimcall_sandbox.server.auth import hash_secret, new_oauth_token
from unlimcall_sandbox.server.settings import ALL_SCOPES

MAX_FORM_BYTES = 8192


@dataclass(frozen=True, slots=True)
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    account_id: int
    secret_hash: str
    scopes: tuple[str, ...]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(self.scopes)
        return " ".join(s for s in scope_to_list(scope) if s in self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(hash_secret(client_secret), self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, form: dict[str, str], datalist: dict[str, list[str]]) -> None:
        self._form = form
        self._datalist = datalist

    @property
    def data(self) -> dict[str, str]:
        return self._form

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(
        self,
        uri: str,
        headers: dict[str, str],
        form: dict[str, str],
        datalist: dict[str, list[str]],
    ) -> None:
        super().__init__(method="POST", uri=uri, headers=headers)
        self._form = form
        self.payload = _Payload(form, datalist)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _Grant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

    def validate_requested_scope(self) -> None:
        """Every requested scope must be one the client holds (RFC 6749 §3.3, §5.2)."""
        scope = self.request.payload.scope
        if not scope:
            return
        requested = set(scope_to_list(scope))
        client: Client = self.request.client
        missing = sorted(requested - set(client.scopes))
        if missing:
            raise InvalidScopeError(description=f"The client may not request: {' '.join(missing)}")


@dataclass
class _Exchange:
    client: Client | None
    issued: dict[str, Any] | None = None
    response: tuple[int, dict[str, Any], list[tuple[str, str]]] = field(
        default_factory=lambda: (500, {}, [])
    )


_current: ContextVar[_Exchange] = ContextVar("oauth_exchange")


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, ttl: int) -> None:
        super().__init__(scopes_supported=list(ALL_SCOPES))
        self.register_grant(_Grant)
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: new_oauth_token(),
                expires_generator=lambda *_: ttl,
            ),
        )

    def query_client(self, client_id: str) -> Client | None:
        ex = _current.get()
        if ex.client is not None and ex.client.client_id == client_id:
            return ex.client
        return None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        _current.get().issued = {**token, "_client": request.client}

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None  # no listeners: authlib's framework integrations wire signals here

    def create_oauth2_request(self, request: _Request) -> _Request:
        return request

    def handle_response(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        return status, body, headers


def malformed_basic(authorization: str | None) -> bool:
    """True when the request uses HTTP Basic but its credentials cannot be decoded (not
    base64, not UTF-8, no ``:``): RFC 6749 §5.2 ``invalid_client``, never a server error
    (authlib raises while decoding such a header)."""
    if not authorization or authorization[:6].lower() != "basic ":
        return False
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return True
    return ":" not in decoded


def client_id_of(authorization: str | None, form: dict[str, str]) -> str | None:
    """The client id the request claims, from HTTP Basic or the form (for preloading)."""
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        user, sep, _ = decoded.partition(":")
        return unquote(user) if sep else None
    return form.get("client_id")


def parse_form(body: bytes) -> tuple[dict[str, str], dict[str, list[str]]]:
    text = body.decode("utf-8")
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False)
    datalist: dict[str, list[str]] = {}
    for key, value in pairs:
        datalist.setdefault(key, []).append(value)
    return {k: v[0] for k, v in datalist.items()}, datalist


@dataclass(frozen=True, slots=True)
class Issued:
    access_token: str
    token_hash: str
    client: Client
    scopes: list[str]
    expires_at: float


class TokenEndpoint:
    """One per process; ``exchange`` is synchronous and touches no I/O."""

    def __init__(self, ttl: int) -> None:
        self.server = _Server(ttl)
        self.ttl = ttl

    def exchange(
        self,
        headers: dict[str, str],
        form: dict[str, str],
        datalist: dict[str, list[str]],
        client: Client | None,
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]], Issued | None]:
        ex = _Exchange(client=client)
        token = _current.set(ex)
        try:
            request = _Request(
                "https://sandbox.unlimcall.local/oauth/token", headers, form, datalist
            )
            status, body, out_headers = self.server.create_token_response(request)
        finally:
            _current.reset(token)
        issued = None
        if status == 200 and ex.issued is not None:
            tok = ex.issued
            scopes = str(tok.get("scope") or "").split()
            if not scopes and client is not None:
                scopes = list(client.scopes)
                body["scope"] = " ".join(scopes)
            issued = Issued(
                access_token=tok["access_token"],
                token_hash=hash_secret(tok["access_token"]),
                client=tok["_client"],
                scopes=scopes,
                expires_at=time.time() + self.ttl,
            )
        return status, body, out_headers, issued
