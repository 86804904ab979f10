"""Control-plane commands: ``trigger``, ``clock``, ``clock advance``, ``reset``,
``deliveries [--follow]`` and ``accounts``, over HTTP to a running sandbox's ``/_sandbox``
(so nobody needs curl for the common moves). Human-readable lines by default; ``--json``
prints what the sandbox answered."""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unlimcall_sandbox.cli.errors import PROG, CliError, reason
from unlimcall_sandbox.server.settings import Settings

if TYPE_CHECKING:
    import httpx

# The server's lists (services.events.EVENT_TYPES, services.deliveries.STATUSES), copied so
# that ``--help`` does not import the server; a test keeps them equal.
EVENT_TYPES = ("call.ended", "call.transferred", "disposition.set", "dnc.added", "lead.completed")
DELIVERY_STATUSES = ("pending", "delivered", "failed", "cancelled")

Say = Callable[[str], None]


def _say(text: str) -> None:
    print(text, flush=True)


def sandbox_url(settings: Settings, url: str | None) -> str:
    """``--url``, else UNLIMCALL_PUBLIC_URL, else http://UNLIMCALL_HOST:UNLIMCALL_PORT (a
    wildcard host means this machine)."""
    if url:
        return url.rstrip("/")
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(  # noqa: S104
        settings.host, settings.host
    )
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def admin_token(settings: Settings, given: str | None, data_dir: Path) -> str:
    """``--admin-token``, else UNLIMCALL_ADMIN_TOKEN, else the one stored in the data dir."""
    from unlimcall_sandbox.server import credentials

    token = (
        given or settings.admin_token or credentials.read_secret(data_dir, credentials.ADMIN_FILE)
    )
    if not token:
        raise CliError(
            "no admin token: pass --admin-token or set UNLIMCALL_ADMIN_TOKEN (the sandbox's "
            f"banner shows it), or point --data-dir at the sandbox's data dir (none in {data_dir})",
            2,
        )
    return token


class ControlPlane:
    """``/_sandbox`` of one running sandbox; every failure is a ``CliError``."""

    def __init__(self, base_url: str, admin: str) -> None:
        import httpx

        self.base_url = base_url
        self.http = httpx.Client(
            base_url=base_url,
            timeout=30,
            trust_env=False,
            headers={"Authorization": f"Bearer {admin}"},
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def unreachable(self, exc: httpx.HTTPError) -> CliError:
        why = re.sub(r"^\[Errno -?\d+\]\s*", "", reason(exc))
        return CliError(
            f"no sandbox answers at {self.base_url} ({why}); start one "
            "with 'unlimcall-sandbox serve', or point --url (or UNLIMCALL_PUBLIC_URL) at it"
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            r = self.http.request(method, f"/_sandbox{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from None
        if r.status_code == 401:
            raise CliError(
                f"the sandbox at {self.base_url} refused the admin token; pass the one its "
                "banner shows with --admin-token or UNLIMCALL_ADMIN_TOKEN"
            )
        said = _message(r)
        if r.status_code == 405 or (
            r.status_code == 404 and (not said.startswith("No ") or said.startswith("No route"))
        ):
            raise CliError(
                f"the sandbox at {self.base_url} has no {method} /_sandbox{path} "
                f"({r.status_code}); it may be older than this {PROG}"
            )
        if r.status_code >= 400:
            raise CliError(f"{method} /_sandbox{path}: {said}")
        try:
            return r.json()
        except ValueError:
            raise CliError(
                f"{self.base_url} answered {method} /_sandbox{path} with something other "
                "than JSON; is --url the sandbox?"
            ) from None


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return f"HTTP {r.status_code}"
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return f"HTTP {r.status_code}: {r.text[:200]}"


def _dump(data: Any) -> None:
    _say(json.dumps(data, indent=2))


# -- trigger -------------------------------------------------------------------------------


def parse_fields(pairs: list[str]) -> dict[str, Any]:
    """``k=v`` pairs; a value that parses as JSON (``42``, ``true``, ``"text"``) is that
    JSON value, anything else is text."""
    fields: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--field wants KEY=VALUE, got {pair!r}", 2)
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        fields[key.strip()] = value
    return fields


def trigger(
    cp: ControlPlane, event: str, customer: str, fields: dict[str, Any], as_json: bool
) -> int:
    body = {"customerId": customer, "event": event, "fields": fields}
    data = cp.request("POST", "/events", json=body)
    if as_json:
        _dump(data)
        return 0
    n = data.get("deliveries", 0)
    _say(
        f"Triggered {data.get('event', event)} (event {data.get('eventId')}) for customer "
        f"{customer}: {n} {'delivery' if n == 1 else 'deliveries'} queued"
    )
    if n == 0:
        _say(f"  No hook of customer {customer} subscribes to {event}.")
    return 0


# -- clock ---------------------------------------------------------------------------------

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d`` → seconds (> 0)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if found is None or float(found.group(1)) <= 0:
        raise CliError(f"clock advance wants a duration like 90, 15m, 2h or 1d; got {text!r}", 2)
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def show_clock(cp: ControlPlane, as_json: bool) -> int:
    data = cp.request("GET", "/clock")
    if as_json:
        _dump(data)
        return 0
    _say(f"Sandbox time: {data.get('sandboxTime')}   (time scale {data.get('scale', 1):g})")
    return 0


def advance_clock(cp: ControlPlane, seconds: str | None, to: str | None, as_json: bool) -> int:
    if (seconds is None) == (to is None):
        raise CliError("clock advance wants SECONDS or --to TIMESTAMP (one of them)", 2)
    body: dict[str, Any] = (
        {"to": to} if to is not None else {"seconds": parse_duration(seconds or "")}
    )
    data = cp.request("POST", "/clock/advance", json=body)
    if as_json:
        _dump(data)
        return 0
    extra = ", ".join(f"{k} {v}" for k, v in data.items() if k != "sandboxTime")
    _say(f"Sandbox time: {data.get('sandboxTime')}" + (f"   ({extra})" if extra else ""))
    return 0


# -- reset, accounts -----------------------------------------------------------------------


def reset(cp: ControlPlane, as_json: bool) -> int:
    data = cp.request("POST", "/reset")
    if as_json:
        _dump(data)
        return 0
    _say("Reset: every account, call, hook and delivery is gone; the demo data is reloaded.")
    _say(f"  Demo token:   {data.get('demoToken')}   (customer {data.get('customerId')})")
    return 0


def accounts(cp: ControlPlane, as_json: bool) -> int:
    data = cp.request("GET", "/accounts")
    if as_json:
        _dump(data)
        return 0
    items = data.get("accounts", [])
    _say(f"{'CUSTOMER':<10} {'STATUS':<10} {'BALANCE':>14}  {'COMPANY':<28} EMAIL")
    for a in items:
        balance = f"{a.get('balance', 0):.2f} {a.get('currency', '')}"
        _say(
            f"{a.get('customerId', ''):<10} {a.get('status', ''):<10} {balance:>14}  "
            f"{str(a.get('companyName', ''))[:28]:<28} {a.get('primaryContactEmail', '')}"
        )
    _say(f"{len(items)} account{'s' if len(items) != 1 else ''}")
    return 0


# -- deliveries ----------------------------------------------------------------------------


def attempt_line(delivery: dict[str, Any], attempt: dict[str, Any]) -> str:
    code = attempt.get("statusCode")
    line = (
        f"{attempt.get('attemptedAt')}  {delivery.get('event', ''):<16}  "
        f"{code if code is not None else 'ERR':>3}  {attempt.get('outcome') or '':<10}  "
        f"{delivery.get('targetUrl')}  [{delivery.get('id')} #{attempt.get('number')}]"
    )
    if attempt.get("latencyMs") is not None:
        line += f"  {attempt['latencyMs']} ms"
    if attempt.get("error"):
        line += f"  {attempt['error']}"
    if attempt.get("nextAttemptAt"):
        line += f"  retry at {attempt['nextAttemptAt']}"
    return line


def _query(
    customer: str | None, status: str | None, event: str | None, limit: int
) -> dict[str, str]:
    params = {"limit": str(limit)}
    if customer:
        params["customerId"] = customer
    if status:
        params["status"] = status
    if event:
        params["event"] = event
    return params


def _attempts(items: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    pairs = [(d, a) for d in items for a in d.get("attempts", [])]
    pairs.sort(
        key=lambda p: (str(p[1].get("attemptedAt")), str(p[0].get("id")), p[1].get("number", 0))
    )
    return pairs


def deliveries(
    cp: ControlPlane,
    *,
    customer: str | None,
    status: str | None,
    event: str | None,
    limit: int,
    as_json: bool,
) -> int:
    data = cp.request("GET", "/deliveries", params=_query(customer, status, event, limit))
    if as_json:
        _dump(data)
        return 0
    items: list[dict[str, Any]] = data.get("deliveries", [])
    for d, a in _attempts(items):
        _say(attempt_line(d, a))
    for d in items:
        if not d.get("attempts"):
            _say(
                f"{d.get('createdAt')}  {d.get('event', ''):<16}  ...  {d.get('status', ''):<10}  "
                f"{d.get('targetUrl')}  [{d.get('id')}]  no attempt yet"
            )
    if not items:
        _say("No deliveries" + (" match" if customer or status or event else " yet") + ".")
    return 0


def follow(
    cp: ControlPlane,
    *,
    customer: str | None,
    status: str | None,
    event: str | None,
    as_json: bool,
    max_attempts: int | None = None,
    poll: float = 0.5,
) -> int:
    """Print every delivery attempt made from now on, one line each, until Ctrl-C (like
    ``stripe logs tail``)."""
    with contextlib.suppress(KeyboardInterrupt):  # the way a tail ends
        _tail(cp, _query(customer, status, event, 1000), customer, as_json, max_attempts, poll)
    return 0


def _tail(
    cp: ControlPlane,
    params: dict[str, str],
    customer: str | None,
    as_json: bool,
    max_attempts: int | None,
    poll: float,
) -> None:
    seen: set[tuple[str, int]] = set()
    printed = 0
    first = True
    while True:
        data = cp.request("GET", "/deliveries", params=params)
        for d, a in _attempts(data.get("deliveries", [])):
            key = (str(d.get("id")), int(a.get("number", 0)))
            if key in seen:
                continue
            seen.add(key)
            if first:
                continue  # what happened before the tail started
            if as_json:
                _say(json.dumps({**{k: v for k, v in d.items() if k != "attempts"}, "attempt": a}))
            else:
                _say(attempt_line(d, a))
            printed += 1
            if max_attempts is not None and printed >= max_attempts:
                return
        if first:
            first = False
            scope = f" of customer {customer}" if customer else ""
            print(
                f"Ready! Tailing webhook deliveries{scope} at {cp.base_url} (Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(poll)
