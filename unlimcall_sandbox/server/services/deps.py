"""What services use besides their unit of work, handed over explicitly.

A ``Deps`` is built once per process (``Runtime.deps``) and is immutable: a service's
signature shows what it depends on — the clock, the seed that derives ids and plans,
the rate table, the egress policy for webhook targets — and nothing of the web layer or
of the whole ``Runtime``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from unlimcall_sandbox.server.clock import Clock
from unlimcall_sandbox.server.rating import RateTable


def _no_invalidation(_account_id: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Deps:
    clock: Clock
    seed: int
    """Derives ids, call plans and demo numbers (``settings.resolved_seed``)."""
    rates: RateTable
    insecure_webhook_hosts: tuple[str, ...] = ()
    """Hosts a webhook target may reach over plain http (the egress policy)."""
    invalidate_account: Callable[[int], None] = _no_invalidation
    """Forget what is cached about an account's credentials (run after commit)."""
    hooks_per_account: int = 100
    """Active hooks an account may have (``settings.hooks_per_account``)."""
