"""Portal tokens and OAuth clients: minting, revocation. Only hashes are stored."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select, update

from unlimcall_sandbox.server.auth import hash_secret, new_portal_token
from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.db.tables import oauth_clients, tokens
from unlimcall_sandbox.server.errors import InvalidInput, NotFound
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.settings import ALL_SCOPES
from unlimcall_sandbox.server.structs import OAuthClientCreated, TokenCreated


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise InvalidInput(f"Unknown scopes {unknown}; known: {list(ALL_SCOPES)}.")
    return sorted(set(scopes), key=ALL_SCOPES.index)


async def mint_portal_token(
    conn: Conn, account_id: int, scopes: list[str], expires_in: int | None, now: float
) -> TokenCreated:
    await account_service.get(conn, account_id)
    clean = check_scopes(scopes)
    if expires_in is not None and not (0 < expires_in <= 10 * 365 * 86400):
        raise InvalidInput("expiresIn must be between 1 and 315360000 seconds.")
    token = new_portal_token()
    token_id = "tok_" + secrets.token_hex(12)
    expires_at = None if expires_in is None else now + expires_in
    await conn.execute(
        tokens.insert().values(
            id=token_id,
            account_id=account_id,
            token_hash=hash_secret(token),
            prefix=token[:13],
            kind="portal",
            scopes=" ".join(clean),
            created_at=now,
            expires_at=expires_at,
        )
    )
    return TokenCreated(
        id=token_id,
        token=token,
        prefix=token[:13],
        scopes=clean,
        expiresAt=None if expires_at is None else iso(expires_at),
    )


async def store_oauth_access_token(
    conn: Conn,
    token_hash: str,
    prefix: str,
    client_id: str,
    account_id: int,
    scopes: list[str],
    now: float,
    expires_at: float,
) -> None:
    await conn.execute(
        tokens.insert().values(
            id="oat_" + secrets.token_hex(12),
            account_id=account_id,
            token_hash=token_hash,
            prefix=prefix,
            kind="oauth",
            scopes=" ".join(scopes),
            oauth_client_id=client_id,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def revoke(conn: Conn, token_id: str, now: float) -> None:
    result = await conn.execute(
        update(tokens)
        .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if result.rowcount == 0:
        raise NotFound(f"No active token {token_id!r}.")


async def create_oauth_client(
    conn: Conn, account_id: int, scopes: list[str], now: float
) -> OAuthClientCreated:
    await account_service.get(conn, account_id)
    clean = check_scopes(scopes)
    client_id = "unl_client_" + secrets.token_hex(10)
    client_secret = "unl_cs_" + secrets.token_urlsafe(32)
    await conn.execute(
        oauth_clients.insert().values(
            client_id=client_id,
            account_id=account_id,
            secret_hash=hash_secret(client_secret),
            scopes=" ".join(clean),
            created_at=now,
        )
    )
    return OAuthClientCreated(clientId=client_id, clientSecret=client_secret, scopes=clean)


async def get_oauth_client(conn: Conn, client_id: str) -> Any | None:
    stmt = select(oauth_clients).where(
        oauth_clients.c.client_id == client_id, oauth_clients.c.revoked_at.is_(None)
    )
    return (await conn.execute(stmt)).first()
