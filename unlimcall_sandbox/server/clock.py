"""The one sandbox clock.

Sandbox time runs ``time_scale`` times faster than wall time from an anchor, so a CDR's
``startTime + duration`` is the sandbox time at which the call ended, and a 24 h retry
window passes in 24 real seconds at scale 3600. At scale 1 sandbox time is wall time.
The anchor lives in the database (table ``clock``) so every process agrees on it.
``POST /_sandbox/clock/advance`` moves the anchor forward (``anchor_sandbox += n``); every
process re-reads it (``services.clock.sync``): worker jobs before each job, the API at most
once per ``SYNC_TTL`` real seconds, and the process that advanced at once.
Auth expiries (tokens, OAuth) and webhook signature timestamps use wall time: they are
compared with the integrator's real clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Real seconds an API process may serve sandbox time from an anchor it read earlier (another
# process's advance shows up within this long; the advancing process sees it at once).
SYNC_TTL = 1.0


class Clock:
    __slots__ = ("anchor_real", "anchor_sandbox", "scale", "synced_at", "wall")

    def __init__(
        self, scale: float, anchor_real: float | None = None, anchor_sandbox: float | None = None
    ) -> None:
        now = time.time()
        self.scale = scale
        self.anchor_real = now if anchor_real is None else anchor_real
        self.anchor_sandbox = self.anchor_real if anchor_sandbox is None else anchor_sandbox
        self.synced_at = now  # wall time the anchor was last read from / written to the DB
        # Where ``real_now`` reads wall time: tests replace it to move expiries along.
        self.wall: Callable[[], float] = time.time

    def reanchor(self, scale: float, anchor_real: float, anchor_sandbox: float) -> None:
        """Take the shared anchor, in place: everything holding this object sees it."""
        self.scale, self.anchor_real, self.anchor_sandbox = scale, anchor_real, anchor_sandbox
        self.synced_at = self.wall()

    def now(self) -> float:
        """Sandbox time as unix seconds."""
        return self.anchor_sandbox + (time.time() - self.anchor_real) * self.scale

    def real_now(self) -> float:
        """Wall time: for auth expiries, leases and signature timestamps."""
        return self.wall()

    def real_delay(self, sandbox_seconds: float) -> float:
        """Real seconds to wait for ``sandbox_seconds`` of sandbox time to pass."""
        return max(0.0, sandbox_seconds / self.scale)

    def real_delay_until(self, sandbox_ts: float) -> float:
        return self.real_delay(sandbox_ts - self.now())


def iso(ts: float) -> str:
    """RFC 3339 UTC with second precision, as production renders timestamps."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
