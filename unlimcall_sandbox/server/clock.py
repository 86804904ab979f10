"""The one sandbox clock.

Sandbox time runs ``time_scale`` times faster than wall time from an anchor, so a CDR's
``startTime + duration`` is the sandbox time at which the call ended, and a 24 h retry
window passes in 24 real seconds at scale 3600. At scale 1 sandbox time is wall time.
The anchor lives in the database (table ``clock``) so every process agrees on it.
Auth expiries (tokens, OAuth) and webhook signature timestamps use wall time: they are
compared with the integrator's real clock.
"""

from __future__ import annotations

import time


class Clock:
    __slots__ = ("anchor_real", "anchor_sandbox", "scale")

    def __init__(
        self, scale: float, anchor_real: float | None = None, anchor_sandbox: float | None = None
    ) -> None:
        now = time.time()
        self.scale = scale
        self.anchor_real = now if anchor_real is None else anchor_real
        self.anchor_sandbox = self.anchor_real if anchor_sandbox is None else anchor_sandbox

    def now(self) -> float:
        """Sandbox time as unix seconds."""
        return self.anchor_sandbox + (time.time() - self.anchor_real) * self.scale

    @staticmethod
    def real_now() -> float:
        """Wall time: for auth expiries and signature timestamps."""
        return time.time()

    def real_delay(self, sandbox_seconds: float) -> float:
        """Real seconds to wait for ``sandbox_seconds`` of sandbox time to pass."""
        return max(0.0, sandbox_seconds / self.scale)

    def real_delay_until(self, sandbox_ts: float) -> float:
        return self.real_delay(sandbox_ts - self.now())


def iso(ts: float) -> str:
    """RFC 3339 UTC with second precision, as production renders timestamps."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
