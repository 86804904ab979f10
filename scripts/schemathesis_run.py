"""Schemathesis against a live sandbox, started the way the README starts it.

    python scripts/schemathesis_run.py sqlite      # SQLite + embedded Redis
    python scripts/schemathesis_run.py postgres    # needs UNLIMCALL_TEST_DATABASE_URL
                                                   # and UNLIMCALL_TEST_REDIS_URL
    SANDBOX_URL=http://127.0.0.1:8080 UNLIMCALL_ADMIN_TOKEN=... \\
        python scripts/schemathesis_run.py external  # a sandbox you started yourself

Two runs per sandbox: one with a portal token holding every scope, one with an access
token obtained from POST /oauth/token. Config: tests/contract/schemathesis.toml. Exits
non-zero on any finding.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from unlimcall_sandbox.server.settings import ALL_SCOPES
from unlimcall_sandbox.testing.launch import SandboxDidNotStart, launch_sandbox

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_ready(base: str) -> None:
    """Wait for a sandbox this script did not start."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the sandbox did not become ready")


def tokens(base: str, admin: str) -> dict[str, str]:
    h = {"Authorization": f"Bearer {admin}"}
    portal = (
        httpx.post(f"{base}/_sandbox/accounts/1042/tokens", json={"scopes": ALL_SCOPES}, headers=h)
        .raise_for_status()
        .json()["token"]
    )
    client = (
        httpx.post(
            f"{base}/_sandbox/accounts/1042/oauth-clients",
            json={"scopes": ALL_SCOPES},
            headers=h,
        )
        .raise_for_status()
        .json()
    )
    basic = base64.b64encode(f"{client['clientId']}:{client['clientSecret']}".encode()).decode()
    oauth = (
        httpx.post(
            f"{base}/oauth/token",
            content="grant_type=client_credentials",
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        .raise_for_status()
        .json()["access_token"]
    )
    return {"portal token": portal, "OAuth token": oauth}


def run_schemathesis(base: str, token: str) -> int:
    cmd = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(ROOT / "tests/contract/schemathesis.toml"),
        "run",
        str(ROOT / "openapi/unlimcall-openapi.json"),
        "--url",
        f"{base}/v1",
        "-H",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--workers",
        "1",
    ]
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode


async def _pg(sql: str) -> None:
    import asyncpg

    url = os.environ["UNLIMCALL_TEST_DATABASE_URL"].replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main(mode: str) -> int:
    if mode == "external":
        base = os.environ["SANDBOX_URL"].rstrip("/")
        # The stateful phase creates hundreds of hooks with generated targets and places
        # calls: only the server's own policy keeps those deliveries on the machine.
        print(
            f"schemathesis: WARNING: {base} is a sandbox this script did not start; it should"
            " run with UNLIMCALL_WEBHOOK_EGRESS=loopback (generated hook targets get deliveries)",
            flush=True,
        )
        wait_ready(base)
        found = [
            run_schemathesis(base, t)
            for t in tokens(base, os.environ["UNLIMCALL_ADMIN_TOKEN"]).values()
        ]
        return max(found)
    settings = {
        "UNLIMCALL_TIME_SCALE": "3600",
        "UNLIMCALL_SEED": "42",
        # Generated hook targets (https://0.com, ...) get deliveries: none may leave.
        "UNLIMCALL_WEBHOOK_EGRESS": "loopback",
        "UNLIMCALL_WEBHOOK_ALLOW": "",
    }
    db_name = None
    with tempfile.TemporaryDirectory() as data_dir:
        if mode == "postgres":
            db_name = f"unlimcall_st_{uuid.uuid4().hex[:10]}"
            asyncio.run(_pg(f'CREATE DATABASE "{db_name}"'))
            base_url = os.environ["UNLIMCALL_TEST_DATABASE_URL"].rpartition("/")[0]
            settings["UNLIMCALL_DATABASE_URL"] = f"{base_url}/{db_name}"
            if os.environ.get("UNLIMCALL_TEST_REDIS_FLUSH") != "1":
                raise SystemExit(
                    "schemathesis postgres: flushes database 15 of UNLIMCALL_TEST_REDIS_URL;"
                    " set UNLIMCALL_TEST_REDIS_FLUSH=1 to allow it"
                )
            redis_url = os.environ["UNLIMCALL_TEST_REDIS_URL"].rstrip("/") + "/15"
            settings["UNLIMCALL_REDIS_URL"] = redis_url
            subprocess.run(
                [
                    str(BIN / "python"),
                    "-c",
                    ("import redis,sys; redis.Redis.from_url(sys.argv[1]).flushdb()"),
                    redis_url,
                ],
                check=True,
            )
        results = {}
        try:
            with launch_sandbox(settings, data_dir=Path(data_dir)) as sandbox:
                base = sandbox.url
                for label, token in tokens(base, sandbox.admin_token).items():
                    print(f"\n=== schemathesis on {mode}, {label} ===", flush=True)
                    results[label] = run_schemathesis(base, token)
                if any(results.values()):
                    print(sandbox.log_tail(5000))
        except SandboxDidNotStart as exc:
            raise SystemExit(str(exc)) from None
        finally:
            if db_name:
                asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        print(
            f"\nschemathesis on {mode}: "
            + ", ".join(f"{k}: {'ok' if v == 0 else 'FINDINGS'}" for k, v in results.items())
        )
        return max(results.values())


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "sqlite"))
