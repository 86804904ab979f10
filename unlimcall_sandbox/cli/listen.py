"""``unlimcall-sandbox listen``: like ``stripe listen``.

It mints a ``write:hooks`` token for the customer, subscribes hooks for the chosen events
that point at a private inbox inside the sandbox, prints each delivery as it arrives and
forwards it — same body, same headers — to ``--forward-to``.

One signing secret per session: a ``whsec_`` secret is generated locally and printed once;
the receiver only ever needs that one. Each delivery's sandbox signature is checked with the
secret of the hook that sent it (``X-Unlimcall-Hook-Id``; without that header, the hook
subscribed to its ``X-Unlimcall-Event``), then re-signed with the session secret at the same
timestamp (so an ``expired_signature`` fault still arrives expired). A delivery whose sandbox
signature does not verify is reported and forwarded as received, with the sandbox's own
signature, which cannot verify against the session secret either: the receiver's rejection
path is exercised (the ``bad_signature`` fault stays testable through ``listen``), and
nothing unverified ever carries a valid session signature.

On exit (Ctrl-C, SIGTERM, ``--max-events`` or an error) it removes its hooks, clears its
inbox and revokes the token it minted. The token also expires by itself after a day, so a
``listen`` killed with SIGKILL leaves no credential behind for long.
"""

from __future__ import annotations

import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import httpx

from unlimcall_sandbox.server.signing import sign, verify_signature

FORWARDED_HEADERS = (
    "content-type",
    "x-unlimcall-signature",
    "x-unlimcall-event",
    "x-unlimcall-delivery",
    "x-unlimcall-hook-id",
    "user-agent",
)
SIGNATURE = "x-unlimcall-signature"
TOKEN_LIFETIME = 86400
"""Seconds: the session token's own expiry, a safety net for a ``listen`` that is killed."""
CLEANUP_TOKEN_LIFETIME = 300
INBOX_LIMIT = 1000


class ListenError(Exception):
    """A one-line reason to stop; ``listen`` prints it and exits 1."""


def _say(text: str) -> None:
    print(text, flush=True)


def _warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return text or type(exc).__name__


def unreachable(base_url: str, exc: httpx.TransportError) -> str:
    """The one line printed when the sandbox cannot be reached at start."""
    return (
        f"listen: no sandbox at {base_url}: {_reason(exc)} — "
        "start one with 'unlimcall-sandbox serve'"
    )


def _timestamp(header: str) -> int | None:
    """The header's ``t=`` (the last one, as ``verify_signature`` reads it)."""
    found: int | None = None
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                found = int(value)
            except ValueError:
                return None
    return found


@dataclass(frozen=True)
class Prepared:
    headers: dict[str, str]
    """What to forward: the sandbox's headers, re-signed when the signature verified."""
    problem: str | None
    """None when the sandbox's signature verified with the hook's secret."""
    age: int | None
    """Seconds between the signature's timestamp and now (when it verified)."""


def prepare(
    message: Mapping[str, Any],
    by_hook: Mapping[str, str],
    by_event: Mapping[str, str],
    session_secret: str,
    now: float | None = None,
) -> Prepared:
    """Check one inbox message's sandbox signature; the headers to forward it with."""
    received: Mapping[str, str] = message["headers"]
    headers = {k: v for k, v in received.items() if k in FORWARDED_HEADERS}
    body = str(message["rawBody"]).encode("utf-8")
    hook_id = received.get("x-unlimcall-hook-id")
    event = received.get("x-unlimcall-event", "")
    if hook_id is not None:
        secret = by_hook.get(hook_id)
        origin = f"hook {hook_id}"
    else:
        secret = by_event.get(event)
        origin = f"the {event or '(no event)'} hook"
    header = received.get(SIGNATURE, "")
    if secret is None:
        return Prepared(headers, f"not from one of this session's hooks ({origin})", None)
    if not header:
        return Prepared(headers, "unsigned", None)
    if not verify_signature(secret, header, body, tolerance=0):
        return Prepared(headers, f"signature does not verify with the secret of {origin}", None)
    t = _timestamp(header)
    assert t is not None  # verify_signature found it
    headers[SIGNATURE] = sign(session_secret, body, t)
    current = time.time() if now is None else now
    return Prepared(headers, None, int(current - t))


@dataclass
class _Session:
    admin: httpx.Client
    base_url: str
    customer: str
    token_ids: list[str] = field(default_factory=list)
    token: str | None = None
    hooks: dict[str, str] = field(default_factory=dict)
    """hook id -> its sandbox secret"""
    events: dict[str, str] = field(default_factory=dict)
    """event -> the secret of the hook subscribed to it"""
    inbox: str = field(default_factory=lambda: f"listen-{secrets.token_hex(6)}")

    def _check(self, r: httpx.Response, doing: str) -> None:
        if r.status_code == 401:
            raise ListenError(
                f"listen: the sandbox at {self.base_url} refused the admin token — give the "
                "one 'unlimcall-sandbox serve' printed (--admin-token or UNLIMCALL_ADMIN_TOKEN)"
            )
        if r.is_error:
            raise ListenError(f"listen: cannot {doing}: {r.status_code} {r.text.strip()}")

    def mint(self, lifetime: int) -> str:
        r = self.admin.post(
            f"/_sandbox/accounts/{self.customer}/tokens",
            json={"scopes": ["write:hooks"], "expiresIn": lifetime},
        )
        if r.status_code == 404:
            raise ListenError(f"listen: no customer {self.customer} in the sandbox")
        self._check(r, f"mint a token for customer {self.customer}")
        self.token_ids.append(r.json()["id"])
        token: str = r.json()["token"]
        return token

    def subscribe(self, events: list[str]) -> None:
        if not events:
            raise ListenError("listen: no events given (--events call.ended,dnc.added,...)")
        self.token = self.mint(TOKEN_LIFETIME)
        target = f"{self.base_url}/_sandbox/inbox/{self.inbox}"
        for event in events:
            r = self.admin.post(
                "/v1/hooks",
                json={"event": event, "target_url": target},
                headers={"Authorization": f"Bearer {self.token}"},
            )
            if r.is_error:
                raise ListenError(f"listen: cannot subscribe {event}: {r.text.strip()}")
            created = r.json()
            self.hooks[created["id"]] = created["secret"]
            self.events[event] = created["secret"]

    def messages(self) -> list[dict[str, Any]]:
        r = self.admin.get(f"/_sandbox/inbox/{self.inbox}", params={"limit": str(INBOX_LIMIT)})
        self._check(r, "read the inbox")
        items: list[dict[str, Any]] = r.json()["messages"]
        return items

    def cleanup(self) -> list[str]:
        """Remove the hooks, clear the inbox, revoke the tokens; what could not be done."""
        problems: list[str] = []
        try:
            token = self.token
            for hook_id in list(self.hooks):
                r = self._unhook(hook_id, token)
                if r.status_code == 401:  # the session token expired: a short-lived one
                    token = self.mint(CLEANUP_TOKEN_LIFETIME)
                    r = self._unhook(hook_id, token)
                if r.status_code not in (204, 404):  # 404: already gone (a reset)
                    problems.append(f"hook {hook_id}: {r.status_code} {r.text.strip()}")
            if self.hooks:
                self.admin.delete(f"/_sandbox/inbox/{self.inbox}")
            for token_id in self.token_ids:
                r = self.admin.delete(f"/_sandbox/tokens/{token_id}")
                if r.status_code not in (200, 404):  # 404: already revoked (a reset)
                    problems.append(f"token {token_id}: {r.status_code} {r.text.strip()}")
        except ListenError as exc:
            problems.append(str(exc))
        except httpx.TransportError as exc:
            problems.append(f"the sandbox at {self.base_url}: {_reason(exc)}")
        return problems

    def _unhook(self, hook_id: str, token: str | None) -> httpx.Response:
        return self.admin.delete(
            f"/v1/hooks/{hook_id}", headers={"Authorization": f"Bearer {token}"}
        )


class _Stop:
    """Set from a signal handler: a plain flag (no lock a handler could deadlock on)."""

    requested = False

    def request(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True


def _on_signals(handler: Callable[[int, FrameType | None], None]) -> dict[int, Any]:
    """Install ``handler`` for SIGINT and SIGTERM (main thread only); the previous ones."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def listen(
    base_url: str,
    admin_token: str,
    customer: str,
    events: list[str],
    forward_to: str,
    max_events: int | None = None,
    poll: float = 0.25,
    secret: str | None = None,
) -> int:
    """Run a listen session until stopped; the exit code (0, or 1 after an error)."""
    base_url = base_url.rstrip("/")
    session_secret = secret or new_secret()
    stopping = _Stop()
    previous = _on_signals(stopping.request)
    admin = httpx.Client(
        base_url=base_url,
        timeout=10,
        trust_env=False,
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    session = _Session(admin, base_url, customer)
    forwarded = 0
    code = 0
    try:
        try:
            session.subscribe(events)
            _say(f"Ready! Your webhook signing secret is {session_secret} (^C to quit)")
            _say(
                f"Forwarding {', '.join(events)} for customer {customer} to {forward_to}, "
                "signed with that secret"
            )
            forwarded = _forward(session, session_secret, forward_to, max_events, poll, stopping)
        except ListenError as exc:
            _warn(str(exc))
            code = 1
        except httpx.TransportError as exc:
            if session.token_ids:
                _warn(f"listen: lost the sandbox at {base_url}: {_reason(exc)}")
            else:
                _warn(unreachable(base_url, exc))
            code = 1
        finally:
            problems = session.cleanup() if session.token_ids else []
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        admin.close()
    for problem in problems:
        _warn(f"listen: could not remove its hooks or revoke its token — {problem}")
    if problems:
        return 1
    if session.token_ids:
        _say(
            f"Stopped after forwarding {forwarded} deliveries; "
            f"removed its {len(session.hooks)} hook{'' if len(session.hooks) == 1 else 's'} "
            "and revoked its token."
        )
    return code


def _forward(
    session: _Session,
    session_secret: str,
    forward_to: str,
    max_events: int | None,
    poll: float,
    stopping: _Stop,
) -> int:
    seen = forwarded = 0
    with httpx.Client(timeout=10, trust_env=False) as out:
        while not stopping.requested:
            for message in session.messages()[seen:]:
                seen += 1
                stamp = time.strftime("%H:%M:%S")
                prepared = prepare(message, session.hooks, session.events, session_secret)
                _say(f"{stamp}   --> {message['event']} [{message['deliveryId']}]")
                if prepared.problem is not None:
                    _say(
                        f"{stamp}   !!  sandbox signature rejected ({prepared.problem}): "
                        "forwarded as received, it will not verify with the session secret"
                    )
                elif prepared.age is not None and prepared.age > 300:
                    _say(f"{stamp}   !!  signed {prepared.age} s ago: forwarded with that age")
                try:
                    answer = out.post(
                        forward_to,
                        content=str(message["rawBody"]).encode("utf-8"),
                        headers=prepared.headers,
                    )
                    _say(f"{stamp}  <--  [{answer.status_code}] POST {forward_to}")
                except httpx.HTTPError as exc:
                    _say(f"{stamp}  <--  [ERR] POST {forward_to}: {exc}")
                forwarded += 1
                if max_events is not None and forwarded >= max_events:
                    return forwarded
            if seen >= INBOX_LIMIT:
                raise ListenError(
                    f"listen: {INBOX_LIMIT} deliveries received; restart listen to go on"
                )
            time.sleep(poll)
    return forwarded


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
