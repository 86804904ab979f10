"""Credentials that survive a restart: the admin token (when none is configured), the demo
account's token and the seed (when none is configured), each created once per data dir and
kept there.

Portal tokens are stored hashed in the database, so the plaintext a user copies from the
startup banner lives in a file of the data dir: the dir is 0700, the files 0600. Each file
is created atomically (written aside, then hard-linked into place), so processes starting
together on one data dir agree on one value.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec
from sqlalchemy import select

from unlimcall_sandbox.server.auth import hash_secret, new_portal_token
from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.db.tables import accounts, tokens
from unlimcall_sandbox.server.settings import ALL_SCOPES, Settings

ADMIN_FILE = "admin-token"
DEMO_FILE = "demo-token"
SEED_FILE = "seed"
DEMO_CUSTOMER_ID = 1042

DemoState = Literal["present", "created", "revoked", "no_account"]


def secure_dir(path: Path) -> None:
    """Create ``path`` (mode 0700), or tighten an existing one of ours to 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Not ours (or a platform without modes): leave it.
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)


def secure_file(path: Path) -> None:
    """Mode 0600 for an existing file of ours; nothing for a missing one."""
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)


def read_secret(data_dir: Path, name: str) -> str | None:
    """The stored value, or None when the file is missing or empty."""
    try:
        text = (data_dir / name).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def _write_aside(data_dir: Path, name: str, value: str) -> Path:
    tmp = data_dir / f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")
    return tmp


def replace_secret(data_dir: Path, name: str, value: str) -> None:
    secure_dir(data_dir)
    tmp = _write_aside(data_dir, name, value)
    try:
        os.replace(tmp, data_dir / name)
    finally:
        tmp.unlink(missing_ok=True)


def stored_or_new(data_dir: Path, name: str, make: Callable[[], str]) -> str:
    """The value stored under ``name`` in the data dir, created by ``make`` the first time."""
    secure_dir(data_dir)
    path = data_dir / name
    existing = read_secret(data_dir, name)
    if existing is not None:
        secure_file(path)
        return existing
    tmp = _write_aside(data_dir, name, make())
    try:
        try:
            os.link(tmp, path)  # fails if another process stored one first: keep that one
        except FileExistsError:
            existing = read_secret(data_dir, name)
            if existing is not None:
                return existing
            os.replace(tmp, path)  # an empty file: ours replaces it
        except OSError:  # a file system without hard links
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    stored = read_secret(data_dir, name)
    assert stored is not None
    return stored


def new_admin_token() -> str:
    return "adm_" + secrets.token_urlsafe(24)


def admin_token(data_dir: Path) -> str:
    """The data dir's admin token, created the first time."""
    return stored_or_new(data_dir, ADMIN_FILE, new_admin_token)


def demo_token(data_dir: Path) -> str:
    """The data dir's demo token (plaintext), created the first time."""
    return stored_or_new(data_dir, DEMO_FILE, new_portal_token)


def stored_seed(data_dir: Path) -> int:
    """The data dir's own random seed, created the first time: sandboxes started without
    ``UNLIMCALL_SEED`` never share ids (a receiver deduplicating on delivery ids across runs
    would drop the next run's events), and a restart keeps the ids of one data dir apart."""
    text = stored_or_new(data_dir, SEED_FILE, lambda: str(secrets.randbits(63)))
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"{data_dir / SEED_FILE} holds {text[:40]!r}, not a seed: delete the file or set "
            "UNLIMCALL_SEED"
        ) from None


def with_seed(settings: Settings) -> Settings:
    """``settings`` with its seed resolved: the configured one, else the data dir's."""
    if settings.seed is not None:
        return settings
    return msgspec.structs.replace(settings, seed=stored_seed(settings.data_dir))


async def install_demo_token(conn: Conn, plaintext: str, now: float) -> DemoState:
    """Make ``plaintext`` a live, never-expiring token of the demo account with every scope.

    ``present``: it already is. ``created``: inserted now (a fresh database, or after a
    reset). ``revoked``: it exists but was revoked; the caller picks a new one.
    ``no_account``: there is no demo account.
    """
    digest = hash_secret(plaintext)
    row = (
        await conn.execute(
            select(tokens.c.account_id, tokens.c.revoked_at, tokens.c.expires_at).where(
                tokens.c.token_hash == digest
            )
        )
    ).first()
    if row is not None:
        if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            return "revoked"
        return "present"
    account = (
        await conn.execute(select(accounts.c.id).where(accounts.c.id == DEMO_CUSTOMER_ID))
    ).first()
    if account is None:
        return "no_account"
    await conn.execute(
        tokens.insert().values(
            id="tok_" + secrets.token_hex(12),
            account_id=DEMO_CUSTOMER_ID,
            token_hash=digest,
            prefix=plaintext[:13],
            kind="portal",
            scopes=" ".join(ALL_SCOPES),
            created_at=now,
            expires_at=None,
        )
    )
    return "created"
