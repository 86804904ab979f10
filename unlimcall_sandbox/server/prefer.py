"""Per-request forcing: ``Prefer: code=<status>`` and/or ``Prefer: error=<code>`` make one
``/v1`` request answer with an error the contract lists for its operation, in the
contract's envelope, before authentication and without side effects (like Prism's
``Prefer`` header). An unlisted combination is 400 ``invalid_prefer`` saying what is
allowed. Other preferences (RFC 7240, e.g. ``return=minimal``) are ignored.
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


def _errors() -> dict[str, type[ApiError]]:
    found: dict[str, type[ApiError]] = {}
    stack: list[type[ApiError]] = [ApiError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


_BY_CODE = _errors()


class InvalidPrefer(ApiError):
    code = "invalid_prefer"
    status = 400
    default_message = "This Prefer combination is not one the contract lists here."


def parse(header: str) -> tuple[int | None, str | None]:
    status: int | None = None
    code: str | None = None
    for part in header.split(","):
        for item in part.split(";"):
            key, _, value = item.strip().partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "code":
                if not value.isdigit() or len(value) != 3:
                    raise InvalidPrefer(f"Prefer code={value!r} is not an HTTP status.")
                status = int(value)
            elif key == "error":
                code = value
    return status, code


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


def resolve(operation: str, status: int | None, code: str | None) -> Forced | None:
    """The answer to force, None when nothing is forced; InvalidPrefer when the
    combination is not listed for ``operation``."""
    if status is None and code is None:
        return None
    listed = FORCEABLE[operation]
    allowed = "; ".join(f"code={s} error={'|'.join(c)}" for s, c in sorted(listed.items()))
    if status is None:
        status = next((s for s, codes in listed.items() if code in codes), None)
    if status is None or status not in listed:
        raise InvalidPrefer(f"{operation} can be forced to: {allowed}.")
    if code is None:
        code = listed[status][0]
    if code not in listed[status]:
        raise InvalidPrefer(f"{operation} can be forced to: {allowed}.")
    message = _BY_CODE[code].default_message
    return Forced(status, code, f"{message} (forced by the Prefer header)", challenge(status))
