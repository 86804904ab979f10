"""Every error the sandbox answers with: a class per stable code, mapped once to the envelope.

Services raise these; ``server.app`` turns them (and Litestar's own HTTP errors) into
``{"error": code, "message": detail}`` with the class's status.
"""

from __future__ import annotations

from typing import ClassVar


class ApiError(Exception):
    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal error."

    def __init__(self, message: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.headers = headers or {}
        super().__init__(self.message)


class InvalidInput(ApiError):
    code = "invalid_input"
    status = 400
    default_message = "Invalid input."


class InvalidTimestamp(ApiError):
    code = "invalid_timestamp"
    status = 400
    default_message = "from/till must be ISO 8601 timestamps."


class TillMustBeAfterFrom(ApiError):
    code = "till_must_be_after_from"
    status = 400
    default_message = "till must be after from."


class WindowTooWide(ApiError):
    code = "window_too_wide"
    status = 400
    default_message = "The window between from and till must be at most 31 days."


class PayloadTooLarge(ApiError):
    code = "payload_too_large"
    status = 413
    default_message = "Request body too large."


class Unauthorized(ApiError):
    code = "unauthorized"
    status = 401
    default_message = "Token invalid, expired, revoked, or missing the required scope."


class AccountSuspended(ApiError):
    code = "account_suspended"
    status = 403
    default_message = "This account is suspended."


class NotFound(ApiError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class AiAgentNotFound(ApiError):
    code = "ai_agent_not_found"
    status = 404
    default_message = "No agent with that ID on this account."


class AccountNotProvisioned(ApiError):
    code = "account_not_provisioned"
    status = 409
    default_message = "Account has no trunk allocated yet."


class AiAgentNotProvisioned(ApiError):
    code = "ai_agent_not_provisioned"
    status = 409
    default_message = "The agent is not provisioned yet."


class DialerRequired(ApiError):
    code = "dialer_required"
    status = 409
    default_message = "The dialer add-on is required to originate calls."


class BalanceUnavailable(ApiError):
    code = "balance_unavailable"
    status = 500
    default_message = "Upstream snapshot fetch failed; retry."


class OriginateFailed(ApiError):
    code = "originate_failed"
    status = 502
    default_message = "Upstream rejected the originate."


class EngineNotConfigured(ApiError):
    code = "engine_not_configured"
    status = 503
    default_message = "Origination not available in this environment."


class ServiceUnavailable(ApiError):
    code = "service_unavailable"
    status = 503
    default_message = "A dependency is unavailable."
