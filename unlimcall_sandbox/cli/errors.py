"""What the CLI reports when something it depends on is missing: one line on stderr (what
failed, what to do) and an exit status, never a traceback."""

from __future__ import annotations

import os

PROG = "unlimcall-sandbox"


class CliError(Exception):
    """Ends the command with ``unlimcall-sandbox: <message>`` on stderr and ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def reason(exc: BaseException) -> str:
    """A short, single-line why: the OS error's text ("connection refused") when there is
    one in the chain of causes, else the exception's first line."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno is not None and seen.errno > 0:
            text = os.strerror(seen.errno)
            return text[0].lower() + text[1:]
        seen = seen.__cause__ or seen.__context__
    lines = str(exc).strip().splitlines()
    return lines[0] if lines and lines[0] else type(exc).__name__
