"""Bearer-token verification for ``/v1``: hashing, the per-process cache, scope checks.

Tokens are stored only as SHA-256 hex digests. A verified token is cached in-process for
``token_cache_ttl`` seconds, keyed by the token as presented (the process holds it anyway
while it answers; hashing it on every request cost ~1 µs of a ~35 µs ``GET /v1/me``), so
the hot path costs no hash and no database round-trip; revocation and account changes
drop the entries of this process at once and reach other processes within the TTL.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from unlimcall_sandbox.server.clock import Clock
from unlimcall_sandbox.server.db.port import Database
from unlimcall_sandbox.server.db.tables import accounts, tokens
from unlimcall_sandbox.server.errors import AccountSuspended, Unauthorized

PORTAL_PREFIX = "unl_live_"
OAUTH_PREFIX = "unl_oat_"
REALM = 'Bearer realm="unlimcall"'


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_portal_token() -> str:
    return PORTAL_PREFIX + secrets.token_urlsafe(32)


def new_oauth_token() -> str:
    return OAUTH_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    token_hash: str
    account_id: int
    scopes: frozenset[str]
    expires_at: float | None
    suspended: bool
    company_name: str
    email: str


def _invalid(description: str) -> Unauthorized:
    return Unauthorized(
        headers={
            "WWW-Authenticate": f'{REALM}, error="invalid_token", error_description="{description}"'
        }
    )


class TokenVerifier:
    """Verifies bearer tokens against the database through a bounded TTL cache."""

    def __init__(
        self, reads: Database, ttl: float, clock: Clock, max_entries: int = 10_000
    ) -> None:
        self._reads = reads
        self._clock = clock  # token expiries are wall time (``real_now``)
        self._ttl = ttl
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        # One database lookup per token at a time: a burst of requests with a token the
        # cache has not seen yet waits for the first lookup instead of stampeding.
        # In-flight lookups by token, with the generation they started in: a caller
        # arriving after an invalidation never joins a lookup that began before it.
        self._inflight: dict[str, tuple[int, asyncio.Future[Principal | None]]] = {}
        # Bumped by every invalidation: a lookup that started before one is not cached.
        self._generation = 0

    def invalidate_token(self, token_id: str) -> None:
        self._generation += 1
        for key, (_, p) in list(self._cache.items()):
            if p is not None and p.token_id == token_id:
                del self._cache[key]

    def invalidate_account(self, account_id: int) -> None:
        self._generation += 1
        for key, (_, p) in list(self._cache.items()):
            if p is not None and p.account_id == account_id:
                del self._cache[key]

    def clear(self) -> None:
        self._generation += 1
        self._cache.clear()

    async def authenticate(self, authorization: str | None, scope: str | None) -> Principal:
        """The principal behind an ``Authorization`` header, or ``Unauthorized`` /
        ``AccountSuspended`` exactly as the contract and RFC 6750 describe."""
        return self.authorize(await self.identify(authorization), scope)

    async def identify(self, authorization: str | None) -> Principal:
        """Who the header names: ``Unauthorized`` when it names nobody (missing, malformed,
        unknown, revoked or expired token). What they may do is ``authorize``'s question."""
        if not authorization:
            raise Unauthorized("Missing bearer token.", headers={"WWW-Authenticate": REALM})
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "Authorization must be 'Bearer <token>'.",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_request"'},
            )
        if not (token.startswith(PORTAL_PREFIX) or token.startswith(OAUTH_PREFIX)):
            raise _invalid("The token is not an UnlimCall token.")
        principal = await self._lookup(token)
        if principal is None:
            raise _invalid("The token is unknown or revoked.")
        if principal.expires_at is not None and principal.expires_at <= self._clock.real_now():
            raise _invalid("The token has expired.")
        return principal

    @staticmethod
    def authorize(
        principal: Principal, scope: str | None, *, refuse_suspended: bool = True
    ) -> Principal:
        """``principal`` if its token has ``scope`` (None: any valid token will do) and,
        unless ``refuse_suspended`` is false, its account is active. (On ``/v1`` only the
        operations whose contract lists 403 refuse a suspended account: ``api.gate``.)"""
        if refuse_suspended and principal.suspended:
            raise AccountSuspended()
        if scope is not None and scope not in principal.scopes:
            raise Unauthorized(
                f"The token lacks the {scope} scope.",
                headers={
                    "WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'
                },
            )
        return principal

    async def _lookup(self, token: str) -> Principal | None:
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        generation = self._generation
        pending = self._inflight.get(token)
        if pending is not None and pending[0] == generation:
            return await asyncio.shield(pending[1])
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._inflight[token] = (generation, future)
        try:
            principal = await self._fetch(hash_secret(token))
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        finally:
            if self._inflight.get(token, (0, None))[1] is future:
                del self._inflight[token]
        future.set_result(principal)
        if generation != self._generation:
            return principal  # invalidated meanwhile: answer, but do not cache
        self._cache[token] = (now + self._ttl, principal)
        self._cache.move_to_end(token)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return principal

    async def _fetch(self, digest: str) -> Principal | None:
        row = await self._reads.one_or_none(_LOOKUP, {"digest": digest})
        if row is None or not hmac.compare_digest(row[1], digest):
            return None
        token_id, _, account_id, scopes, expires_at, status, company, email = row
        return Principal(
            token_id=token_id,
            token_hash=digest,
            account_id=int(account_id),
            scopes=frozenset(scopes.split()),
            expires_at=expires_at,
            suspended=status == "suspended",
            company_name=company,
            email=email,
        )


_LOOKUP = (
    select(
        tokens.c.id,
        tokens.c.token_hash,
        tokens.c.account_id,
        tokens.c.scopes,
        tokens.c.expires_at,
        accounts.c.status,
        accounts.c.company_name,
        accounts.c.primary_contact_email,
    )
    .join(accounts, accounts.c.id == tokens.c.account_id)
    .where(tokens.c.token_hash == bindparam("digest"), tokens.c.revoked_at.is_(None))
)
