"""``unlimcall-sandbox demo`` and ``dashboard-link`` against a running sandbox, and the
sign-in link in ``serve``'s banner."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import msgspec
import pytest

from tests.support.sandbox import ADMIN, Sandbox
from unlimcall_sandbox.cli.main import main
from unlimcall_sandbox.cli.serving import banner
from unlimcall_sandbox.server.services import dashboard_session


async def _cli(sb: Sandbox, *argv: str) -> int:
    return await asyncio.to_thread(main, [*argv, "--url", sb.base_url, "--admin-token", ADMIN])


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("demo", ["--agents", "--minutes", "--customer", "--status", "--stop", "--wait"]),
        ("dashboard-link", []),
    ],
)
def test_the_commands_have_help_with_their_flags_and_variables(
    capsys: pytest.CaptureFixture[str], command: str, flags: list[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert re.search(rf"^\s+{command}\b", capsys.readouterr().out, re.M)
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: unlimcall-sandbox {command}")
    for flag in [*flags, "--url", "--admin-token", "--data-dir", "--json"]:
        assert re.search(rf"^\s+{re.escape(flag)}\b", out, re.M), (flag, out)
    env = out.partition("environment (a flag wins over its variable):")[2]
    for variable in ("UNLIMCALL_PUBLIC_URL", "UNLIMCALL_ADMIN_TOKEN", "UNLIMCALL_DATA_DIR"):
        assert re.search(rf"^\s+{variable}\s+\S", env, re.M), (variable, out)


def test_bad_demo_flags_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["demo", "--agents", "0"],
        ["demo", "--minutes", "x"],
        ["demo", "--stop", "--status"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert (
            capsys.readouterr().err.strip().splitlines()[-1].startswith("unlimcall-sandbox demo: ")
        )


async def test_demo_runs_until_it_stops_by_itself_and_prints_a_link(
    fresh: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    async with fresh(time_scale=600.0) as sb:
        assert await _cli(sb, "demo", "--status") == 0
        assert "No demo has run yet" in capsys.readouterr().out
        assert await _cli(sb, "demo", "--agents", "3", "--minutes", "30", "--wait") == 0
        out = capsys.readouterr().out
        found = re.search(r"Demo started: 3 agents on customer (\d+) for 30 sandbox minutes", out)
        assert found, out
        customer = found.group(1)
        link = re.search(r"Watch it:\s+(http://\S+/dashboard/login\?code=dlc_\S+)", out)
        assert link, out
        assert f"Webhooks:  {sb.base_url}/_sandbox/inbox/demo-{customer}" in out
        assert out.rstrip().splitlines()[-1].startswith("Demo finished: 3 agents on customer")
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.get(link.group(1))
        assert (r.status_code, r.headers["location"]) == (303, "/dashboard")
        assert await _cli(sb, "demo", "--status", "--json") == 0
        status = json.loads(capsys.readouterr().out)
        assert (status["customerId"], status["status"]) == (customer, "finished")
        assert await _cli(sb, "demo", "--stop") == 1
        assert "No demo is running" in capsys.readouterr().err


async def test_dashboard_link_prints_a_link_that_signs_in_once(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _cli(sandbox, "dashboard-link") == 0
    url = capsys.readouterr().out.strip()
    assert re.fullmatch(rf"{re.escape(sandbox.base_url)}/dashboard/login\?code=dlc_\S+", url)
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.get(url)
        client.cookies.clear()
        second = await client.get(url)
    assert (first.status_code, first.headers["location"]) == (303, "/dashboard")
    assert second.headers["location"] == "/dashboard?signin=expired"


async def test_serves_banner_shows_a_one_click_link(sandbox: Sandbox) -> None:
    settings = msgspec.structs.replace(sandbox.settings, public_url=sandbox.base_url)
    link = await asyncio.to_thread(dashboard_session.banner_link, settings)
    assert link is not None
    text = banner(settings, None, serving=True, loaded=False, dashboard=link)
    assert f"Dashboard:    {link}   (one click signs you in" in text
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.get(link)
    assert (r.status_code, r.headers["location"]) == (303, "/dashboard")
    assert dashboard_session.COOKIE in r.headers["set-cookie"]
    # Without a link (it could not be made) the banner shows the plain address.
    plain = banner(settings, None, serving=True, loaded=False)
    assert f"Dashboard:    {sandbox.base_url}/dashboard\n" in plain
