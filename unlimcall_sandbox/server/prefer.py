"""Per-request forcing: ``Prefer: code=<status>`` and/or ``Prefer: error=<code>`` make one
``/v1`` request answer with an error the contract lists for its operation, in the
contract's envelope, before authentication and without side effects (like Prism's
``Prefer`` header); the answer says ``Preference-Applied`` (RFC 7240 §3).

A preference that cannot be applied — not an HTTP status, or a status or code the
operation does not list — is ignored, as RFC 7240 §2 asks of a server that cannot honour
one: the request is answered as if it had not been sent, and the response carries the
reason in ``X-Unlimcall-Prefer-Ignored``. So ``Prefer`` never produces a status the
operation does not list. Other preferences (``return=minimal``, …) are ignored silently.
Fault rules (``services.faults``) use the same table: a rule is refused when it would
inject what the operation does not list.
"""

from __future__ import annotations

from dataclasses import dataclass

from unlimcall_sandbox.server.errors import ApiError

# Per operationId: the error statuses the contract lists, and the codes each may carry
# (the contract's own codes, plus the sandbox's code where the contract names none).
FORCEABLE: dict[str, dict[int, tuple[str, ...]]] = {
    "getMe": {401: ("unauthorized",), 403: ("account_suspended",)},
    "getBalance": {401: ("unauthorized",), 500: ("balance_unavailable",)},
    "listCdrs": {
        400: ("invalid_timestamp", "till_must_be_after_from", "window_too_wide", "invalid_input"),
        401: ("unauthorized",),
        409: ("account_not_provisioned",),
    },
    "listAgents": {401: ("unauthorized",)},
    "originateCall": {
        400: ("invalid_input",),
        401: ("unauthorized",),
        404: ("ai_agent_not_found",),
        409: ("ai_agent_not_provisioned", "account_not_provisioned", "dialer_required"),
        502: ("originate_failed",),
        503: ("engine_not_configured",),
    },
    "createHook": {400: ("invalid_input",), 401: ("unauthorized",)},
    "deleteHook": {400: ("invalid_input",), 401: ("unauthorized",), 404: ("not_found",)},
}

APPLIED = "Preference-Applied"
"""RFC 7240 §3: on a forced answer, the preferences it applied."""
IGNORED = "X-Unlimcall-Prefer-Ignored"
"""On the answer to a request whose forcing preference was ignored: why."""


def _errors() -> dict[str, type[ApiError]]:
    found: dict[str, type[ApiError]] = {}
    stack: list[type[ApiError]] = [ApiError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


_BY_CODE = _errors()


class Unusable(Exception):
    """A forcing preference that cannot be applied to the operation. Never an answer: the
    gate ignores the preference and gives ``reason`` in ``IGNORED``; the control plane
    refuses a fault rule with it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _shown(value: str) -> str:
    """A client's value, safe to repeat in a header: printable ASCII, at most 32 chars."""
    text = "".join(c if " " <= c <= "~" and c != '"' else "?" for c in value[:32])
    return f'"{text}"' + ("..." if len(value) > 32 else "")


def parse(header: str) -> tuple[int | None, str | None]:
    """The ``code`` and ``error`` preferences of a ``Prefer`` value (several headers
    joined with commas); the first instance of each counts (RFC 7240 §2). ``Unusable``
    when ``code`` is not an HTTP status."""
    status: str | None = None
    code: str | None = None
    for part in header.split(","):
        for item in part.split(";"):
            key, _, value = item.strip().partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "code" and status is None:
                status = value
            elif key == "error" and code is None:
                code = value
    if status is None:
        return None, code
    if not (len(status) == 3 and status.isascii() and status.isdigit()):
        raise Unusable(f"code={_shown(status)} is not an HTTP status")
    return int(status), code


def challenge(status: int) -> dict[str, str]:
    """The headers a forced answer carries: RFC 6750's challenge on a 401."""
    if status == 401:
        return {"WWW-Authenticate": 'Bearer realm="unlimcall", error="invalid_token"'}
    return {}


@dataclass(frozen=True, slots=True)
class Forced:
    status: int
    code: str
    message: str
    headers: dict[str, str]

    def error(self) -> ApiError:
        """The answer as the very error a service raises for ``code`` (the contract lists
        each code under one status, so the class's status is ``status``)."""
        return _BY_CODE[self.code](self.message, self.headers)


def allowed(operation: str) -> str:
    """What ``operation`` can be forced to, for messages."""
    listed = FORCEABLE[operation]
    return "; ".join(f"code={s} error={'|'.join(c)}" for s, c in sorted(listed.items()))


def resolve(operation: str, status: int | None, code: str | None) -> Forced | None:
    """The answer to force, None when nothing is forced; ``Unusable`` when the
    combination is not one the contract lists for ``operation``."""
    if status is None and code is None:
        return None
    listed = FORCEABLE[operation]
    if status is None:
        status = next((s for s, codes in listed.items() if code in codes), None)
        if status is None:
            raise Unusable(
                f"{operation} lists no error={_shown(code or '')}; "
                f"it can be forced to: {allowed(operation)}"
            )
    elif status not in listed:
        raise Unusable(f"{operation} lists no {status}; it can be forced to: {allowed(operation)}")
    if code is None:
        code = listed[status][0]
    elif code not in listed[status]:
        raise Unusable(
            f"{operation} lists no error={_shown(code)} under {status}; "
            f"it can be forced to: {allowed(operation)}"
        )
    message = _BY_CODE[code].default_message
    applied = f"code={status}, error={code}"
    return Forced(
        status,
        code,
        f"{message} (forced by the Prefer header)",
        {**challenge(status), APPLIED: applied},
    )
