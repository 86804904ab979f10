"""OAuth 2.0 client_credentials (RFC 6749 §4.4) through authlib — all the glue in one place.

authlib's server classes are synchronous while our storage is async, so the token endpoint
runs in four steps: (1) ``check_request`` refuses what RFC 6749 refuses before any lookup
(repeated or missing parameters, two authentication methods, no or undecodable
credentials) and names the client the request claims; (2) the caller loads that client
from the database; (3) authlib runs synchronously with the preloaded client, validating the
grant, authenticating the client, checking the scope and generating the token, collected
through ``save_token``; (4) the caller persists the token's hash and answers with the
status and body (``Cache-Control: no-store``; §5.2 errors).

Every client authentication failure is one answer (§5.2 ``invalid_client``): 401 with the
Basic challenge of RFC 7617 and the same description whether the client id is unknown or
the secret wrong, so the endpoint never tells which client ids exist. Error descriptions
are plain English in the character set §5.2 allows, and never echo what cannot be shown.
"""

from __future__ import annotations

import base64
import hmac
import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidScopeError,
    OAuth2Error,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator

from unlimcall_sandbox.server.auth import hash_secret, new_oauth_token
from unlimcall_sandbox.server.clock import Clock
from unlimcall_sandbox.server.settings import ALL_SCOPES

MAX_FORM_BYTES = 8192
REALM = "UnlimCall Sandbox"
# RFC 7617 §2: the challenge of every 401 the token endpoint answers (RFC 6749 §5.2).
CHALLENGE = ("WWW-Authenticate", f'Basic realm="{REALM}"')
AUTH_FAILED = "Client authentication failed."
SUSPENDED = "Client authentication failed: the client's account is suspended."
NO_CREDENTIALS = (
    "Client authentication failed: no client credentials. Send the client id and secret "
    "with HTTP Basic (client_secret_basic) or as client_id and client_secret in the body "
    "(client_secret_post)."
)
# RFC 6749 §3.3: scope-token = 1*NQCHAR (%x21 / %x23-5B / %x5D-7E).
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True, slots=True)
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    account_id: int
    secret_hash: str
    scopes: tuple[str, ...]
    suspended: bool = False

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
        if not all(_SCOPE_TOKEN.fullmatch(s) for s in requested):
            raise InvalidScopeError(description="The scope parameter is malformed.")
        client: Client = self.request.client
        missing = sorted(requested - set(client.scopes))
        if missing:
            raise InvalidScopeError(
                description=f"The client may not request scope {' '.join(missing)}."
            )


class ClientAuthFailed(InvalidClientError):  # type: ignore[misc]
    """``invalid_client`` as RFC 6749 §5.2 and RFC 7617 want it: 401 with the Basic
    challenge (authlib's has no realm and a parameter list Basic does not define)."""

    status_code = 401

    def __init__(self, description: str = AUTH_FAILED) -> None:
        super().__init__(description=description, status_code=401)

    def get_headers(self) -> list[tuple[str, str]]:
        return [*OAuth2Error.get_headers(self), CHALLENGE]


class _UnsupportedGrant(OAuth2Error):  # type: ignore[misc]
    error = "unsupported_grant_type"
    description = "This server issues tokens for grant_type=client_credentials only."


@dataclass
class _Exchange:
    client: Client | None
    issued: dict[str, Any] | None = None


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

    def authenticate_client(
        self, request: OAuth2Request, methods: list[str], endpoint: str = "token"
    ) -> Client:
        """One answer for every failure (unknown id, wrong secret, no secret); a client of a
        suspended account authenticates no more (told so: it proved it holds the secret)."""
        try:
            client: Client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError:
            raise ClientAuthFailed() from None
        if client.suspended:
            raise ClientAuthFailed(SUSPENDED)
        return client

    def handle_error_response(
        self, request: OAuth2Request, error: OAuth2Error
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        if isinstance(error, UnsupportedGrantTypeError):
            error = _UnsupportedGrant()  # authlib's echoes the request's grant_type
        elif isinstance(error, InvalidClientError) and not isinstance(error, ClientAuthFailed):
            error = ClientAuthFailed()
        return self.handle_response(*error(self.get_error_uri(request, error)))

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


@dataclass(frozen=True, slots=True)
class Refusal:
    """A token request refused before any lookup: RFC 6749 §5.2 error and description."""

    status: int
    error: str
    description: str


def _basic(authorization: str) -> tuple[str, str] | None:
    """The (id, secret) of HTTP Basic credentials (RFC 7617, the parts form-encoded as
    RFC 6749 §2.3.1 says); None when they cannot be decoded: not base64, not UTF-8, no
    ``:``."""
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, secret = decoded.partition(":")
    return (unquote(user), unquote(secret)) if sep else None


def check_request(
    authorization: str | None, form: dict[str, str], datalist: dict[str, list[str]]
) -> tuple[str | None, Refusal | None]:
    """The client id the request claims (to preload), or why it is refused outright.

    RFC 6749 §3.2: no parameter twice; §4.4.2: ``grant_type`` is required; §2.3.1 "MUST NOT
    use more than one authentication method in each request" (HTTP Basic and a
    ``client_secret`` in the body); §5.2 ``invalid_client`` (401, RFC 7617 challenge) for
    credentials that are missing, undecodable or of another scheme. A body ``client_id``
    beside HTTP Basic only names the client (§3.2.1) and must be the same one."""
    repeated = sorted(k for k, v in datalist.items() if len(v) > 1)
    if repeated:
        return None, Refusal(
            400, "invalid_request", f"Parameters sent more than once: {', '.join(repeated)}."
        )
    if not form.get("grant_type"):
        return None, Refusal(400, "invalid_request", "The grant_type parameter is missing.")
    authorization = (authorization or "").strip()
    if authorization:
        scheme = authorization.split(None, 1)[0].lower()
        if scheme != "basic":
            return None, Refusal(
                401,
                "invalid_client",
                "Client authentication failed: the token endpoint takes HTTP Basic "
                "credentials, not this Authorization scheme.",
            )
        pair = _basic(authorization)
        if pair is None:
            return None, Refusal(
                401,
                "invalid_client",
                "The HTTP Basic credentials cannot be decoded (base64 of UTF-8 'id:secret').",
            )
        if "client_secret" in form:
            return None, Refusal(
                400,
                "invalid_request",
                "Client credentials were sent twice, with HTTP Basic and as client_secret in "
                "the body: use one authentication method.",
            )
        if "client_id" in form and form["client_id"] != pair[0]:
            return None, Refusal(
                400,
                "invalid_request",
                "The client_id in the body is not the client of the HTTP Basic credentials.",
            )
        return pair[0], None
    if not form.get("client_id") or not form.get("client_secret"):
        return None, Refusal(401, "invalid_client", NO_CREDENTIALS)
    return form["client_id"], None


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

    def __init__(self, ttl: int, clock: Clock) -> None:
        self.server = _Server(ttl)
        self.ttl = ttl
        self.clock = clock  # expiries are wall time (``real_now``)

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
                expires_at=self.clock.real_now() + self.ttl,
            )
        return status, body, out_headers, issued
