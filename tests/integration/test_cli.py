"""The command line as a user meets it: help and version, flags over variables over defaults,
one-line errors, credentials that survive a restart, and the control-plane commands against
a running sandbox. Mostly ``main(argv)`` in-process; ``serve`` itself as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.contract import checked_client
from tests.support.receiver import free_port
from tests.support.sandbox import ADMIN, Sandbox
from unlimcall_sandbox import __version__
from unlimcall_sandbox.cli import control
from unlimcall_sandbox.cli.main import main
from unlimcall_sandbox.server import credentials
from unlimcall_sandbox.server.auth import hash_secret
from unlimcall_sandbox.server.redis_embed import EmbeddedRedis
from unlimcall_sandbox.server.services import deliveries as delivery_service
from unlimcall_sandbox.server.services import events as event_service
from unlimcall_sandbox.server.settings import Settings

CLI = Path(sys.executable).parent / "unlimcall-sandbox"
SETTING_VARIABLES = [f"UNLIMCALL_{name.upper()}" for name in Settings.__struct_fields__]
SETTING_FLAGS = [
    "--host",
    "--port",
    "--data-dir",
    "--time-scale",
    "--seed",
    "--admin-token",
    "--database-url",
    "--redis-url",
    "--webhook-egress",
]
CONTROL_FLAGS = ["--url", "--admin-token", "--data-dir"]
CONTROL_VARIABLES = [
    "UNLIMCALL_PUBLIC_URL",
    "UNLIMCALL_HOST",
    "UNLIMCALL_PORT",
    "UNLIMCALL_ADMIN_TOKEN",
    "UNLIMCALL_DATA_DIR",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting from the caller's environment; webhooks stay on this machine; the
    default data dir (./.unlimcall) under the test's own directory."""
    for name in SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UNLIMCALL_WEBHOOK_EGRESS", "loopback")
    monkeypatch.chdir(tmp_path)


def _one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("unlimcall-sandbox: "), err
    return lines[0]


# -- help and version ----------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"unlimcall-sandbox {__version__}\n"


def test_program_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert main([]) == 0  # no command: the same help
    assert capsys.readouterr().out == out
    for command in (
        "serve",
        "api",
        "worker",
        "migrate",
        "token",
        "listen",
        "trigger",
        "clock",
        "reset",
        "deliveries",
        "accounts",
        "--version",
    ):
        assert re.search(rf"^\s+{re.escape(command)}\b", out, re.M), (command, out)
    assert "composition root" not in out and "``" not in out  # no internal docstrings


@pytest.mark.parametrize(
    ("argv", "flags", "variables"),
    [
        (["serve"], SETTING_FLAGS, SETTING_VARIABLES),
        (["api"], [*SETTING_FLAGS, "--workers"], SETTING_VARIABLES),
        (
            ["worker"],
            [
                "--data-dir",
                "--time-scale",
                "--seed",
                "--database-url",
                "--redis-url",
                "--webhook-egress",
            ],
            [
                "UNLIMCALL_DATA_DIR",
                "UNLIMCALL_DATABASE_URL",
                "UNLIMCALL_REDIS_URL",
                "UNLIMCALL_TIME_SCALE",
                "UNLIMCALL_SEED",
                "UNLIMCALL_WEBHOOK_EGRESS",
                "UNLIMCALL_WEBHOOK_TIMEOUT",
            ],
        ),
        (
            ["migrate"],
            ["--data-dir", "--time-scale", "--seed", "--database-url"],
            [
                "UNLIMCALL_DATA_DIR",
                "UNLIMCALL_DATABASE_URL",
                "UNLIMCALL_TIME_SCALE",
                "UNLIMCALL_SEED",
                "UNLIMCALL_LOAD_FIXTURES",
            ],
        ),
        (
            ["token", "create"],
            ["--customer", "--scopes", "--expires-in", "--data-dir", "--database-url"],
            ["UNLIMCALL_DATA_DIR", "UNLIMCALL_DATABASE_URL"],
        ),
        (
            ["listen"],
            [*CONTROL_FLAGS, "--forward-to", "--events", "--customer", "--max-events"],
            CONTROL_VARIABLES,
        ),
        (["trigger"], [*CONTROL_FLAGS, "--customer", "--field", "--json"], CONTROL_VARIABLES),
        (["clock"], [*CONTROL_FLAGS, "--json"], CONTROL_VARIABLES),
        (["clock", "advance"], [*CONTROL_FLAGS, "--to", "--json"], CONTROL_VARIABLES),
        (["reset"], [*CONTROL_FLAGS, "--json"], CONTROL_VARIABLES),
        (
            ["deliveries"],
            [*CONTROL_FLAGS, "--follow", "--customer", "--status", "--max-attempts", "--json"],
            CONTROL_VARIABLES,
        ),
        (["accounts"], [*CONTROL_FLAGS, "--json"], CONTROL_VARIABLES),
    ],
    ids=[
        "serve",
        "api",
        "worker",
        "migrate",
        "token-create",
        "listen",
        "trigger",
        "clock",
        "clock-advance",
        "reset",
        "deliveries",
        "accounts",
    ],
)
def test_every_command_has_help_with_its_flags_and_variables(
    capsys: pytest.CaptureFixture[str], argv: list[str], flags: list[str], variables: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    usage, _, rest = out.partition("\n\n")
    assert usage.startswith(f"usage: unlimcall-sandbox {' '.join(argv)}")
    description = rest.split("\n\n")[0]
    assert len(description) > 40 and "``" not in description, description
    for flag in flags:
        assert re.search(rf"^\s+{re.escape(flag)}\b", out, re.M), (flag, out)
    env = out.partition("environment (a flag wins over its variable):")[2]
    for variable in variables:
        assert re.search(rf"^\s+{variable}\s+\S", env, re.M), (variable, out)


def test_the_clis_event_and_status_lists_are_the_servers() -> None:
    assert control.EVENT_TYPES == event_service.EVENT_TYPES
    assert control.DELIVERY_STATUSES == delivery_service.STATUSES


# -- settings: flag > variable > default; bad ones name the variable -----------------------


def test_a_flag_beats_its_variable_which_beats_the_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UNLIMCALL_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("UNLIMCALL_SEED", "5")
    monkeypatch.setenv("UNLIMCALL_TIME_SCALE", "60")
    assert main(["migrate", "--data-dir", str(tmp_path / "from-flag"), "--seed", "9"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"Time scale:\s+60\s+Seed: 9$", out, re.M), out  # env, flag
    assert f"SQLite {tmp_path / 'from-flag' / 'sandbox.db'}" in out
    assert (tmp_path / "from-flag" / "sandbox.db").exists()
    assert not (tmp_path / "from-env").exists()

    monkeypatch.delenv("UNLIMCALL_TIME_SCALE")
    monkeypatch.delenv("UNLIMCALL_DATA_DIR")
    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"Time scale:\s+1\s+Seed: 5$", out, re.M), out  # default, env
    assert f"SQLite {tmp_path / '.unlimcall' / 'sandbox.db'}" in out


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("UNLIMCALL_PORT", "abc", "UNLIMCALL_PORT: expected an integer, got 'abc'"),
        ("UNLIMCALL_TIME_SCALE", "fast", "UNLIMCALL_TIME_SCALE: expected a number, got 'fast'"),
        ("UNLIMCALL_TIME_SCALE", "0", "UNLIMCALL_TIME_SCALE: expected a number > 0, got '0'"),
        (
            "UNLIMCALL_LOAD_FIXTURES",
            "maybe",
            "UNLIMCALL_LOAD_FIXTURES: expected true or false, got 'maybe'",
        ),
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["accounts"]])
def test_a_bad_setting_names_its_variable(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    variable: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(command) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_line(err) == f"unlimcall-sandbox: {message}"


def test_a_bad_flag_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, said in (
        (["serve", "--port", "abc"], "argument --port: expected a port number, got 'abc'"),
        (["serve", "--port", "70000"], "argument --port: a port is 0-65535, got 70000"),
        (["serve", "--time-scale", "0"], "argument --time-scale: expected a number > 0"),
        (["api", "--webhook-egress", "lan"], "argument --webhook-egress: invalid choice"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert said in capsys.readouterr().err


# -- one-line errors -----------------------------------------------------------------------


def test_a_taken_port_is_one_line_and_no_banner(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_line(err) == (
        f"unlimcall-sandbox: port {port} on 127.0.0.1 is in use; "
        "pick another with --port or UNLIMCALL_PORT"
    )


@pytest.mark.parametrize("command", ["serve", "api", "migrate", "worker"])
def test_an_unreachable_database_is_one_line(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    url = "postgresql+asyncpg://sandbox:secret@127.0.0.1:1/x"
    argv = [command, "--database-url", url]
    if command in ("serve", "api"):
        argv += ["--port", "0"]
    if command == "worker":
        argv += ["--redis-url", "redis://127.0.0.1:1"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""  # no banner
    line = _one_line(err)
    assert "cannot reach the database at postgresql+asyncpg://sandbox:***@127.0.0.1:1/x" in line
    assert "connection refused" in line and "--database-url" in line
    assert "secret" not in line


def test_a_postgresql_url_without_asyncpg_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if it were not installed
    assert main(["migrate", "--database-url", "postgresql+asyncpg://127.0.0.1:1/x"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "pip install 'unlimcall-sandbox[postgres]'" in line


def test_a_database_url_without_a_usable_driver_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for url, said in (
        ("nonsense", "cannot use the database URL 'nonsense'"),
        ("mysql+nodriver://127.0.0.1:1/x", "mysql+nodriver://127.0.0.1:1/x"),
    ):
        assert main(["migrate", "--database-url", url]) == 1
        line = _one_line(capsys.readouterr().err)
        assert said in line and "postgresql+asyncpg://" in line, line


@pytest.mark.parametrize("command", ["serve", "api", "worker"])
def test_an_unreachable_redis_is_one_line(capsys: pytest.CaptureFixture[str], command: str) -> None:
    argv = [command, "--redis-url", "redis://127.0.0.1:1"]
    if command != "worker":
        argv += ["--port", "0"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_line(err) == (
        "unlimcall-sandbox: cannot reach Redis at redis://127.0.0.1:1 (connection refused); "
        "check that it is running and --redis-url / UNLIMCALL_REDIS_URL "
        "(serve runs an embedded Redis when it is unset)"
    )


def test_processes_that_need_a_shared_redis_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker"]) == 1
    assert "--redis-url or UNLIMCALL_REDIS_URL" in _one_line(capsys.readouterr().err)
    assert main(["api", "--workers", "2"]) == 1
    assert "--redis-url or UNLIMCALL_REDIS_URL" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv",
    [
        ["accounts"],
        ["clock"],
        ["clock", "advance", "60"],
        ["reset"],
        ["trigger", "call.ended"],
        ["deliveries"],
        ["deliveries", "--follow"],
    ],
)
def test_control_commands_without_a_sandbox_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main([*argv, "--url", url, "--admin-token", ADMIN]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_line(err) == (
        f"unlimcall-sandbox: no sandbox answers at {url} (connection refused); start one with "
        "'unlimcall-sandbox serve', or point --url (or UNLIMCALL_PUBLIC_URL) at it"
    )


def test_control_commands_find_no_admin_token_and_say_where_they_looked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["accounts", "--url", f"http://127.0.0.1:{free_port()}"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--admin-token" in line and "UNLIMCALL_ADMIN_TOKEN" in line and "--data-dir" in line


# -- stable credentials --------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _banner_tokens(out: str) -> tuple[str, str]:
    admin = re.search(r"Admin token:\s+(\S+)", out)
    demo = re.search(r"Demo token:\s+(unl_live_\S+)", out)
    assert admin and demo, out
    return admin.group(1), demo.group(1)


def _demo_rows(db: Path, token: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT account_id, revoked_at FROM tokens WHERE token_hash = ?", (hash_secret(token),)
        ).fetchall()
    finally:
        conn.close()


def test_credentials_are_created_once_per_data_dir(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    assert main(["migrate", "--data-dir", str(data)]) == 0
    admin, demo = _banner_tokens(capsys.readouterr().out)
    assert (data / "admin-token").read_text().strip() == admin
    assert (data / "demo-token").read_text().strip() == demo
    assert _mode(data) == 0o700
    for name in ("admin-token", "demo-token", "sandbox.db"):
        assert _mode(data / name) == 0o600, name
    assert main(["migrate", "--data-dir", str(data)]) == 0
    assert _banner_tokens(capsys.readouterr().out) == (admin, demo)
    assert _demo_rows(data / "sandbox.db", demo) == [(1042, None)]  # one demo token

    # A configured admin token wins, and is not stored.
    monkeypatch.setenv("UNLIMCALL_ADMIN_TOKEN", "adm_given_0123456789")
    assert main(["migrate", "--data-dir", str(data)]) == 0
    assert _banner_tokens(capsys.readouterr().out) == ("adm_given_0123456789", demo)
    assert (data / "admin-token").read_text().strip() == admin
    monkeypatch.delenv("UNLIMCALL_ADMIN_TOKEN")

    # A revoked demo token is replaced (and the file with it).
    conn = sqlite3.connect(data / "sandbox.db")
    try:
        with conn:
            conn.execute(
                "UPDATE tokens SET revoked_at = 1 WHERE token_hash = ?", (hash_secret(demo),)
            )
    finally:
        conn.close()
    assert main(["migrate", "--data-dir", str(data)]) == 0
    _, renewed = _banner_tokens(capsys.readouterr().out)
    assert renewed != demo
    assert (data / "demo-token").read_text().strip() == renewed
    assert _mode(data / "demo-token") == 0o600
    assert _demo_rows(data / "sandbox.db", renewed) == [(1042, None)]


def test_loose_modes_are_tightened(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    db = data / "sandbox.db"
    db.touch()
    db.chmod(0o644)
    assert main(["migrate", "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert _mode(data) == 0o700
    assert _mode(db) == 0o600


def _serve_env(tmp: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLIMCALL_")}
    env.update(
        UNLIMCALL_DATA_DIR=str(tmp / "data"),
        UNLIMCALL_PORT=str(port),
        UNLIMCALL_LOG_REQUESTS="false",
        UNLIMCALL_WEBHOOK_EGRESS="loopback",
    )
    return env


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], out: Path, base: str) -> None:
        self.proc = proc
        self.out = out
        self.base = base

    def text(self) -> str:
        return self.out.read_text(errors="replace")


@contextmanager
def _serve(tmp: Path, port: int, name: str) -> Iterator[Served]:
    out = tmp / f"{name}.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [str(CLI), "serve"], env=_serve_env(tmp, port), stdout=sink, stderr=subprocess.STDOUT
        )
    served = Served(proc, out, f"http://127.0.0.1:{port}")
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def _banner(served: Served) -> str:
    """The banner, once printed; the port takes connections from that moment on."""
    deadline = time.monotonic() + 60
    while "  Try:" not in served.text():
        assert served.proc.poll() is None, served.text()
        assert time.monotonic() < deadline, served.text()
        time.sleep(0.05)
    text = served.text()
    found = re.search(r"API:\s+http://127\.0\.0\.1:(\d+)/v1", text)
    assert found, text
    with socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=5):
        pass  # bound and listening before the banner printed
    return text


def _ready(http: httpx.Client, served: Served) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if http.get(f"{served.base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert served.proc.poll() is None, served.text()
        assert time.monotonic() < deadline, served.text()
        time.sleep(0.05)


def _stop(served: Served) -> None:
    served.proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal: the conventional status.
    assert served.proc.wait(30) in (0, -signal.SIGTERM), served.text()


def _tokens_of_1042(http: httpx.Client, base: str, admin: str) -> list[dict[str, Any]]:
    r = http.get(
        f"{base}/_sandbox/accounts/1042/overview", headers={"Authorization": f"Bearer {admin}"}
    )
    assert r.status_code == 200, r.text
    tokens: list[dict[str, Any]] = r.json()["tokens"]
    return tokens


def test_serve_keeps_its_tokens_across_restarts_and_resets(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if backend != "sqlite":
        pytest.skip("serve's embedded defaults are SQLite + embedded Redis")
    port = free_port()
    data = tmp_path / "data"
    http = checked_client(timeout=10)
    try:
        for run in ("first", "second"):
            with _serve(tmp_path, port, run) as served:
                banner = _banner(served)
                assert f"{served.base}/v1" in banner
                admin, demo = _banner_tokens(banner)
                if run == "first":
                    first = (admin, demo)
                else:
                    assert (admin, demo) == first, "the same tokens on every start"
                _ready(http, served)
                bearer = {"Authorization": f"Bearer {demo}"}
                assert http.get(f"{served.base}/v1/me", headers=bearer).json()["customerId"] == (
                    "1042"
                )
                assert [t["prefix"] for t in _tokens_of_1042(http, served.base, admin)].count(
                    demo[:13]
                ) == 1, "one demo token, not one per start"
                sock = data / "redis.sock"
                assert sock.exists()
                assert _mode(data) == 0o700
                for name in ("admin-token", "demo-token", "sandbox.db", "sandbox.db-wal"):
                    assert _mode(data / name) == 0o600, name
                if (data / "sandbox.db-shm").exists():
                    assert _mode(data / "sandbox.db-shm") == 0o600
                if run == "second":
                    _an_idle_connection_outlives_the_clients_keep_alive(served.base)
                if run == "first":
                    # A second sandbox on this data dir is refused in one line, before a banner.
                    assert main(["serve", "--port", "0", "--data-dir", str(data)]) == 1
                    out, err = capsys.readouterr()
                    assert out == ""
                    assert "in use by another sandbox" in _one_line(err)
                    # reset, with the admin token the data dir holds: the demo token lives on.
                    assert main(["reset", "--url", served.base, "--data-dir", str(data)]) == 0
                    assert f"Demo token:   {demo}" in capsys.readouterr().out
                    me = http.get(f"{served.base}/v1/me", headers=bearer)
                    assert me.status_code == 200, me.text
                    _token_create_works(http, served.base, tmp_path, port)
                _stop(served)
                assert not sock.exists(), "the embedded Redis must stop with the sandbox"
    finally:
        http.close()


def _an_idle_connection_outlives_the_clients_keep_alive(base: str) -> None:
    """A connection left idle longer than httpx keeps one (5 s) still answers: the client,
    not the server, ends an idle connection, so no request is sent on one being closed."""
    host, port = base.removeprefix("http://").split(":")
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        for turn in range(2):
            if turn:
                time.sleep(6)  # the idle time itself is what is tested
            conn.sendall(request)
            reply = conn.makefile("rb")
            status = reply.readline()
            length = 0
            while (line := reply.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            reply.read(length)  # the whole answer: the next read is the next answer's
            assert status.startswith(b"HTTP/1.1 200"), (turn, status)


def test_api_workers_share_the_port_and_the_stored_admin_token(
    backend: str, tmp_path: Path
) -> None:
    if backend != "sqlite":
        pytest.skip("one run is enough: SQLite and a Redis of the test's own")
    redis = EmbeddedRedis(tmp_path / "redis")
    redis_url = redis.start()
    data = tmp_path / "data"
    env = _serve_env(tmp_path, 0)
    del env["UNLIMCALL_PORT"], env["UNLIMCALL_DATA_DIR"]
    out = tmp_path / "api.out"
    argv = ["api", "--workers", "2", "--port", "0", "--data-dir", str(data)]
    try:
        with out.open("wb") as sink:
            proc = subprocess.Popen(
                [str(CLI), *argv, "--redis-url", redis_url],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        served = Served(proc, out, "")
        try:
            banner = _banner(served)
            found = re.search(r"API:\s+(http://127\.0\.0\.1:\d+)/v1", banner)
            assert found, banner
            served.base = found.group(1)
            admin, demo = _banner_tokens(banner)
            assert (data / "admin-token").read_text().strip() == admin
            with httpx.Client(timeout=10) as probe:
                _ready(probe, served)
            for _ in range(8):  # a new connection each time: either process may answer
                with httpx.Client(timeout=10) as http:
                    clock = http.get(
                        f"{served.base}/_sandbox/clock",
                        headers={"Authorization": f"Bearer {admin}"},
                    )
                    assert clock.status_code == 200, clock.text
                    me = http.get(
                        f"{served.base}/v1/me", headers={"Authorization": f"Bearer {demo}"}
                    )
                    assert me.status_code == 200, me.text
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, served.text()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
    finally:
        redis.stop()


def _token_create_works(http: httpx.Client, base: str, tmp: Path, port: int) -> None:
    token = subprocess.run(
        [str(CLI), "token", "create", "--customer", "1042", "--scopes", "read:balance,read:cdrs"],
        env=_serve_env(tmp, port),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert re.fullmatch(r"unl_live_[A-Za-z0-9_-]{32,}\n", token), token
    bearer = {"Authorization": f"Bearer {token.strip()}"}
    assert http.get(f"{base}/v1/balance", headers=bearer).json()["balance"] == 42.7831
    assert http.get(f"{base}/v1/agents", headers=bearer).status_code == 401


def test_token_create_reports_errors_on_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["token", "create", "--customer", "424242"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "424242" in _one_line(err)
    assert main(["token", "create", "--customer", "1042", "--scopes", "read:everything"]) == 1
    assert "read:everything" in _one_line(capsys.readouterr().err)
    monkeypatch.setenv("UNLIMCALL_TIME_SCALE", "fast")
    assert main(["token", "create", "--customer", "1042"]) == 2
    assert "UNLIMCALL_TIME_SCALE" in _one_line(capsys.readouterr().err)


# -- the control plane against a running sandbox -------------------------------------------


async def _cli(sb: Sandbox, *argv: str) -> int:
    """``main`` in a thread: the sandbox serves from this test's event loop meanwhile."""
    return await asyncio.to_thread(main, [*argv, "--url", sb.base_url, "--admin-token", ADMIN])


async def _hooked_account(sb: Sandbox) -> tuple[str, str]:
    """A fresh account with a call.ended hook to an inbox of the sandbox; (customer, inbox)."""
    customer = await sb.account(companyName="CLI Co")
    token = await sb.token(customer, ["write:hooks"])
    inbox = f"cli-{customer}"
    r = await sb.client.post(
        "/v1/hooks",
        json={"event": "call.ended", "target_url": f"{sb.base_url}/_sandbox/inbox/{inbox}"},
        headers=sb.bearer(token),
    )
    assert r.status_code == 200, r.text
    return customer, inbox


async def test_accounts_lists_them(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    customer = await sandbox.account(companyName="Listed Co", balance=12.5)
    assert await _cli(sandbox, "accounts") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["CUSTOMER", "STATUS", "BALANCE", "COMPANY", "EMAIL"]
    [line] = [ln for ln in out.splitlines() if ln.startswith(f"{customer} ")]
    assert line.split()[:4] == [customer, "active", "12.50", "USD"] and "Listed Co" in line
    assert await _cli(sandbox, "accounts", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert customer in [a["customerId"] for a in data["accounts"]]


async def test_clock_shows_the_sandbox_time(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _cli(sandbox, "clock") == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"Sandbox time: \S+Z   \(time scale 3600\)\n", out), out
    assert await _cli(sandbox, "clock", "--json") == 0
    assert json.loads(capsys.readouterr().out)["scale"] == 3600


async def test_a_wrong_admin_token_is_one_line(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["clock", "--url", sandbox.base_url, "--admin-token", "adm_wrong"]
    assert await asyncio.to_thread(main, argv) == 1
    line = _one_line(capsys.readouterr().err)
    assert "refused the admin token" in line and "--admin-token" in line


async def test_trigger_fires_an_event_with_fields_and_deliveries_lists_it(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    customer, _ = await _hooked_account(sandbox)
    code = await _cli(
        sandbox,
        "trigger",
        "call.ended",
        "--customer",
        customer,
        "--field",
        "durationSec=90",
        "--field",
        "hangupReason=customer_hangup",
    )
    assert code == 0
    out = capsys.readouterr().out
    assert re.fullmatch(
        rf"Triggered call\.ended \(event \S+\) for customer {customer}: 1 delivery queued\n", out
    ), out
    [delivery] = await sandbox.wait_deliveries(
        lambda items: len(items) == 1 and items[0]["status"] == "delivered", customerId=customer
    )
    assert delivery["payload"]["durationSec"] == 90  # JSON where it parses as JSON
    assert delivery["payload"]["hangupReason"] == "customer_hangup"

    assert await _cli(sandbox, "deliveries", "--customer", customer) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert "call.ended" in line and " 200 " in line and "delivered" in line
    assert f"[{delivery['id']} #1]" in line
    assert await _cli(sandbox, "deliveries", "--customer", customer, "--status", "failed") == 0
    assert capsys.readouterr().out == "No deliveries match.\n"
    assert await _cli(sandbox, "deliveries", "--customer", customer, "--json") == 0
    assert [d["id"] for d in json.loads(capsys.readouterr().out)["deliveries"]] == [delivery["id"]]

    assert await _cli(sandbox, "trigger", "dnc.added", "--customer", customer) == 0
    out = capsys.readouterr().out
    assert "0 deliveries queued" in out and "No hook of customer" in out
    assert await _cli(sandbox, "trigger", "call.ended", "--customer", "424242") == 1
    assert "424242" in _one_line(capsys.readouterr().err)


async def test_deliveries_follow_prints_new_attempts_as_they_happen(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    customer, _ = await _hooked_account(sandbox)
    await sandbox.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    [before] = await sandbox.wait_deliveries(
        lambda items: len(items) == 1 and items[0]["status"] == "delivered", customerId=customer
    )
    tail = asyncio.ensure_future(
        _cli(sandbox, "deliveries", "--follow", "--customer", customer, "--max-attempts", "1")
    )
    err = ""
    deadline = time.monotonic() + 30
    while "Ready!" not in err:  # the tail has seen what was there before it started
        assert not tail.done(), (tail, err)
        assert time.monotonic() < deadline, err
        err += capsys.readouterr().err
        await asyncio.sleep(0.02)
    fired = await sandbox.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    assert await asyncio.wait_for(tail, 30) == 0
    out = capsys.readouterr().out
    [line] = out.splitlines()  # the new attempt only, one line
    assert "call.ended" in line and before["id"] not in line
    new = await sandbox.deliveries(customerId=customer)
    [delivery] = [d for d in new if d["eventId"] == fired["eventId"]]
    assert f"[{delivery['id']} #1]" in line


async def test_reset_keeps_the_stored_demo_token(
    fresh: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    async with fresh() as sb:
        stored = credentials.demo_token(sb.settings.data_dir)  # as serve stores it
        gone = await sb.account()
        assert await _cli(sb, "reset") == 0
        out = capsys.readouterr().out
        assert out.startswith("Reset: ")
        assert f"Demo token:   {stored}   (customer 1042)" in out
        me = await sb.client.get("/v1/me", headers=sb.bearer(stored))
        assert me.status_code == 200 and me.json()["customerId"] == "1042"
        r = await sb.client.get(f"/_sandbox/accounts/{gone}", headers=sb.admin)
        assert r.status_code == 404
        assert await _cli(sb, "reset", "--json") == 0
        assert json.loads(capsys.readouterr().out)["demoToken"] == stored


async def test_clock_advance(fresh: Any, capsys: pytest.CaptureFixture[str]) -> None:
    async with fresh(time_scale=0.001) as sb:  # sandbox time all but stands still
        before = (await sb.client.get("/_sandbox/clock", headers=sb.admin)).json()
        assert await _cli(sb, "clock", "advance", "2h", "--json") == 0
        after = json.loads(capsys.readouterr().out)
        assert after["advancedSec"] == 7200
        assert (after["calls"], after["steps"], after["deliveries"]) == (0, 0, 0)
        moved = _parse_rfc3339(after["sandboxTime"]) - _parse_rfc3339(before["sandboxTime"])
        assert 7200 - 1 <= moved <= 7200 + 1
        assert await _cli(sb, "clock", "advance", "90m") == 0
        out = capsys.readouterr().out
        assert out.startswith("Sandbox time: ") and "advancedSec 5400" in out
        assert await _cli(sb, "clock", "advance", "--to", "2100-01-01T00:00:00Z") == 0
        assert "Sandbox time: 2100-01-01T00:00:00Z" in capsys.readouterr().out
        clock = (await sb.client.get("/_sandbox/clock", headers=sb.admin)).json()
        assert clock["sandboxTime"].startswith("2100-01-01T00:00:")
        # Time only moves on: the sandbox refuses, the command says why in one line.
        assert await _cli(sb, "clock", "advance", "--to", "2099-01-01T00:00:00Z") == 1
        assert "only moves on" in _one_line(capsys.readouterr().err)


def _parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_clock_advance_wants_a_duration(capsys: pytest.CaptureFixture[str]) -> None:
    assert control.parse_duration("90") == 90
    assert control.parse_duration("15m") == 900
    assert control.parse_duration("2h") == 7200
    assert control.parse_duration("1.5d") == 129600
    for argv in (["clock", "advance"], ["clock", "advance", "soon"], ["clock", "advance", "0"]):
        assert main([*argv, "--admin-token", ADMIN]) == 2
        assert "clock advance wants" in _one_line(capsys.readouterr().err)


def test_trigger_fields_are_json_when_they_parse(capsys: pytest.CaptureFixture[str]) -> None:
    assert control.parse_fields(
        ["n=42", "ok=true", "phone=+14155550000", 'quoted="42"', "text=hello world", "e="]
    ) == {
        "n": 42,
        "ok": True,
        "phone": "+14155550000",
        "quoted": "42",
        "text": "hello world",
        "e": "",
    }
    assert main(["trigger", "call.ended", "--field", "novalue", "--admin-token", ADMIN]) == 2
    assert "--field wants KEY=VALUE" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("a", "too short (1 characters"),
        ("change-me-admin", "placeholder"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "too few distinct characters"),
    ],
)
def test_a_weak_admin_token_is_refused_at_start_before_anything_is_bound(
    token: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    code = main(["serve", "--port", "0", "--data-dir", str(data), "--admin-token", token])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("unlimcall-sandbox: UNLIMCALL_ADMIN_TOKEN: ")
    assert why in err
    assert "--insecure-admin-token" in err
    assert "UnlimCall Sandbox" not in out  # no banner
    assert not data.exists()  # nothing created


def test_insecure_admin_token_lets_a_throwaway_token_through() -> None:
    weak = Settings(admin_token="a")
    with pytest.raises(ValueError, match="UNLIMCALL_ADMIN_TOKEN"):
        weak.refuse_weak_admin_token()
    Settings(admin_token="a", insecure_admin_token=True).refuse_weak_admin_token()
    Settings(admin_token=secrets.token_urlsafe(32)).refuse_weak_admin_token()
    Settings().refuse_weak_admin_token()  # unset: one is made and stored
    loaded = Settings.from_env({"UNLIMCALL_INSECURE_ADMIN_TOKEN": "true"}, admin_token="a")
    loaded.refuse_weak_admin_token()
