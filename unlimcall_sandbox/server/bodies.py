"""Request bodies read whole, before anything else runs: the edge buffers every body (with
the size limit and a read deadline) before routing, so no handler, dependency or
transaction ever waits on a client's upload. A slow upload is answered at once when its
deadline passes: 408 ``request_timeout``; a body over the size limit is 413
``payload_too_large``. On ``/v1``, whose body-taking operations list 400 and no 408 or
413, both are 400 ``invalid_input``.
"""

from __future__ import annotations

from typing import Any

from litestar.types import HTTPRequestEvent, Receive, Scope

from unlimcall_sandbox.server import budget
from unlimcall_sandbox.server.errors import ApiError, InvalidInput, PayloadTooLarge


class RequestTimeout(ApiError):
    code = "request_timeout"
    status = 408


class ClientGone(Exception):
    """The client disconnected before its body was complete."""


SLOW_BODY = "Request body not received in time."


def _contract(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def slow_body_error(path: str) -> ApiError:
    """What a body not received within the deadline is answered with on ``path``."""
    if _contract(path):
        return InvalidInput(SLOW_BODY)  # the contract lists 400 for every /v1 body route
    return RequestTimeout(SLOW_BODY)


def too_large_error(path: str, limit: int) -> ApiError:
    """What a body over ``limit`` bytes is answered with on ``path``."""
    message = f"Request body larger than {limit} bytes."
    if _contract(path):
        return InvalidInput(message)  # the contract lists 400 (and no 413) there
    return PayloadTooLarge(message)


def _announced(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return str(value.decode("latin-1"))
    return ""


async def buffer_body(scope: Scope, receive: Receive, *, limit: int, deadline: float) -> Receive:
    """Read the whole body of a request within ``deadline`` seconds (in total, not per
    chunk: a trickle of bytes does not extend it) and at most ``limit`` bytes; return a
    ``receive`` that replays it, then passes on to the real one (disconnect notices).

    Raises the too-large or slow-body error of the path, or ``ClientGone``."""
    announced = _announced(scope)
    if announced.isdigit() and int(announced) > limit:
        raise too_large_error(scope["path"], limit)
    chunks: list[bytes] = []
    received = 0
    path = scope["path"]
    with budget.deadline(deadline, lambda: slow_body_error(path)):
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientGone()
            body = message.get("body", b"")
            received += len(body)
            if received > limit:
                raise too_large_error(path, limit)
            chunks.append(body)
            if not message.get("more_body", False):
                break
    whole = b"".join(chunks)
    replayed = False

    async def replay() -> Any:
        nonlocal replayed
        if not replayed:
            replayed = True
            message: HTTPRequestEvent = {"type": "http.request", "body": whole, "more_body": False}
            return message
        return await receive()

    return replay
