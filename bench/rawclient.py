"""A minimal, fast HTTP/1.1 client for the benchmarks that must drive the sandbox from
Python: keep-alive connections over asyncio streams, prebuilt request bytes, Content-Length
responses only (all the sandbox sends).

httpx spends about a millisecond of CPU per request; at a few hundred requests/s the
client, not the sandbox, was what the lifecycle benchmark measured (the client process at
~95% of a core, the sandbox at ~40%). This one costs a few tens of microseconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Outcome:
    answers: list[Answer] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


def request_bytes(
    method: str, base_url: str, path: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    host = urlsplit(base_url).netloc
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    size = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            size = int(value.strip())
    return Answer(status, await reader.readexactly(size) if size else b"")


async def send_many(
    base_url: str,
    requests: Callable[[int], bytes],
    count: int,
    concurrency: int,
) -> Outcome:
    """Send ``requests(i)`` for i in 0..count-1 over ``concurrency`` keep-alive
    connections; answers in completion order."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    out = Outcome()
    next_index = iter(range(count))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in next_index:
                try:
                    writer.write(requests(i))
                    out.answers.append(await _read_answer(reader))
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    out.errors[type(exc).__name__] = out.errors.get(type(exc).__name__, 0) + 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return out
