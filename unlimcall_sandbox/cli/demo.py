"""``demo`` (demo traffic on a running sandbox: start, ``--status``, ``--stop``) and
``dashboard-link`` (a fresh one-click sign-in link), over ``/_sandbox`` like the other
control-plane commands. Registered by ``cli.main`` through ``add_commands``."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unlimcall_sandbox.cli import control
from unlimcall_sandbox.cli.errors import PROG, CliError
from unlimcall_sandbox.cli.options import load_settings

# The server's limits (services.demo), copied so that --help does not import the server.
DEFAULT_AGENTS, MAX_AGENTS = 12, 50
DEFAULT_MINUTES, MAX_MINUTES = 10.0, 24 * 60.0
WAIT_POLL = 2.0

DEMO_DESCRIPTION = """\
Run demo traffic on a running sandbox: several agents place calls at a realistic pace,
with the seeded mix of outcomes (answered, busy, no answer, failed, voicemail, transfers,
do-not-call, lead completions) to numbers of many countries, and every event goes, signed,
to the built-in inbox demo-<customerId>. It runs on an account of its own (created once,
reused by later runs) unless --customer names one, and never touches any other account. It
stops placing calls by itself after --minutes of sandbox time; the calls in flight finish.
Prints a one-click dashboard link to watch it."""

DEMO_EXAMPLES = f"""\
examples:
  {PROG} demo                          12 agents for 10 minutes
  {PROG} demo --agents 4 --minutes 60
  {PROG} demo --status
  {PROG} demo --stop"""

LINK_DESCRIPTION = """\
Print a link that signs a browser in to the dashboard once: a one-time code (15 minutes,
single use) exchanged for a session cookie; the address bar keeps no code and no token."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_AGENTS:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_AGENTS}, got {value}")
    return value


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}") from None
    if not 0 < value <= MAX_MINUTES:
        raise argparse.ArgumentTypeError(f"expected more than 0 and at most {MAX_MINUTES:g}")
    return value


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    command: Callable[..., argparse.ArgumentParser],
    control_flags: Callable[..., None],
    control_epilog: Callable[..., str],
) -> None:
    """Add ``demo`` and ``dashboard-link`` to the parser (``cli.main``'s helpers make them
    look and read like every other control-plane command)."""
    demo = command(
        sub,
        "demo",
        "run demo traffic: a living call floor (like make serve, then Start demo)",
        DEMO_DESCRIPTION,
        control_epilog("demo", DEMO_EXAMPLES),
    )
    demo.add_argument(
        "--agents",
        type=_positive_int,
        default=DEFAULT_AGENTS,
        metavar="N",
        help=f"agents placing calls, 1..{MAX_AGENTS} (default {DEFAULT_AGENTS})",
    )
    demo.add_argument(
        "--minutes",
        type=_minutes,
        default=DEFAULT_MINUTES,
        metavar="M",
        help=f"sandbox minutes it places calls for (default {DEFAULT_MINUTES:g})",
    )
    demo.add_argument(
        "--customer", metavar="ID", help="run on this account instead of a demo account of its own"
    )
    action = demo.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="show the latest demo and exit")
    action.add_argument("--stop", action="store_true", help="stop the running demo")
    demo.add_argument(
        "--wait", action="store_true", help="stay until the demo has finished, printing progress"
    )
    control_flags(demo)
    demo.set_defaults(handler=run_demo)

    link = command(
        sub,
        "dashboard-link",
        "print a one-click sign-in link for the dashboard",
        LINK_DESCRIPTION,
        control_epilog("dashboard-link"),
    )
    control_flags(link)
    link.set_defaults(handler=run_link)


def _plane(args: argparse.Namespace) -> control.ControlPlane:
    settings = load_settings()
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    url = control.sandbox_url(settings, args.url)
    return control.ControlPlane(url, control.admin_token(settings, args.admin_token, data_dir))


def _link(cp: control.ControlPlane) -> str:
    data = cp.request("POST", "/dashboard/links")
    return f"{cp.base_url}{data['path']}"


def run_link(args: argparse.Namespace) -> int:
    with _plane(args) as cp:
        link = _link(cp)
    if args.json:
        print(json.dumps({"url": link}))
    else:
        print(link, flush=True)
    return 0


def _describe(demo: dict[str, Any]) -> str:
    status = {
        "running": f"running, {_clock(demo.get('remainingSec') or 0)} left",
        "winding_down": f"ending: no new calls, {demo.get('callsInFlight', 0)} in flight",
        "finished": "finished" + (" (stopped early)" if demo.get("stoppedAt") else ""),
    }.get(str(demo.get("status")), str(demo.get("status")))
    text = (
        f"Demo {status}: {demo.get('agents')} agents on customer {demo.get('customerId')}, "
        f"{demo.get('callsPlaced')} calls placed (until {demo.get('endsAt')})"
    )
    if demo.get("lastError"):
        text += f"\n  Last error: {demo['lastError']}"
    return text


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def run_demo(args: argparse.Namespace) -> int:
    with _plane(args) as cp:
        if args.status:
            demo = cp.request("GET", "/demo")["demo"]
            if args.json:
                print(json.dumps(demo, indent=2))
            elif demo is None:
                print(f"No demo has run yet: start one with '{PROG} demo'.")
            else:
                print(_describe(demo))
            return 0
        if args.stop:
            demo = cp.request("POST", "/demo/stop")
            if args.json:
                print(json.dumps(demo, indent=2))
            else:
                print("Stopped: no new calls; the calls in flight finish.")
                print(_describe(demo))
            return _wait(cp, demo, args.json) if args.wait else 0
        body: dict[str, Any] = {"agents": args.agents, "minutes": args.minutes}
        if args.customer:
            body["customerId"] = args.customer
        demo = cp.request("POST", "/demo", json=body)
        link = _link(cp)
        if args.json:
            print(json.dumps({**demo, "dashboardUrl": link}, indent=2))
        else:
            print(
                f"Demo started: {demo['agents']} agents on customer {demo['customerId']} for "
                f"{demo['minutes']:g} sandbox minutes (until {demo['endsAt']}).",
                flush=True,
            )
            print(f"  Watch it:  {link}   (signs you in once)")
            print(f"  Webhooks:  {cp.base_url}/_sandbox/inbox/{demo['inbox']}")
            print(f"  Stop it:   {PROG} demo --stop", flush=True)
        return _wait(cp, demo, args.json) if args.wait else 0


def _wait(cp: control.ControlPlane, demo: dict[str, Any], as_json: bool) -> int:
    """Poll until the run has finished, printing a line whenever its numbers change."""
    run_id = demo["id"]
    last = ""
    while True:
        current = cp.request("GET", "/demo")["demo"]
        if current is None or current.get("id") != run_id:
            raise CliError("the demo's record is gone (was the sandbox reset?)")
        key = f"{current.get('status')}:{current.get('callsPlaced')}"
        if key != last and not as_json:
            print(_describe(current), flush=True)
            last = key
        if current.get("status") == "finished":
            if as_json:
                print(json.dumps(current, indent=2))
            return 0
        time.sleep(WAIT_POLL)
