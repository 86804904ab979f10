"""``launch_sandbox()``: an UnlimCall Sandbox process for a test session, a script or a
benchmark — a free loopback port, ``unlimcall-sandbox serve`` (or ``api``, ``worker``)
spawned with the settings given, waited for until ``/readyz`` answers, stopped (with its
embedded Redis) when done::

    with launch_sandbox({"UNLIMCALL_TIME_SCALE": "3600"}) as sandbox:
        httpx.get(f"{sandbox.url}/v1/me", headers=...)

The process gets this one's environment without any ``UNLIMCALL_*`` variable, then the
launch settings — host 127.0.0.1, the port, a data dir (a temporary one unless given), an
admin token, per-request logs off, webhooks kept on this machine
(``UNLIMCALL_WEBHOOK_EGRESS=loopback``, no allow-list) — then ``env``, which may override
any of them. It runs in a session of its own: stopping it reaches whatever it started.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

COMMANDS = ("serve", "api", "worker")


class SandboxDidNotStart(RuntimeError):
    """The process exited, or never answered ``/readyz`` in time; the message ends with
    the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sandbox_command() -> list[str]:
    """The ``unlimcall-sandbox`` of this interpreter's environment."""
    cli = Path(sys.executable).parent / "unlimcall-sandbox"
    return [str(cli)] if cli.exists() else [sys.executable, "-m", "unlimcall_sandbox"]


@dataclass
class LaunchedSandbox:
    """One running ``unlimcall-sandbox <command>`` process. A context manager: leaving
    it stops the process (``stop``)."""

    command: str
    port: int
    admin_token: str
    data_dir: Path
    log_path: Path
    env: dict[str, str]
    """The process's whole environment (restart the same sandbox with it)."""
    process: subprocess.Popen[bytes]
    stop_grace: float = 20.0
    _owned_dir: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """Base URL of the API (``serve`` and ``api``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Return once ``/readyz`` answers 200; SandboxDidNotStart when the process exits
        first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                if not self.alive:
                    raise SandboxDidNotStart(
                        f"unlimcall-sandbox {self.command} exited ({self.process.returncode})"
                        f":\n{self.log_tail()}"
                    )
                try:
                    status = client.get(f"{self.url}/readyz").status_code
                    if status == 200:
                        return
                    last = f"HTTP {status}"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                if time.monotonic() > deadline:
                    raise SandboxDidNotStart(
                        f"unlimcall-sandbox {self.command} at {self.url} not ready after "
                        f"{timeout:g}s ({last}):\n{self.log_tail()}"
                    )
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the process (only it: what it started is stopped by ``stop``)."""
        if self.alive:
            self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM; after ``stop_grace`` seconds SIGKILL; then SIGKILL whatever is left in
        its session (its embedded Redis, should it outlive it). A temporary data dir is
        removed."""
        if self.alive:
            self.process.terminate()
            try:
                self.process.wait(self.stop_grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self._owned_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LaunchedSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def launch_sandbox(
    env: Mapping[str, str] | None = None,
    *,
    command: str = "serve",
    args: Sequence[str] = (),
    data_dir: Path | None = None,
    port: int | None = None,
    admin_token: str | None = None,
    log_path: Path | None = None,
    cwd: Path | None = None,
    ready: bool = True,
    ready_timeout: float = 60.0,
    stop_grace: float = 20.0,
) -> LaunchedSandbox:
    """Start ``unlimcall-sandbox <command>`` and (``ready``) wait until it answers.

    ``env``: settings (``UNLIMCALL_*``) and any other variables, over the launch defaults.
    ``args``: more command-line arguments (``["--workers", "2"]`` for ``api``).
    ``data_dir``: kept when given; else a temporary one, removed by ``stop``. ``port``:
    a free one unless given (to restart on the same). ``log_path``: stdout and stderr,
    appended (default ``<data_dir>/<command>.log``). ``ready=False`` returns at once:
    start several, then ``wait_ready`` each. A sandbox that does not start is stopped
    before SandboxDidNotStart is raised.
    """
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {', '.join(COMMANDS)}")
    owned = data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="unlimcall-")) if data_dir is None else data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port() if port is None else port
    admin_token = admin_token or "adm_" + secrets.token_urlsafe(24)
    log_path = data_dir / f"{command}.log" if log_path is None else log_path
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("UNLIMCALL_")}
    full_env.update(
        UNLIMCALL_DATA_DIR=str(data_dir),
        UNLIMCALL_HOST="127.0.0.1",
        UNLIMCALL_PORT=str(port),
        UNLIMCALL_ADMIN_TOKEN=admin_token,
        UNLIMCALL_LOG_REQUESTS="false",
        UNLIMCALL_WEBHOOK_EGRESS="loopback",
        UNLIMCALL_WEBHOOK_ALLOW="",
    )
    full_env.update(env or {})
    port, admin_token = int(full_env["UNLIMCALL_PORT"]), full_env["UNLIMCALL_ADMIN_TOKEN"]
    try:
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our own command, no shell
                [*sandbox_command(), command, *args],
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except BaseException:
        if owned:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
    launched = LaunchedSandbox(
        command=command,
        port=port,
        admin_token=admin_token,
        data_dir=data_dir,
        log_path=log_path,
        env=full_env,
        process=process,
        stop_grace=stop_grace,
        _owned_dir=owned,
    )
    if ready:
        try:
            launched.wait_ready(ready_timeout)
        except BaseException:
            launched.stop()
            raise
    return launched
