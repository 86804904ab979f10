"""A minimal, fast webhook receiver: a raw asyncio HTTP/1.1 server (keep-alive,
Content-Length bodies) that answers every POST ``200 ok`` at once and remembers when each
delivery (``X-Unlimcall-Delivery``) first arrived, with its ``eventId``.

``python -m bench.receiver --port P``; ``GET /__stats`` answers
``{"received": n, "deliveries": {deliveryId: [eventId, first_arrival_unix_s]}}``,
``POST /__reset`` forgets everything, ``GET /__ready`` is the readiness probe.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any, cast

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class State:
    def __init__(self) -> None:
        self.received = 0
        self.first: dict[str, tuple[str, float]] = {}


class _Conn(asyncio.Protocol):
    def __init__(self, state: State) -> None:
        self.state = state
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            size = int(headers.get("content-length", "0") or 0)
            if len(self.buf) < end + 4 + size:
                return
            body = bytes(self.buf[end + 4 : end + 4 + size])
            del self.buf[: end + 4 + size]
            method, target = [*lines[0].split(" "), "", ""][:2]
            self._handle(method, target, headers, body)

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        assert self.transport is not None
        if target.startswith("/__"):
            payload: Any = {"status": "ok"}
            if target.startswith("/__stats"):
                payload = {
                    "received": self.state.received,
                    "deliveries": {k: list(v) for k, v in self.state.first.items()},
                }
            elif target.startswith("/__reset"):
                self.state.received = 0
                self.state.first.clear()
            raw = json.dumps(payload).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(raw)).encode()
                + b"\r\n\r\n"
                + raw
            )
            return
        now = time.time()
        self.state.received += 1
        delivery = headers.get("x-unlimcall-delivery", "")
        if delivery and delivery not in self.state.first:
            try:
                event_id = str(json.loads(body).get("eventId", ""))
            except ValueError:
                event_id = ""
            self.state.first[delivery] = (event_id, now)
        self.transport.write(_OK)
        if headers.get("connection", "").lower() == "close":
            self.transport.close()


async def serve(port: int) -> None:
    state = State()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(state), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port))
    else:
        uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
