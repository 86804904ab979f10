"""The fair-delivery benchmark (issue 15, item 3): account A has many hooks pointing at a
receiver that accepts connections and never answers (a TCP server in this process, on
loopback); account B has one hook on the fast local receiver (``bench.receiver``). A's
event is fired, then B's events at a steady rate for longer than the webhook timeout (so
across A's retry wave); per B event, the time from sending its POST to the receiver
getting the first attempt. Target: p99 ≤ 1 s (with one account's dead receivers holding
at most its in-flight cap of the worker's slots). Time scale 1, one worker.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench.delivery import _fire, _latencies, _pct, _wait_all
from bench.servers import Processes, Sandbox, run_measured, start_python_module, start_sandbox

TARGET_P99_MS = 1000.0


class _Hanging:
    """Accepts, reads, never answers; counts connections."""

    def __init__(self) -> None:
        self.accepted = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.first = asyncio.Event()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.add(writer)
        self.first.set()
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, asyncio.CancelledError):
            pass  # the run is over (asyncio.run cancels what is left)
        finally:
            self.writers.discard(writer)
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in list(self.writers):
            w.close()


async def _run(
    sb: Sandbox, receiver_url: str, a_hooks: int, b_events: int, rate: float
) -> dict[str, Any]:
    hanging = _Hanging()
    dead_url = await hanging.start()
    a = sb.create_account("Bench fairness A")
    b = sb.create_account("Bench fairness B")
    a_token = sb.token(a, ["write:hooks"])
    b_token = sb.token(b, ["write:hooks"])
    headers = {"Authorization": f"Bearer {sb.admin_token}"}
    try:
        async with (
            httpx.AsyncClient(
                base_url=sb.base_url, headers=headers, timeout=60.0, trust_env=False
            ) as client,
            httpx.AsyncClient(base_url=receiver_url, timeout=30.0, trust_env=False) as recv,
        ):
            gate = asyncio.Semaphore(16)

            async def hook(token: str, url: str) -> None:
                async with gate:
                    resp = await client.post(
                        "/v1/hooks",
                        json={"event": "call.ended", "target_url": url},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    resp.raise_for_status()

            await asyncio.gather(*(hook(a_token, f"{dead_url}/a/{i}") for i in range(a_hooks)))
            await hook(b_token, f"{receiver_url}/hook/b")
            await _fire(client, a, {})
            await asyncio.wait_for(hanging.first.wait(), 30)  # A's attempts are out, hanging
            sent: dict[str, float] = {}
            start = time.monotonic()
            for i in range(b_events):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                await _fire(client, b, sent)
            arrived = await _wait_all(recv, b_events, timeout=120)
            lat = _latencies(sent, arrived)
            return {
                "a_hooks": a_hooks,
                "a_connections_open": len(hanging.writers),
                "a_connections_accepted": hanging.accepted,
                "b_events": b_events,
                "b_delivered": len(arrived),
                "p50_ms": round(_pct(lat, 50), 1),
                "p99_ms": round(_pct(lat, 99), 1),
                "max_ms": round(max(lat), 1) if lat else None,
            }
    finally:
        await hanging.stop()


def run(procs: Processes, a_hooks: int, seconds: float, rate: float = 5.0) -> dict[str, Any]:
    b_events = max(1, round(seconds * rate))
    print(
        f"bench: fairness benchmark ({a_hooks} hanging hooks on A; {b_events} events of B"
        f" at {rate:g}/s)",
        flush=True,
    )
    log_dir = procs.tempdir("fair-receiver")
    receiver = start_python_module(procs, "receiver", "bench.receiver", [], log_dir, "/__ready")
    sb = start_sandbox(
        procs, "fairness", time_scale=1.0, extra_env={"UNLIMCALL_HOOKS_PER_ACCOUNT": str(a_hooks)}
    )
    result = run_measured(
        procs, sb, "fairness", None, lambda: _run(sb, receiver.base_url, a_hooks, b_events, rate)
    )
    print(
        f"bench:   B's event→first attempt with {a_hooks} hanging hooks on A: p50"
        f" {result['p50_ms']} ms, p99 {result['p99_ms']} ms (target ≤ {TARGET_P99_MS:g} ms);"
        f" A's connections open {result['a_connections_open']}",
        flush=True,
    )
    procs.stop(sb.proc)
    procs.stop(receiver)
    return result
