"""Flags for settings, the ``UNLIMCALL_*`` variables each command reads, and the settings a
command runs with: flag > environment variable > default."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from unlimcall_sandbox.cli.errors import CliError
from unlimcall_sandbox.logs import LOG_FORMATS
from unlimcall_sandbox.server.settings import Settings

EGRESS_CHOICES = ("loopback", "public", "any")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


@dataclass(frozen=True)
class SettingFlag:
    field: str
    flag: str
    metavar: str
    help: str
    type: Callable[[str], object] = str
    choices: tuple[str, ...] | None = None
    switch: bool = False
    """A flag without a value that sets the setting to true."""


SETTING_FLAGS: dict[str, SettingFlag] = {
    f.field: f
    for f in (
        SettingFlag("host", "--host", "ADDR", "interface to listen on (default 127.0.0.1)"),
        SettingFlag(
            "port", "--port", "PORT", "port to listen on (default 8080; 0 picks a free one)", _port
        ),
        SettingFlag(
            "data_dir",
            "--data-dir",
            "DIR",
            "SQLite file, embedded Redis, stored tokens (default ./.unlimcall)",
        ),
        SettingFlag(
            "time_scale",
            "--time-scale",
            "X",
            "divide every simulated wait by X; 3600 makes an hour a second (default 1)",
            _positive_float,
        ),
        SettingFlag(
            "seed",
            "--seed",
            "N",
            "seed of the one random source (default: the data dir's own, random)",
            _integer,
        ),
        SettingFlag(
            "admin_token",
            "--admin-token",
            "TOKEN",
            "bearer token for /_sandbox (default: created once, stored in the data dir)",
        ),
        SettingFlag(
            "insecure_admin_token",
            "--insecure-admin-token",
            "",
            "accept a short or placeholder admin token (throwaway local use only)",
            switch=True,
        ),
        SettingFlag(
            "database_url",
            "--database-url",
            "URL",
            "postgresql+asyncpg://user:pass@host/db (default: SQLite in the data dir)",
        ),
        SettingFlag(
            "redis_url",
            "--redis-url",
            "URL",
            "redis://host:6379/0 (default for serve: an embedded Redis)",
        ),
        SettingFlag(
            "webhook_egress",
            "--webhook-egress",
            "{loopback,public,any}",
            "where webhooks may go: loopback only, public addresses only, or anywhere",
            choices=EGRESS_CHOICES,
        ),
        SettingFlag(
            "log_format",
            "--log-format",
            "{auto,json,text}",
            "log lines on stderr: JSON objects, readable text, or auto (text on a terminal)",
            choices=LOG_FORMATS,
        ),
    )
}

# What each variable does, for the help epilogs (those with a flag show the flag instead).
DESCRIPTIONS: dict[str, str] = {
    "public_url": "base URL advertised in the banner and OAuth metadata",
    "allowed_hosts": "Host header names echoed as the base URL (besides loopback and --host)",
    "insecure_webhook_hosts": "hosts allowed as plain http:// hook targets",
    "webhook_allow": "hosts and CIDRs webhooks may reach on top of the egress rule",
    "token_cache_ttl": "seconds a verified token stays cached",
    "oauth_token_ttl": "lifetime of OAuth access tokens (s)",
    "max_body_bytes": "largest request body accepted",
    "webhook_timeout": "seconds before a webhook attempt times out",
    "webhook_retry_base": "first webhook retry delay (sandbox s)",
    "webhook_retry_cap": "largest webhook retry delay (sandbox s)",
    "webhook_retry_window": "sandbox s after which retries stop",
    "sweep_interval": "seconds between sweeps for lost jobs",
    "load_fixtures": "load the demo data into an empty database",
    "log_requests": "one JSON log line per request",
}

SERVER_FLAGS = tuple(SETTING_FLAGS)
WORKER_FLAGS = (
    "data_dir",
    "time_scale",
    "seed",
    "database_url",
    "redis_url",
    "webhook_egress",
    "log_format",
)
MIGRATE_FLAGS = ("data_dir", "time_scale", "seed", "database_url", "log_format")
TOKEN_FLAGS = ("data_dir", "database_url")

# Settings only the API side reads: the worker's help leaves them out.
_API_ONLY = {
    "host",
    "port",
    "public_url",
    "allowed_hosts",
    "admin_token",
    "insecure_admin_token",
    "token_cache_ttl",
    "oauth_token_ttl",
    "max_body_bytes",
    "log_requests",
}
CONTROL_VARIABLES = ("public_url", "host", "port", "admin_token", "data_dir")


def settings_fields() -> list[str]:
    return [f.name for f in msgspec.structs.fields(Settings)]


def variables_for(command: str) -> list[str]:
    """The ``Settings`` fields a command reads, in declaration order."""
    fields = settings_fields()
    if command in ("serve", "api"):
        return fields
    if command == "worker":
        return [f for f in fields if f not in _API_ONLY]
    if command == "migrate":
        return [f for f in fields if f in (*MIGRATE_FLAGS, "load_fixtures")]
    if command == "token":
        return [f for f in fields if f in TOKEN_FLAGS]
    return [f for f in CONTROL_VARIABLES if f in fields]


def env_name(field: str) -> str:
    return f"UNLIMCALL_{field.upper()}"


# For the control-plane commands, which talk to a running sandbox.
CONTROL_DESCRIPTIONS: dict[str, str] = {
    "public_url": "the sandbox's URL: the default of --url",
    "host": "with UNLIMCALL_PORT, the default of --url (http://HOST:PORT)",
    "port": "with UNLIMCALL_HOST, the default of --url",
    "admin_token": "the default of --admin-token",
    "data_dir": "the default of --data-dir",
}


def epilog(
    fields: Iterable[str],
    flags: Iterable[str] = (),
    note: str = "",
    descriptions: dict[str, str] | None = None,
) -> str:
    """The ``environment`` section of a command's help."""
    with_flag = set(flags)
    rows = []
    for field in fields:
        if field in with_flag and field in SETTING_FLAGS:
            what = f"same as {SETTING_FLAGS[field].flag}"
        else:
            what = (descriptions or DESCRIPTIONS).get(field) or DESCRIPTIONS.get(
                field, "see Settings in the README"
            )
        rows.append(f"  {env_name(field):<34} {what}")
    text = "environment (a flag wins over its variable):\n" + "\n".join(rows)
    return f"{text}\n\n{note}" if note else text


def add_setting_flags(parser: argparse.ArgumentParser, fields: Iterable[str]) -> None:
    group = parser.add_argument_group("settings")
    for field in fields:
        spec = SETTING_FLAGS[field]
        if spec.switch:
            group.add_argument(
                spec.flag,
                dest=field,
                action="store_const",
                const=True,
                default=None,
                help=spec.help,
            )
            continue
        group.add_argument(
            spec.flag,
            dest=field,
            metavar=spec.metavar,
            type=spec.type,
            choices=spec.choices,
            default=None,
            help=spec.help,
        )


def overrides_from(args: argparse.Namespace, fields: Iterable[str]) -> dict[str, object]:
    """The settings given as flags (the ones left unset fall back to the environment)."""
    values: dict[str, object] = {}
    for field in fields:
        value = getattr(args, field, None)
        if value is not None:
            values[field] = value
    return values


def load_settings(overrides: dict[str, object] | None = None) -> Settings:
    try:
        return Settings.from_env(None, **(overrides or {}))
    except (msgspec.ValidationError, ValueError) as exc:
        text = str(exc)
        raise CliError(text if "UNLIMCALL_" in text else f"bad setting: {text}", 2) from None
