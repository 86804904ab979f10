"""The ``/v1`` gate: the one middleware every contract operation passes through, after
routing and before its handler, whether the handler is a lean route (``http.lean``) or an
ordinary one.

In this order, and before any side effect: a ``Prefer`` header (``server.prefer``) may
force one of the operation's listed errors (a preference it cannot apply is ignored, and
the answer says why in ``X-Unlimcall-Prefer-Ignored``); fault rules
(``server.services.faults``) may add latency, inject an error or drop the connection;
then the caller is authenticated, once (``TokenVerifier``: who the token names, then
whether the token has the operation's scope), and left in the scope for the handler
(``http.principal_of``, ``http.provide_principal``). A route says which operation it is
and which scope it needs in its ``opt``. Errors are raised, never rendered here: the one
exception handler (``http.handle_exception``) answers them as it answers every error.

A suspended account is refused here only by the operations whose contract lists 403
(``getMe``); the others answer it with what they list (``docs/statuses.md``).
"""

from __future__ import annotations

import asyncio

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from unlimcall_sandbox.server.auth import Principal
from unlimcall_sandbox.server.errors import ApiError
from unlimcall_sandbox.server.http import DROP, PRINCIPAL, runtime_of
from unlimcall_sandbox.server.prefer import (
    FORCEABLE,
    IGNORED,
    Forced,
    Unusable,
    challenge,
    parse,
    resolve,
)
from unlimcall_sandbox.server.runtime import Runtime


class ConnectionDropped(ApiError):
    """A fault rule's dropped connection: the edge sends a broken response instead."""

    code = "connection_dropped"
    status = 500
    default_message = "never sent"


REFUSES_SUSPENDED = frozenset(op for op, listed in FORCEABLE.items() if 403 in listed)
"""The operations that answer a suspended account 403 ``account_suspended``: those whose
contract lists a 403 (``getMe``)."""


class Gate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        opt = scope["route_handler"].opt
        operation: str | None = opt.get("operation")
        # Not an operation (the contract file; Litestar's OPTIONS answers), or a method a
        # lean route refuses with 405, as Litestar refuses it before any gate elsewhere.
        method = scope.get("method")
        if operation is None or opt.get("method", method) != method:
            await self.app(scope, receive, send)
            return
        authorization: str | None = None
        prefer: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif name == b"prefer":
                # Several Prefer headers are one list (RFC 9110 §5.3).
                text = value.decode("latin-1")
                prefer = text if prefer is None else f"{prefer}, {text}"
        ignored: str | None = None
        if prefer:
            try:
                forced = resolve(operation, *parse(prefer))
            except Unusable as exc:
                # RFC 7240 §2: a preference the server cannot honour is ignored; the
                # answer says why, whatever it is (the handler's, or an error below).
                ignored = exc.reason
                send = _noting(send, ignored)
            else:
                if forced is not None:
                    raise forced.error()
        rt = runtime_of(scope)
        try:
            if rt.faults.quiet("api", operation):
                principal = await rt.verifier.identify(authorization)
            else:
                principal = await _faults(rt, scope, operation, authorization)
            scope["state"][PRINCIPAL] = rt.verifier.authorize(
                principal, opt.get("scope"), refuse_suspended=operation in REFUSES_SUSPENDED
            )
        except ApiError as exc:
            if ignored is not None:
                exc.headers = {**exc.headers, IGNORED: ignored}
            raise
        await self.app(scope, receive, send)


def _noting(send: Send, reason: str) -> Send:
    """``send``, with the reason a preference was ignored on the response."""
    header = (IGNORED.lower().encode(), reason.encode("latin-1"))

    async def noted(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)

    return noted


async def _faults(
    rt: Runtime, scope: Scope, operation: str, authorization: str | None
) -> Principal:
    """Fire the fault rules for ``operation``; returns who the token names (a rule may be
    for one account), or raises what the rules inject, else why the token names nobody."""
    failure: ApiError | None = None
    principal: Principal | None = None
    try:
        principal = await rt.verifier.identify(authorization)
    except ApiError as exc:
        failure = exc
    account_id = None if principal is None else principal.account_id
    for rule in await rt.faults.fire("api", operation, account_id):
        if rule.action == "latency":
            await asyncio.sleep(rt.faults.latency_of(rule))
        elif rule.action == "error":
            status, code = rule.params["status"], rule.params["error"]
            message = f"Injected by fault rule {rule.id}."
            raise Forced(status, code, message, challenge(status)).error()
        elif rule.action == "drop":
            scope["state"][DROP] = True
            raise ConnectionDropped()
    if principal is None:
        assert failure is not None
        raise failure
    return principal
