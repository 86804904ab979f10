"""Typed settings for every process, read from ``UNLIMCALL_*`` environment variables.

Built once (``Settings.from_env()``) by the CLI and handed to ``create_app(settings)`` or the
worker; nothing reads the environment at import time, so tests build Settings directly.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import msgspec

from unlimcall_sandbox.server.egress import Egress

ALL_SCOPES: tuple[str, ...] = (
    "read:balance",
    "read:cdrs",
    "read:agents",
    "read:numbers",
    "read:invoices",
    "write:calls",
    "write:hooks",
)


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Every knob of the sandbox; each field is one ``UNLIMCALL_<NAME>`` variable."""

    data_dir: Path = Path(".unlimcall")
    """Where the SQLite file, the embedded Redis socket and its log live."""
    database_url: str | None = None
    """SQLAlchemy async URL. Unset: ``sqlite+aiosqlite:///<data_dir>/sandbox.db``."""
    redis_url: str | None = None
    """``redis://`` or ``unix://`` URL. Unset: an embedded Redis on a unix socket in data_dir."""
    admin_token: str | None = None
    """Bearer token for ``/_sandbox``. Unset: generated at start and printed."""
    time_scale: float = 1.0
    """Divides every simulated wait (ringing, talk time, webhook retry delays)."""
    seed: int = 0
    """Seed of the one random source: call outcomes, durations, generated CDRs, ids."""
    insecure_webhook_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    """Hosts for which a plain ``http://`` hook target_url is accepted. Empty: strict."""
    webhook_egress: str = "public"
    """Where webhooks may go: ``loopback``, ``public`` (no private, link-local, reserved,
    ... addresses) or ``any`` (unsafe on a shared machine). See ``server.egress``."""
    webhook_allow: tuple[str, ...] = ()
    """Hosts and CIDRs allowed on top of ``webhook_egress`` (comma-separated in the env)."""
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    """Base URL advertised in OAuth metadata and the startup banner. Unset: http://host:port."""
    token_cache_ttl: float = 5.0
    """Seconds a verified token stays cached in a process; bounds cross-process revocation."""
    oauth_token_ttl: int = 3600
    """Lifetime in seconds of an OAuth access token."""
    max_body_bytes: int = 65536
    """Largest request body accepted; larger is 413 ``payload_too_large``."""
    webhook_timeout: float = 10.0
    """Seconds before a webhook attempt counts as timed out (real time, not scaled)."""
    webhook_retry_base: float = 30.0
    """First retry delay in sandbox seconds; doubles per attempt (with jitter)."""
    webhook_retry_cap: float = 3 * 3600.0
    """Largest single retry delay in sandbox seconds."""
    webhook_retry_window: float = 24 * 3600.0
    """Sandbox seconds after the first attempt when retries stop and the delivery fails."""
    sweep_interval: float = 5.0
    """Real seconds between sweeps that re-enqueue lost call steps and deliveries."""
    load_fixtures: bool = True
    """Load the demo dataset into an empty database at start."""
    log_requests: bool = True
    """One structured JSON log line per request."""

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'sandbox.db').resolve()}"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        fields = {f.name: f for f in msgspec.structs.fields(cls)}
        for name in fields:
            raw = env.get(f"UNLIMCALL_{name.upper()}")
            if raw is None:
                continue
            values[name] = raw
        if "insecure_webhook_hosts" in values:
            raw_hosts = str(values["insecure_webhook_hosts"])
            values["insecure_webhook_hosts"] = tuple(
                h.strip().lower() for h in raw_hosts.split(",") if h.strip()
            )
        if "webhook_allow" in values:
            raw_allow = str(values["webhook_allow"])
            values["webhook_allow"] = tuple(a.strip() for a in raw_allow.split(",") if a.strip())
        values.update(overrides)
        try:
            settings = msgspec.convert(values, cls, strict=False, dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            # Name the variable and the value: "UNLIMCALL_PORT: expected an integer, got 'abc'"
            # (msgspec says "Expected `int`, got `str` - at `$.port`").
            path = str(exc).rpartition("`$.")[2]
            name = path.split("`")[0].split("[")[0].split(".")[0]
            if name not in values:
                raise ValueError(f"bad setting: {exc}") from None
            wanted = {int: "an integer", float: "a number", bool: "true or false"}.get(
                fields[name].type, str(exc).split(" - at ")[0].lower()
            )
            raise ValueError(
                f"UNLIMCALL_{name.upper()}: expected {wanted}, got {values[name]!r}"
            ) from None
        if settings.time_scale <= 0:
            raise ValueError(
                f"UNLIMCALL_TIME_SCALE: expected a number > 0, got {values['time_scale']!r}"
            )
        Egress.parse(settings.webhook_egress, settings.webhook_allow)  # names the variable
        return settings

    def with_admin_token(self) -> Settings:
        """Return settings whose admin token is set (generated when missing)."""
        if self.admin_token:
            return self
        return msgspec.structs.replace(self, admin_token="adm_" + secrets.token_urlsafe(24))


def _dec_hook(type_: type, obj: object) -> object:
    if type_ is Path and isinstance(obj, str):
        return Path(obj)
    raise NotImplementedError
