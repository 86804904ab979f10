"""Request bodies read whole, before anything else runs: the edge buffers every body (with
the size limit and a read deadline) before routing, so no handler, dependency or
transaction ever waits on a client's upload. A slow upload is answered at once when its
deadline passes: 408 ``request_timeout`` (on ``/v1``: the contract's 400 ``invalid_input``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.types import HTTPRequestEvent, Receive, Scope

from unlimcall_sandbox.server.errors import ApiError, InvalidInput, PayloadTooLarge


class RequestTimeout(ApiError):
    code = "request_timeout"
    status = 408


class ClientGone(Exception):
    """The client disconnected before its body was complete."""


SLOW_BODY = "Request body not received in time."


def slow_body_error(path: str) -> ApiError:
    """What a body not received within the deadline is answered with on ``path``."""
    if path == "/v1" or path.startswith("/v1/"):
        return InvalidInput(SLOW_BODY)  # the contract lists 400 for every /v1 body route
    return RequestTimeout(SLOW_BODY)


def _announced(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return str(value.decode("latin-1"))
    return ""


async def buffer_body(scope: Scope, receive: Receive, *, limit: int, deadline: float) -> Receive:
    """Read the whole body of a request within ``deadline`` seconds (in total, not per
    chunk: a trickle of bytes does not extend it) and at most ``limit`` bytes; return a
    ``receive`` that replays it, then passes on to the real one (disconnect notices).

    Raises ``PayloadTooLarge``, the slow-body error of the path, or ``ClientGone``."""
    announced = _announced(scope)
    if announced.isdigit() and int(announced) > limit:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    received = 0
    try:
        async with asyncio.timeout(deadline):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise ClientGone()
                body = message.get("body", b"")
                received += len(body)
                if received > limit:
                    raise PayloadTooLarge()
                chunks.append(body)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise slow_body_error(scope["path"]) from None
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
