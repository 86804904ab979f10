"""Typed settings for every process, read from ``UNLIMCALL_*`` environment variables.

Built once (``Settings.from_env()``) by the CLI and handed to ``create_app(settings)`` or the
worker; nothing reads the environment at import time, so tests build Settings directly.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import msgspec

from unlimcall_sandbox.logs import LOG_FORMATS
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
    """Bearer token for ``/_sandbox``. Unset: created once per data dir, stored there (0600),
    printed at every start."""
    insecure_admin_token: bool = False
    """Accept an admin token shorter than 24 characters or a known placeholder (throwaway
    local use only: the admin token opens the whole control plane)."""
    time_scale: float = 1.0
    """Divides every simulated wait (ringing, talk time, webhook retry delays)."""
    seed: int | None = None
    """Seed of the one random source: call outcomes, durations, generated CDRs, ids.
    Unset: a random seed created once per data dir and kept there (file ``seed``), so two
    sandboxes never share ids; resolved at start (``credentials.with_seed``)."""
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
    allowed_hosts: tuple[str, ...] = ()
    """Host names, besides loopback names and ``host``, that a request's ``Host`` header may
    name to be echoed as the base URL of discovery documents (comma-separated in the env)."""
    token_cache_ttl: float = 5.0
    """Seconds a verified token stays cached in a process; bounds cross-process revocation."""
    oauth_token_ttl: int = 3600
    """Lifetime in seconds of an OAuth access token."""
    max_body_bytes: int = 65536
    """Largest request body accepted; larger is 400 ``invalid_input`` on ``/v1`` (its
    operations list no 413), 413 ``payload_too_large`` elsewhere."""
    body_read_timeout: float = 10.0
    """Seconds (real time, in total) a client has to send its whole request body; slower is
    408 ``request_timeout`` (on ``/v1``: 400 ``invalid_input``). Bodies are read before any
    transaction opens."""
    write_tx_budget: float = 5.0
    """Seconds (real time) a request's write transaction may stay open; past it the
    transaction is rolled back and the request answered 503 ``service_unavailable``."""
    webhook_timeout: float = 10.0
    """Seconds before a webhook attempt counts as timed out (real time, not scaled)."""
    webhook_inflight_per_account: int = 20
    """Webhook attempts one account may have in flight per worker process; its further
    attempts wait (unleased, untimed) while other accounts' go out."""
    webhook_inflight_per_hook: int = 5
    """Webhook attempts one hook may have in flight per worker process."""
    hooks_per_account: int = 100
    """Active hooks an account may have; one more is 400 ``invalid_input``."""
    webhook_retry_base: float = 30.0
    """First retry delay in sandbox seconds; doubles per attempt (with jitter)."""
    webhook_retry_cap: float = 3 * 3600.0
    """Largest single retry delay in sandbox seconds."""
    webhook_retry_window: float = 24 * 3600.0
    """Sandbox seconds after the first attempt when retries stop and the delivery fails."""
    inbox_message_bytes: int = 8192
    """Bytes of body stored per inbox message; the rest is cut (flagged ``truncated``)."""
    inbox_max_messages: int = 100
    """Messages kept per inbox; each post beyond drops the oldest."""
    inbox_max_inboxes: int = 50
    """Inboxes holding messages; a post to a new one drops the least recently posted-to."""
    retention_age: float = 7 * 86400.0
    """Sandbox seconds after which the sweep deletes inbox messages, delivery attempts,
    deliveries, events and ended calls (CDRs stay); 0 keeps everything."""
    sweep_interval: float = 5.0
    """Real seconds between sweeps that re-enqueue lost call steps and deliveries."""
    load_fixtures: bool = True
    """Load the demo dataset into an empty database at start."""
    log_requests: bool = True
    """One structured JSON log line per request."""
    log_format: str = "auto"
    """Log lines on stderr: ``json`` (one object per line), ``text`` (readable), or ``auto``
    (text when stderr is a terminal, else JSON). See ``unlimcall_sandbox.logs``."""

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'sandbox.db').resolve()}"

    @property
    def resolved_seed(self) -> int:
        """The seed in force. Resolved at start (a random one per data dir when unset)."""
        if self.seed is None:
            raise RuntimeError("the seed is unresolved: use credentials.with_seed(settings)")
        return self.seed

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
        if "allowed_hosts" in values:
            raw_names = str(values["allowed_hosts"])
            values["allowed_hosts"] = tuple(
                h.strip().lower() for h in raw_names.split(",") if h.strip()
            )
        if str(values.get("seed", "x")).strip() == "":
            del values["seed"]  # UNLIMCALL_SEED= (empty): unset, as in a compose file
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
            wanted = {
                int: "an integer",
                int | None: "an integer",
                float: "a number",
                bool: "true or false",
            }.get(fields[name].type, str(exc).split(" - at ")[0].lower())
            raise ValueError(
                f"UNLIMCALL_{name.upper()}: expected {wanted}, got {values[name]!r}"
            ) from None
        if settings.time_scale <= 0:
            raise ValueError(
                f"UNLIMCALL_TIME_SCALE: expected a number > 0, got {values['time_scale']!r}"
            )
        Egress.parse(settings.webhook_egress, settings.webhook_allow)  # names the variable
        if settings.log_format not in LOG_FORMATS:
            raise ValueError(
                f"UNLIMCALL_LOG_FORMAT: expected one of {', '.join(LOG_FORMATS)}, "
                f"got {settings.log_format!r}"
            )
        return settings

    def refuse_weak_admin_token(self) -> None:
        """Raise ValueError (naming the variable) when the admin token given is short or a
        placeholder, unless ``insecure_admin_token``. For the processes that serve the API."""
        if self.admin_token is None or self.insecure_admin_token:
            return
        problem = admin_token_problem(self.admin_token)
        if problem:
            raise ValueError(
                f"UNLIMCALL_ADMIN_TOKEN: {problem}; use a random one of at least "
                f"{ADMIN_TOKEN_MIN} characters (python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'), or leave it unset to have one made "
                "and stored in the data dir (--insecure-admin-token allows it anyway, "
                "for throwaway local use)"
            )

    def with_admin_token(self) -> Settings:
        """Return settings whose admin token is set (generated when missing)."""
        if self.admin_token:
            return self
        return msgspec.structs.replace(self, admin_token="adm_" + secrets.token_urlsafe(24))


# The admin token opens the whole control plane: no short ones, none copied from a sample.
ADMIN_TOKEN_MIN = 24
PLACEHOLDER_ADMIN_TOKENS = frozenset(
    {
        "change-me-admin",
        "change-me",
        "changeme",
        "ci-admin-token",
        "admin",
        "administrator",
        "password",
        "secret",
        "token",
        "test",
        "sandbox",
        "unlimcall",
        "please-change-me-admin-token",
        "change-me-to-a-long-random-admin-token",
    }
)


def admin_token_problem(token: str) -> str | None:
    """Why ``token`` is not fit to guard the control plane, or None."""
    if token.strip().lower() in PLACEHOLDER_ADMIN_TOKENS:
        return f"{token!r} is a placeholder from an example"
    if len(token) < ADMIN_TOKEN_MIN:
        return f"too short ({len(token)} characters, at least {ADMIN_TOKEN_MIN} needed)"
    if len(set(token)) < 8:
        return "too few distinct characters"
    return None


def _dec_hook(type_: type, obj: object) -> object:
    if type_ is Path and isinstance(obj, str):
        return Path(obj)
    raise NotImplementedError
