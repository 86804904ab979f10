"""Unique by default, reproducible on request (issue 16 item 5).

Without ``UNLIMCALL_SEED`` a data dir gets its own random seed, created once and kept there,
so two fresh sandboxes never hand out the same call, hook, event or delivery ids (a receiver
that deduplicates on ``X-Unlimcall-Delivery`` across runs would drop the next run's events);
with a seed, ids repeat exactly.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.support.receiver import Receiver
from tests.support.sandbox import Sandbox, sandbox_for
from unlimcall_sandbox.cli.main import main
from unlimcall_sandbox.server import credentials
from unlimcall_sandbox.server.settings import Settings


async def _ids(sb: Sandbox, receiver: Receiver) -> dict[str, Any]:
    """The ids a short session hands out: a call, a hook, a fired event, its delivery."""
    customer, token, agent = await sb.customer_with_agent()
    call_id = await sb.place_call(token, agent, "+15005550002")
    r = await sb.client.post(
        "/v1/hooks",
        json={"event": "dnc.added", "target_url": f"{receiver.url}/seed"},
        headers=sb.bearer(token),
    )
    assert r.status_code == 200, r.text
    fired = await sb.admin_post("/events", {"customerId": customer, "event": "dnc.added"})
    deliveries = await sb.deliveries(customerId=customer)
    return {
        "seed": sb.rt.settings.seed,
        "call": call_id,
        "hook": r.json()["id"],
        "event": fired["eventId"],
        "deliveries": sorted(d["id"] for d in deliveries),
    }


async def test_fresh_data_dirs_without_a_seed_hand_out_different_ids(
    fresh: Any, receiver: Receiver
) -> None:
    async with fresh(seed=None) as a:
        first = await _ids(a, receiver)
        data_dir = a.settings.data_dir
    async with fresh(seed=None) as b:
        second = await _ids(b, receiver)
    assert first["seed"] != second["seed"]
    for kind in ("call", "hook", "event", "deliveries"):
        assert first[kind] != second[kind], kind
    assert len(first["deliveries"]) == 1
    stored = data_dir / credentials.SEED_FILE
    assert int(stored.read_text()) == first["seed"]
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


async def test_the_same_explicit_seed_repeats_the_ids(fresh: Any, receiver: Receiver) -> None:
    async with fresh(seed=4242) as a:
        first = await _ids(a, receiver)
        assert not (a.settings.data_dir / credentials.SEED_FILE).exists()
    async with fresh(seed=4242) as b:
        second = await _ids(b, receiver)
    assert first == second
    assert first["seed"] == 4242


async def test_a_restart_keeps_the_data_dirs_seed(backend: str, tmp_path: Path) -> None:
    seeds = []
    for _ in range(2):
        async with sandbox_for(backend, tmp_path, seed=None) as sb:
            seeds.append(sb.rt.settings.seed)
    assert seeds[0] == seeds[1]
    assert isinstance(seeds[0], int)
    # An explicit seed wins over the stored one, and leaves it alone.
    async with sandbox_for(backend, tmp_path, seed=3) as sb:
        assert sb.rt.settings.seed == 3
    assert credentials.stored_seed(tmp_path) == seeds[0]


def test_an_empty_seed_variable_is_unset_and_a_bad_stored_seed_is_named(tmp_path: Path) -> None:
    assert Settings.from_env({"UNLIMCALL_SEED": ""}).seed is None
    assert Settings.from_env({"UNLIMCALL_SEED": "12"}).seed == 12
    assert Settings().seed is None
    (tmp_path / credentials.SEED_FILE).write_text("not-a-number\n")
    with pytest.raises(ValueError, match="not a seed"):
        credentials.stored_seed(tmp_path)
    with pytest.raises(RuntimeError):
        _ = Settings().resolved_seed


def test_the_banner_shows_the_data_dirs_seed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in Settings.__struct_fields__:
        monkeypatch.delenv(f"UNLIMCALL_{name.upper()}", raising=False)
    data = tmp_path / "data"
    seen = []
    for _ in range(2):
        assert main(["migrate", "--data-dir", str(data)]) == 0
        found = re.search(r"Seed: (\d+)\s+\(this data dir's own", capsys.readouterr().out)
        assert found, "no seed in the banner"
        seen.append(int(found.group(1)))
    assert seen[0] == seen[1] == credentials.stored_seed(data)
    assert main(["migrate", "--data-dir", str(data), "--seed", "5"]) == 0
    assert re.search(r"Seed: 5$", capsys.readouterr().out, re.M)
