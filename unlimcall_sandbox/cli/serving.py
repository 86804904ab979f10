"""``serve``, ``api``, ``worker``, ``migrate`` and ``token create``: the processes of the
sandbox. The composition root: settings are built once (flags > environment > defaults)
and handed to the API side (``server``) and the worker side (``workers``).

Before anything prints, a server binds its port and reaches its database (and Redis, when
one is configured): a failure there is one line on stderr, and no banner.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.util
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from unlimcall_sandbox import __version__, logs
from unlimcall_sandbox.cli.errors import PROG, CliError, reason
from unlimcall_sandbox.cli.options import SETTING_FLAGS, env_name
from unlimcall_sandbox.server import credentials
from unlimcall_sandbox.server.settings import Settings

if TYPE_CHECKING:
    from litestar import Litestar
    from sqlalchemy.ext.asyncio import AsyncEngine

APP_FACTORY = "unlimcall_sandbox.cli.serving:app_factory"


def configure_logging(settings: Settings | None = None) -> None:
    """Log lines on stderr, JSON or text (``UNLIMCALL_LOG_FORMAT``): ``unlimcall_sandbox.logs``.
    The banner and ``token create``'s token are not log lines: they go to stdout."""
    logs.configure_logging(settings.log_format if settings is not None else "auto")


def app_factory() -> Litestar:
    """For the API processes of ``api --workers N``: settings from the environment (the
    parent exported its flags there), no in-process worker."""
    from unlimcall_sandbox.server.app import create_app

    settings = Settings.from_env()
    configure_logging(settings)
    return create_app(settings)


# -- storage: data dir, credentials, database file ----------------------------------------


def with_admin_token(settings: Settings) -> Settings:
    """The configured admin token, else the data dir's (created the first time)."""
    if settings.admin_token:
        return settings
    try:
        token = credentials.admin_token(settings.data_dir)
    except OSError as exc:
        raise CliError(_data_dir_error(settings, exc)) from None
    return msgspec.structs.replace(settings, admin_token=token)


def with_seed(settings: Settings) -> Settings:
    """The configured seed, else the data dir's own (random, created the first time)."""
    try:
        return credentials.with_seed(settings)
    except OSError as exc:
        raise CliError(_data_dir_error(settings, exc)) from None
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _data_dir_error(settings: Settings, exc: OSError) -> str:
    return (
        f"cannot use the data dir {settings.data_dir} ({reason(exc)}); "
        "pick another with --data-dir or UNLIMCALL_DATA_DIR"
    )


def _sqlite_path(settings: Settings) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(settings.effective_database_url)
    except ArgumentError:
        return None  # reported when the database is opened
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return url.database


def secure_storage(settings: Settings) -> None:
    """The data dir 0700; the SQLite database 0600 (its -wal and -shm files take the mode
    of the database file when SQLite creates them)."""
    try:
        credentials.secure_dir(settings.data_dir)
        path = _sqlite_path(settings)
        if path is None:
            return
        if not os.path.exists(path):
            parent = os.path.dirname(path)
            if parent and not os.path.isdir(parent):
                return  # reported when the database is opened
            # An empty file is an empty SQLite database: created here with the right mode.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        for suffix in ("", "-wal", "-shm"):
            credentials.secure_file(Path(path + suffix))
    except OSError as exc:
        raise CliError(_data_dir_error(settings, exc)) from None


# -- preflight: database and Redis ---------------------------------------------------------


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def database_error(settings: Settings, exc: BaseException) -> CliError:
    from sqlalchemy.exc import ArgumentError, InvalidRequestError, NoSuchModuleError

    url = settings.effective_database_url
    where = _redacted(url)
    if isinstance(exc, ImportError):
        missing = exc.name or ""
        if missing == "asyncpg" or "asyncpg" in str(exc):
            return CliError(
                "PostgreSQL needs the asyncpg driver, which is not installed: "
                "pip install 'unlimcall-sandbox[postgres]'"
            )
        return CliError(
            f"no driver for the database URL {where} ({reason(exc)}); use "
            "postgresql+asyncpg://user:pass@host/db (pip install 'unlimcall-sandbox[postgres]') "
            "or sqlite+aiosqlite:///path/to/file.db"
        )
    if isinstance(exc, (ArgumentError, NoSuchModuleError, InvalidRequestError)):
        return CliError(
            f"cannot use the database URL {where!r} ({reason(exc)}); give "
            "--database-url / UNLIMCALL_DATABASE_URL as postgresql+asyncpg://user:pass@host/db "
            "or sqlite+aiosqlite:///path/to/file.db"
        )
    cause = getattr(exc, "orig", None) or exc
    return CliError(
        f"cannot reach the database at {where} ({reason(cause)}); check that it is running "
        "and --database-url / UNLIMCALL_DATABASE_URL"
    )


async def _open_database(settings: Settings) -> tuple[AsyncEngine, float, bool]:
    """Migrate and load the fixtures; the engine, the real time, whether data was loaded."""
    from unlimcall_sandbox.server.runtime import prepare_database

    try:
        engine, clock, loaded = await prepare_database(settings)
    except Exception as exc:
        raise database_error(settings, exc) from None
    return engine, clock.real_now(), loaded is not None


async def _demo_token(engine: AsyncEngine, settings: Settings, now: float) -> str | None:
    """The data dir's demo token, live in the database; None without a demo account."""
    from sqlalchemy.exc import IntegrityError

    from unlimcall_sandbox.server.auth import new_portal_token
    from unlimcall_sandbox.server.db.engine import write

    async def install(plaintext: str) -> credentials.DemoState:
        for _ in range(2):
            try:
                async with write(engine) as conn:
                    return await credentials.install_demo_token(conn, plaintext, now)
            except IntegrityError:  # a process on the same data dir inserted it meanwhile
                continue
        raise CliError("could not store the demo token in the database; try again")

    try:
        plaintext = credentials.demo_token(settings.data_dir)
    except OSError as exc:
        raise CliError(_data_dir_error(settings, exc)) from None
    state = await install(plaintext)
    if state == "revoked":  # revoked by someone: a new one, stored in its place
        plaintext = new_portal_token()
        credentials.replace_secret(settings.data_dir, credentials.DEMO_FILE, plaintext)
        state = await install(plaintext)
    return None if state == "no_account" else plaintext


def check_embedded_redis(settings: Settings) -> None:
    """Without a Redis URL the sandbox runs its own: a server binary must exist, and the
    data dir must not be another running sandbox's."""
    from unlimcall_sandbox.server.redis_embed import EmbeddedRedis, EmbeddedRedisError

    try:
        EmbeddedRedis(settings.data_dir).preflight()
    except EmbeddedRedisError as exc:
        raise CliError(str(exc)) from None


async def check_redis(url: str) -> None:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    client: Redis | None = None
    try:
        client = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        await client.ping()
    except (RedisError, OSError, ValueError) as exc:
        raise CliError(
            f"cannot reach Redis at {url} ({reason(exc)}); check that it is running and "
            "--redis-url / UNLIMCALL_REDIS_URL (serve runs an embedded Redis when it is unset)"
        ) from None
    finally:
        if client is not None:
            await client.aclose()


async def preflight(settings: Settings, *, demo: bool, redis: bool) -> tuple[str | None, bool]:
    """Database ready (and the demo token in it), Redis answering: (demo token, loaded)."""
    from unlimcall_sandbox.server.db.engine import dispose

    engine, now, loaded = await _open_database(settings)
    try:
        token = await _demo_token(engine, settings, now) if demo else None
    finally:
        await dispose(engine)
    if redis and settings.redis_url:
        await check_redis(settings.redis_url)
    return token, loaded


# -- the port ------------------------------------------------------------------------------


def bind(settings: Settings) -> socket.socket:
    """The listening socket, bound before anything prints."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
        sock.listen(2048)
    except (OSError, OverflowError) as exc:
        sock.close()
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {settings.port} on {settings.host} is in use; "
                "pick another with --port or UNLIMCALL_PORT"
            ) from None
        raise CliError(
            f"cannot listen on {settings.host}:{settings.port} ({reason(exc)}); "
            "pick another with --host/--port or UNLIMCALL_HOST/UNLIMCALL_PORT"
        ) from None
    sock.set_inheritable(True)
    return sock


# -- the banner ----------------------------------------------------------------------------


def _where(settings: Settings) -> str:
    path = _sqlite_path(settings)
    if path is not None:
        return f"SQLite {path}"
    return _redacted(settings.effective_database_url).split("@")[-1]


def banner(
    settings: Settings,
    demo: str | None,
    *,
    serving: bool,
    loaded: bool,
    dashboard: str | None = None,
) -> str:
    base = settings.base_url
    data = settings.data_dir
    admin_note = "for /_sandbox"
    if settings.admin_token == credentials.read_secret(data, credentials.ADMIN_FILE):
        admin_note += f"; stored in {data / credentials.ADMIN_FILE}"
    lines = [f"UnlimCall Sandbox {__version__}"]
    if serving:
        lines += [
            f"  API:          {base}/v1   (contract: {base}/v1/openapi.json)",
            f"  Dashboard:    {dashboard or f'{base}/dashboard'}"
            + ("   (one click signs you in: once, within 15 min)" if dashboard else ""),
        ]
    lines += [
        f"  Admin token:  {settings.admin_token}   ({admin_note})",
        "  Demo token:   "
        + (
            f"{demo}   (customer 1042, every scope; stored in {data / credentials.DEMO_FILE})"
            if demo
            else "(no account 1042)"
        ),
        f"  Data:         {_where(settings)}" + ("   (demo data loaded)" if loaded else ""),
        f"  Time scale:   {settings.time_scale:g}   Seed: {settings.seed}"
        + (
            "   (this data dir's own; --seed N or UNLIMCALL_SEED repeats a run's ids)"
            if str(settings.seed) == credentials.read_secret(data, credentials.SEED_FILE)
            else ""
        ),
    ]
    if serving and demo:
        lines.append(f"  Try:          curl -H 'Authorization: Bearer {demo}' {base}/v1/me")
    return "\n".join(lines)


# -- commands ------------------------------------------------------------------------------


KEEP_ALIVE = 75  # seconds an idle HTTP/1.1 connection stays open (nginx's default)


def _uvicorn_options(settings: Settings, *, children: bool = False) -> dict[str, Any]:
    return {
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "auto",
        "http": "httptools" if importlib.util.find_spec("httptools") else "auto",
        # The children of --workers N log as the CLI does from their first line; one
        # process keeps what configure_logging() set.
        "log_config": logs.log_config(settings.log_format) if children else None,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
        # Longer than any client keeps an idle connection (httpx 5 s, like uvicorn's own
        # default): the client always closes first, so it never sends on a connection the
        # server is closing at that instant (a ReadError, or a lost POST, for the client).
        "timeout_keep_alive": KEEP_ALIVE,
    }


def _export(settings: Settings) -> None:
    """The API processes of ``api --workers N`` build their settings from the environment:
    hand them every flag and the admin token."""
    for field in SETTING_FLAGS:
        value = getattr(settings, field, None)
        if value is not None:
            os.environ[env_name(field)] = str(value)


def _supervisor(config: Any, sock: socket.socket) -> Any:
    """uvicorn's supervisor of the API processes; one that exits (or is replaced) has its
    live gauges dropped from the metrics' sums."""
    from uvicorn.supervisors import Multiprocess

    from unlimcall_sandbox.server.metrics import process_exited

    class Supervisor(Multiprocess):
        def _reap(self, before: set[int | None]) -> None:
            for pid in before - {p.pid for p in self.processes}:
                if pid is not None:
                    process_exited(pid)

        def keep_subprocess_alive(self) -> None:
            before = {p.pid for p in self.processes}
            super().keep_subprocess_alive()
            self._reap(before)

        def handle_signals(self) -> None:
            before = {p.pid for p in self.processes}
            super().handle_signals()
            self._reap(before)

    return Supervisor(config, sockets=[sock])


def run_server(settings: Settings, *, workers: int, with_worker: bool) -> int:
    """``serve`` (one process with the worker) and ``api`` (``workers`` API processes)."""
    import uvicorn

    if workers > 1 and not settings.redis_url:
        raise CliError(
            "api --workers N needs a Redis every process shares: give --redis-url or "
            "UNLIMCALL_REDIS_URL"
        )
    settings = with_seed(with_admin_token(settings))
    secure_storage(settings)
    sock = bind(settings)
    try:
        settings = msgspec.structs.replace(settings, port=sock.getsockname()[1])
        if not settings.redis_url:
            check_embedded_redis(settings)
        demo, loaded = asyncio.run(preflight(settings, demo=True, redis=True))
        from unlimcall_sandbox.server.services.dashboard_session import banner_link

        link = banner_link(settings)  # a one-time sign-in code, stored in the database
        print(banner(settings, demo, serving=True, loaded=loaded, dashboard=link), flush=True)
        configure_logging(settings)
        if workers > 1:
            from unlimcall_sandbox.server.metrics import multiprocess_run

            _export(settings)
            # /metrics sums every API process: prometheus_client's multiprocess mode, in a
            # directory made before the processes start (they inherit the variable).
            with multiprocess_run():
                config = uvicorn.Config(
                    APP_FACTORY,
                    factory=True,
                    workers=workers,
                    **_uvicorn_options(settings, children=True),
                )
                _supervisor(config, sock).run()
            return 0
        from unlimcall_sandbox.server.app import create_app
        from unlimcall_sandbox.workers.worker import in_process_worker

        app = create_app(settings, background=[in_process_worker] if with_worker else [])
        server = uvicorn.Server(uvicorn.Config(app, **_uvicorn_options(settings)))
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT it handled
            server.run(sockets=[sock])
        if not server.started:
            print(f"{PROG}: the sandbox failed to start (see the log above)", file=sys.stderr)
            return 3
        return 0
    finally:
        sock.close()


def run_migrate(settings: Settings) -> int:
    settings = with_seed(with_admin_token(settings))
    secure_storage(settings)
    demo, loaded = asyncio.run(preflight(settings, demo=True, redis=False))
    print(banner(settings, demo, serving=False, loaded=loaded), flush=True)
    return 0


async def _worker(settings: Settings) -> None:
    from unlimcall_sandbox.server.runtime import Runtime
    from unlimcall_sandbox.workers.worker import make_worker

    rt = await Runtime.start(settings, embedded_redis=False)
    try:
        worker = make_worker(rt, handle_signals=True)
        try:
            await worker.async_run()
        finally:
            await worker.close()
    finally:
        await rt.close()


def run_worker(settings: Settings) -> int:
    if not settings.redis_url:
        raise CliError(
            "worker needs the Redis the API uses: give --redis-url or UNLIMCALL_REDIS_URL"
        )
    secure_storage(settings)
    settings = with_seed(settings)
    asyncio.run(preflight(settings, demo=False, redis=True))
    configure_logging(settings)
    asyncio.run(_worker(settings))
    return 0


async def _mint(settings: Settings, customer: int, scopes: list[str], expires: int | None) -> str:
    from unlimcall_sandbox.server.db.engine import dispose, write
    from unlimcall_sandbox.server.errors import ApiError
    from unlimcall_sandbox.server.services import accounts as account_service
    from unlimcall_sandbox.server.services import tokens as token_service

    engine, now, _ = await _open_database(settings)
    try:
        async with write(engine) as conn:
            await account_service.get(conn, customer)
            created = await token_service.mint_portal_token(conn, customer, scopes, expires, now)
    except ApiError as exc:
        raise CliError(exc.message) from None
    finally:
        await dispose(engine)
    return created.token


def run_token_create(
    settings: Settings, customer: str, scopes: list[str], expires_in: int | None
) -> int:
    from unlimcall_sandbox.server.errors import ApiError
    from unlimcall_sandbox.server.services import accounts as account_service

    try:
        account = account_service.parse_customer_id(customer)
    except ApiError as exc:
        raise CliError(exc.message) from None
    secure_storage(settings)
    print(asyncio.run(_mint(settings, account, scopes, expires_in)))
    return 0
