"""``generate-cdrs``: start a CDR generation on a running sandbox (a background job) and
follow it with a progress bar (done/total, rate, ETA) until it is done. Registered by
``cli.main`` through ``add_commands``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from unlimcall_sandbox.cli import control
from unlimcall_sandbox.cli.errors import PROG, CliError
from unlimcall_sandbox.cli.options import load_settings

POLL = 0.5
BAR = 30
MAX_GENERATE = 2_000_000  # the server's limit (services.cdrs), copied: --help imports no server

DESCRIPTION = """\
Generate seeded CDR history for an account on a running sandbox. The sandbox answers at once
with a job; its worker inserts the CDRs in chunks while the API keeps answering. This
command follows the job with a progress bar (done/total, ETA) until it is done; --no-wait
prints the job id and returns (follow it with GET /_sandbox/jobs/<id>)."""

EXAMPLES = f"""\
examples:
  {PROG} generate-cdrs 1042 --count 100000
  {PROG} generate-cdrs 1042 --count 5000 --from 2026-01-01T00:00:00Z --till 2026-02-01T00:00:00Z"""


def _count(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_GENERATE:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_GENERATE}, got {value}")
    return value


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    command: Callable[..., argparse.ArgumentParser],
    control_flags: Callable[..., None],
    control_epilog: Callable[..., str],
) -> None:
    gen = command(
        sub,
        "generate-cdrs",
        "generate CDR history for an account, with a progress bar",
        DESCRIPTION,
        control_epilog("generate-cdrs", EXAMPLES),
    )
    gen.add_argument("customer", metavar="CUSTOMER_ID", help="the account")
    gen.add_argument("--count", type=_count, required=True, metavar="N", help="CDRs to create")
    gen.add_argument("--from", dest="from_", metavar="TIME", help="earliest start (RFC 3339)")
    gen.add_argument("--till", metavar="TIME", help="latest start (RFC 3339; default now)")
    gen.add_argument("--no-wait", action="store_true", help="print the job and return")
    control_flags(gen)
    gen.set_defaults(handler=run_generate)


def bar(job: dict[str, Any]) -> str:
    """``[#######.......]  41,000/100,000  41%  ETA 0:12``"""
    total = max(int(job["total"]), 1)
    done = int(job["done"])
    filled = BAR * done // total
    eta = job.get("etaSeconds")
    left = "--:--" if eta is None else f"{int(eta) // 60}:{int(eta) % 60:02d}"
    return (
        f"[{'#' * filled}{'.' * (BAR - filled)}] {done:,}/{total:,} "
        f"{100 * done // total:3d}%  ETA {left}"
    )


def follow(
    cp: control.ControlPlane, job: dict[str, Any], out: TextIO, poll: float = POLL
) -> dict[str, Any]:
    """Poll the job until it is done (or failed), drawing the bar on ``out``."""
    tty = out.isatty()
    last = ""
    while True:
        line = bar(job)
        if tty:
            out.write(f"\r{line}")
        elif line != last and (job["state"] in ("done", "failed") or not last):
            out.write(f"{line}\n")
        out.flush()
        last = line
        if job["state"] == "done":
            break
        if job["state"] == "failed":
            if tty:
                out.write("\n")
            raise CliError(f"job {job['jobId']} failed: {job.get('error')}")
        time.sleep(poll)
        job = cp.request("GET", f"/jobs/{job['jobId']}")
    if tty:
        out.write("\n")
    return job


def run_generate(args: argparse.Namespace) -> int:
    settings = load_settings()
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    url = control.sandbox_url(settings, args.url)
    body: dict[str, Any] = {"count": args.count}
    if args.from_:
        body["from"] = args.from_
    if args.till:
        body["till"] = args.till
    with control.ControlPlane(url, control.admin_token(settings, args.admin_token, data_dir)) as cp:
        job = cp.request("POST", f"/accounts/{args.customer}/cdrs/generate", json=body)
        if not args.no_wait:
            job = follow(cp, job, sys.stderr)
    if args.json:
        print(json.dumps(job, indent=2))
    elif args.no_wait:
        print(f"Job {job['jobId']}: {job['total']:,} CDRs queued for customer {args.customer}.")
    else:
        print(
            f"Generated {job['total']:,} CDRs for customer {args.customer} "
            f"({job['fromTime']} .. {job['tillTime']})."
        )
    return 0
