"""``unlimcall-sandbox``: serve, api, worker, migrate, token create.

The composition root: it builds ``Settings`` from the environment once and wires the API
(``server``) to the worker (``workers``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Litestar

from unlimcall_sandbox.cli.listen import listen
from unlimcall_sandbox.server.app import create_app
from unlimcall_sandbox.server.db.engine import dispose, write
from unlimcall_sandbox.server.runtime import Runtime, prepare_database
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import tokens as token_service
from unlimcall_sandbox.server.settings import ALL_SCOPES, Settings
from unlimcall_sandbox.workers.worker import in_process_worker, make_worker


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("arq.worker", "arq.jobs", "httpx", "alembic", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _mint(
    settings: Settings, customer: int, scopes: list[str], expires_in: int | None
) -> str:
    engine, clock, _ = await prepare_database(settings)
    try:
        async with write(engine) as conn:
            await account_service.get(conn, customer)
            created = await token_service.mint_portal_token(
                conn, customer, scopes, expires_in, clock.real_now()
            )
    finally:
        await dispose(engine)
    return created.token


async def _prepare_and_banner(settings: Settings) -> None:
    """Migrate, load fixtures, and print where the sandbox is and how to call it."""
    engine, _, _ = await prepare_database(settings)
    await dispose(engine)
    demo = None
    try:
        demo = await _mint(settings, 1042, list(ALL_SCOPES), None)
    except Exception:  # the demo account was removed; no demo token then
        demo = None
    lines = [
        "UnlimCall Sandbox",
        f"  API:          {settings.base_url}/v1   (contract: {settings.base_url}/v1/openapi.json)",
        f"  Admin token:  {settings.admin_token}   (for /_sandbox)",
        f"  Demo token:   {demo or '(no account 1042)'}   (customer 1042, every scope)",
        f"  Data:         {settings.effective_database_url.split('@')[-1]}",
        f"  Time scale:   {settings.time_scale:g}   Seed: {settings.seed}",
        f"  Try:          curl -H 'Authorization: Bearer {demo}' {settings.base_url}/v1/me",
    ]
    print("\n".join(lines), flush=True)


def app_factory() -> Litestar:
    """For ``uvicorn --factory`` with several API processes: settings from the environment,
    no in-process worker."""
    configure_logging()
    settings = Settings.from_env()
    return create_app(settings)


def _run_uvicorn(settings: Settings, workers: int, with_worker: bool) -> None:
    import uvicorn

    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
    }
    if workers > 1:
        # Children rebuild settings from the environment: hand them the admin token.
        os.environ["UNLIMCALL_ADMIN_TOKEN"] = settings.admin_token or ""
        uvicorn.run(
            "unlimcall_sandbox.cli.main:app_factory", factory=True, workers=workers, **common
        )
        return
    app = create_app(settings, background=[in_process_worker] if with_worker else [])
    uvicorn.run(app, **common)


async def _run_worker(settings: Settings) -> None:
    if not settings.redis_url:
        raise SystemExit("unlimcall-sandbox worker needs UNLIMCALL_REDIS_URL (shared Redis).")
    rt = await Runtime.start(settings, embedded_redis=False)
    try:
        worker = make_worker(rt, handle_signals=True)
        try:
            await worker.async_run()
        finally:
            await worker.close()
    finally:
        await rt.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unlimcall-sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="API + in-process worker (+ embedded Redis when no URL)")
    api = sub.add_parser("api", help="API only (workers run separately)")
    api.add_argument("--workers", type=int, default=1, help="API processes")
    sub.add_parser("worker", help="a standalone arq worker (needs UNLIMCALL_REDIS_URL)")
    sub.add_parser("migrate", help="apply database migrations and load fixtures if empty")
    token = sub.add_parser("token", help="portal tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="mint a token; prints it alone on stdout")
    create.add_argument("--customer", required=True, help="customer id, e.g. 1042")
    create.add_argument(
        "--scopes", default=",".join(ALL_SCOPES), help="comma-separated scopes (default: all)"
    )
    create.add_argument("--expires-in", type=int, default=None, help="seconds")
    lst = sub.add_parser("listen", help="forward deliveries to a local URL (like stripe listen)")
    lst.add_argument("--forward-to", required=True, help="e.g. http://localhost:3000/hooks")
    lst.add_argument(
        "--events",
        default="call.ended,call.transferred,disposition.set,dnc.added,lead.completed",
        help="comma-separated event types",
    )
    lst.add_argument("--customer", default="1042", help="whose events (default 1042)")
    lst.add_argument(
        "--url",
        default=None,
        help="the sandbox (default: UNLIMCALL_PUBLIC_URL or http://UNLIMCALL_HOST:UNLIMCALL_PORT)",
    )
    lst.add_argument("--admin-token", default=None, help="default: UNLIMCALL_ADMIN_TOKEN")
    lst.add_argument("--max-events", type=int, default=None, help="stop after this many")
    args = parser.parse_args(argv)
    if args.command == "listen":
        env_settings = Settings.from_env()
        admin = args.admin_token or env_settings.admin_token
        if not admin:
            print(
                "unlimcall-sandbox listen: give --admin-token or UNLIMCALL_ADMIN_TOKEN",
                file=sys.stderr,
            )
            return 2
        events = [e.strip() for e in args.events.split(",") if e.strip()]
        return listen(
            args.url or env_settings.base_url,
            admin,
            args.customer,
            events,
            args.forward_to,
            args.max_events,
        )

    try:
        settings = Settings.from_env().with_admin_token()
    except (msgspec.ValidationError, ValueError) as exc:
        print(f"unlimcall-sandbox: bad setting: {exc}", file=sys.stderr)
        return 2
    configure_logging()
    if args.command == "token":
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        try:
            customer = account_service.parse_customer_id(args.customer)
            print(asyncio.run(_mint(settings, customer, scopes, args.expires_in)))
        except Exception as exc:
            print(f"unlimcall-sandbox: {getattr(exc, 'message', exc)}", file=sys.stderr)
            return 1
        return 0
    if args.command == "migrate":
        asyncio.run(_prepare_and_banner(settings))
        return 0
    if args.command == "worker":
        asyncio.run(_run_worker(settings))
        return 0
    asyncio.run(_prepare_and_banner(settings))
    if args.command == "serve":
        _run_uvicorn(settings, 1, with_worker=True)
    else:
        _run_uvicorn(settings, args.workers, with_worker=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
