"""Logging for every process: stdlib ``logging``, one handler on the root logger, set up
by ``configure_logging()`` (the CLI's entry points, the API processes of ``api --workers
N``, and uvicorn through ``log_config()``).

Every line on stderr is one JSON object (``UNLIMCALL_LOG_FORMAT=json``)::

    {"ts":"2026-05-01T12:00:00.123Z","level":"info","logger":"unlimcall.access",
     "msg":"request","pid":4242,"request_id":"...","method":"GET","path":"/v1/me",
     "route":"/v1/me","status":200,"duration_ms":0.41}

``ts`` is RFC 3339 in UTC, ``level`` the level name in lower case, ``logger`` the
logger's name, ``msg`` the message; then the fields the call passed as ``extra``
(``request_id``, ``delivery_id``, ...), then ``exc`` (a traceback) when there is one.
``text`` is the same, readable (``ts LEVEL logger msg key=value ...``); ``auto`` (the
default) is text when stderr is a terminal, JSON otherwise.

Code that logs passes its fields as ``extra`` and a fixed message (``log.info("request",
extra={...})``): the fields stay fields, in both formats.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import time
from typing import Any, TextIO

import msgspec

LOG_FORMATS = ("auto", "json", "text")

# Loggers that say too much at INFO for a sandbox's log.
QUIET = ("arq.worker", "arq.jobs", "httpx", "alembic", "uvicorn.error", "aiosqlite", "asyncio")
UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

# What every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
        "message",
        "asctime",
        "taskName",
        "color_message",  # uvicorn's copy of its message with ANSI colours
    }
)
_encoder = msgspec.json.Encoder(enc_hook=str)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record: what was passed as ``extra`` (and, for uvicorn's
    access log, its arguments by name)."""
    out = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
    args = record.args
    if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        client, method, path, _, status = args
        out.update(client=client, method=method, path=path, status=status)
    return out


class _Timestamps:
    """RFC 3339 UTC with milliseconds; the seconds part formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self) -> None:
        super().__init__()
        self._ts = _Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self._ts(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for key, value in fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return _encoder.encode(line).decode()


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger msg key=value ...``, and a traceback below, for a terminal."""

    def __init__(self) -> None:
        super().__init__()
        self._ts = _Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            self._ts(record.created),
            f"{record.levelname:<7}",
            record.name,
            record.getMessage(),
        ]
        parts += [f"{k}={_text(v)}" for k, v in fields(record).items() if v is not None]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _text(value: object) -> str:
    text = value if isinstance(value, str) else _encoder.encode(value).decode()
    return _encoder.encode(text).decode() if (" " in text or not text) else text


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (not the one there
    was when it was made: a test's capture, a redirected stream)."""

    def __init__(self, fmt: str = "auto") -> None:
        super().__init__(sys.stderr)
        self.setFormatter(formatter(fmt))

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def resolve(fmt: str) -> str:
    """``json`` or ``text``: ``auto`` is text on a terminal. ValueError for anything else."""
    fmt = (fmt or "auto").strip().lower()
    if fmt not in LOG_FORMATS:
        raise ValueError(f"expected one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    if fmt == "auto":
        isatty = getattr(sys.stderr, "isatty", None)
        return "text" if isatty is not None and isatty() else "json"
    return fmt


def formatter(fmt: str) -> logging.Formatter:
    return TextFormatter() if resolve(fmt) == "text" else JsonFormatter()


def log_config(fmt: str = "auto") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a sandbox process (also uvicorn's
    ``log_config``, so that its processes, ``--workers N`` children included, log the
    same way from their first line): one ``StderrHandler`` on the root logger, uvicorn's
    loggers passing their records up to it, the chatty libraries at WARNING."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"()": "unlimcall_sandbox.logs.StderrHandler", "fmt": resolve(fmt)}},
        "loggers": {
            **{name: {"handlers": [], "propagate": True} for name in UVICORN},
            **{name: {"level": "WARNING"} for name in QUIET},
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
    }


def configure_logging(fmt: str = "auto") -> None:
    """Set up this process's logging as ``log_config`` says; again replaces what it set
    before. Like ``logging.basicConfig``, it leaves a root logger with handlers of someone
    else's (an application embedding the sandbox, pytest) as it is, and sets only levels."""
    handler = StderrHandler(fmt)  # ValueError for a bad format, before anything changes
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, StderrHandler)]
    foreign = len(ours) < len(root.handlers)
    for old in ours:
        root.removeHandler(old)
    if not foreign:
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)  # warnings are log lines too
    for name in UVICORN:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
