"""``unlimcall-sandbox``: the command line. The parser (every command's help, flags and the
variables it reads) and the dispatch; the commands live in ``cli.serving`` (the processes)
and ``cli.control`` (the control plane of a running sandbox)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from unlimcall_sandbox import __version__
from unlimcall_sandbox.cli import control, demo, jobs
from unlimcall_sandbox.cli.errors import PROG, CliError
from unlimcall_sandbox.cli.options import (
    CONTROL_DESCRIPTIONS,
    MIGRATE_FLAGS,
    SERVER_FLAGS,
    TOKEN_FLAGS,
    WORKER_FLAGS,
    add_setting_flags,
    epilog,
    load_settings,
    overrides_from,
    variables_for,
)
from unlimcall_sandbox.server.settings import ALL_SCOPES

DESCRIPTION = """\
A local, stateful sandbox of the UnlimCall REST API: calls that ring and end, call detail
records, balance and signed webhooks with retries, on a clock you can speed up."""

PROGRAM_EPILOG = f"""\
Start with 'unlimcall-sandbox serve': it prints the API's URL, the admin token for
/_sandbox and a demo token. Then, in another terminal:

  {PROG} accounts
  {PROG} trigger call.ended --customer 1042
  {PROG} deliveries --follow

'unlimcall-sandbox COMMAND --help' shows a command's flags and the UNLIMCALL_* variables it
reads (a flag wins over its variable, a variable over the default)."""

CONTROL_NOTE = """\
Talks to a running sandbox at --url; the admin token comes from --admin-token, else
UNLIMCALL_ADMIN_TOKEN, else the one stored in the data dir by 'serve'."""

DEFAULT_EVENTS = ",".join(control.EVENT_TYPES)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    epilog_text: str,
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog_text,
        formatter_class=_Formatter,
    )


def _control_flags(
    parser: argparse.ArgumentParser, *, json_output: bool = True, nested: bool = False
) -> None:
    # A nested command (clock advance) repeats its parent's flags; without a default of its
    # own it keeps what was given before the action name (``clock --json advance 60``).
    default = argparse.SUPPRESS if nested else None
    group = parser.add_argument_group("sandbox")
    group.add_argument(
        "--url",
        default=default,
        metavar="URL",
        help="the running sandbox (default: UNLIMCALL_PUBLIC_URL, else "
        "http://UNLIMCALL_HOST:UNLIMCALL_PORT, i.e. http://127.0.0.1:8080)",
    )
    group.add_argument(
        "--admin-token",
        default=default,
        metavar="TOKEN",
        help="its admin token (default: UNLIMCALL_ADMIN_TOKEN, else the data dir's)",
    )
    group.add_argument(
        "--data-dir",
        default=default,
        metavar="DIR",
        help="where 'serve' stored the admin token (default: UNLIMCALL_DATA_DIR or ./.unlimcall)",
    )
    if json_output:
        parser.add_argument(
            "--json",
            action="store_true",
            default=argparse.SUPPRESS if nested else False,
            help="print the sandbox's JSON answer as is",
        )


def _control_epilog(command: str, extra: str = "") -> str:
    return epilog(
        variables_for(command),
        note=(extra + "\n\n" if extra else "") + CONTROL_NOTE,
        descriptions=CONTROL_DESCRIPTIONS,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, epilog=PROGRAM_EPILOG, formatter_class=_Formatter
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True

    serve = _command(
        sub,
        "serve",
        "run the sandbox: API, worker and (without --redis-url) an embedded Redis",
        "Run the sandbox in one process: the HTTP API, the worker that plays calls out and\n"
        "delivers webhooks, and, unless --redis-url is given, an embedded Redis. Data lives in\n"
        "a SQLite file in the data dir (or --database-url); restarting keeps it, and keeps the\n"
        "admin and demo tokens. Prints the URL and both tokens once the port is bound.",
        epilog(variables_for("serve"), SERVER_FLAGS),
    )
    add_setting_flags(serve, SERVER_FLAGS)

    api = _command(
        sub,
        "api",
        "run API processes only (workers run separately)",
        "Run the HTTP API without a worker, in N processes sharing the port. Run\n"
        "'unlimcall-sandbox worker' next to it, on the same database and Redis.",
        epilog(variables_for("api"), SERVER_FLAGS),
    )
    api.add_argument(
        "--workers", type=int, default=1, metavar="N", help="API processes (default 1)"
    )
    add_setting_flags(api, SERVER_FLAGS)

    worker = _command(
        sub,
        "worker",
        "run a standalone worker (calls and webhook deliveries)",
        "Run a worker: plays calls out and delivers webhooks, from the Redis queue the API\n"
        "processes fill. Needs the same database and Redis as they use.",
        epilog(variables_for("worker"), WORKER_FLAGS),
    )
    add_setting_flags(worker, WORKER_FLAGS)

    migrate = _command(
        sub,
        "migrate",
        "apply database migrations; load the demo data into an empty database",
        "Apply the database migrations and load the demo data into an empty database, then\n"
        "print the admin and demo tokens. 'serve' and 'api' do this themselves at start.",
        epilog(variables_for("migrate"), MIGRATE_FLAGS),
    )
    add_setting_flags(migrate, MIGRATE_FLAGS)

    token = _command(
        sub,
        "token",
        "mint portal tokens",
        "Portal tokens, written straight to the database.",
        epilog(variables_for("token"), TOKEN_FLAGS),
    )
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", title="actions")
    token_sub.required = True
    create = token_sub.add_parser(
        "create",
        help="mint a token; prints it alone on stdout",
        description="Mint a portal token for an account; prints it alone on stdout.",
        epilog=epilog(variables_for("token"), TOKEN_FLAGS),
        formatter_class=_Formatter,
    )
    create.add_argument("--customer", required=True, metavar="ID", help="customer id, e.g. 1042")
    create.add_argument(
        "--scopes",
        default=",".join(ALL_SCOPES),
        metavar="LIST",
        help=f"comma-separated scopes (default: all, {','.join(ALL_SCOPES)})",
    )
    create.add_argument(
        "--expires-in", type=int, default=None, metavar="SECONDS", help="default: never"
    )
    add_setting_flags(create, TOKEN_FLAGS)

    lst = _command(
        sub,
        "listen",
        "forward webhook deliveries to a local URL (like stripe listen)",
        "Subscribe to events for an account, print each delivery as it arrives and forward it\n"
        "(same body and signature headers) to --forward-to. Ctrl-C stops and removes the hooks.",
        _control_epilog("listen"),
    )
    lst.add_argument(
        "--forward-to", required=True, metavar="URL", help="e.g. http://localhost:3000/hooks"
    )
    lst.add_argument(
        "--events",
        default=DEFAULT_EVENTS,
        metavar="LIST",
        help="comma-separated event types (default: all)",
    )
    lst.add_argument("--customer", default="1042", metavar="ID", help="whose events (default 1042)")
    lst.add_argument("--max-events", type=int, default=None, metavar="N", help="stop after N")
    _control_flags(lst, json_output=False)

    trig = _command(
        sub,
        "trigger",
        "fire a webhook event (like stripe trigger)",
        "Fire an event for an account: every hook of the account subscribed to it gets a\n"
        "signed delivery. Fields override the event's sample payload.",
        _control_epilog(
            "trigger",
            f"events: {', '.join(control.EVENT_TYPES)}\n"
            "example: unlimcall-sandbox trigger call.ended --field durationSec=90 "
            "--field hangupReason=customer_hangup",
        ),
    )
    trig.add_argument("event", metavar="EVENT", choices=control.EVENT_TYPES, help="event type")
    trig.add_argument("--customer", default="1042", metavar="ID", help="whose (default 1042)")
    trig.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="payload field; repeatable; VALUE is JSON when it parses as JSON, else text",
    )
    _control_flags(trig)

    clock = _command(
        sub,
        "clock",
        "show the sandbox clock; 'clock advance' moves it forward",
        "Show the sandbox time and time scale. 'clock advance' moves the clock forward.",
        _control_epilog("clock"),
    )
    _control_flags(clock)
    clock_sub = clock.add_subparsers(dest="clock_command", metavar="ACTION", title="actions")
    advance = clock_sub.add_parser(
        "advance",
        help="move the sandbox clock forward",
        description="Move the sandbox clock forward by SECONDS (90, 15m, 2h, 1d) or to a\n"
        "timestamp: whatever falls due meanwhile (call steps, webhook retries) runs.",
        epilog=_control_epilog("clock"),
        formatter_class=_Formatter,
    )
    advance.add_argument("seconds", nargs="?", metavar="SECONDS", help="e.g. 3600, 90s, 15m, 2h")
    advance.add_argument("--to", metavar="TIMESTAMP", help="e.g. 2026-05-01T12:00:00Z")
    _control_flags(advance, nested=True)

    reset = _command(
        sub,
        "reset",
        "wipe all data and reload the demo data",
        "Wipe every account, call, hook and delivery and reload the demo data. The stored\n"
        "demo token stays valid; the clock keeps running.",
        _control_epilog("reset"),
    )
    _control_flags(reset)

    dl = _command(
        sub,
        "deliveries",
        "list webhook deliveries; --follow tails them (like stripe logs tail)",
        "List webhook delivery attempts, one line each: time, event, status, outcome, target,\n"
        "delivery id and attempt. --follow prints new attempts as they happen, until Ctrl-C.",
        _control_epilog("deliveries"),
    )
    dl.add_argument("--follow", "-f", action="store_true", help="keep printing new attempts")
    dl.add_argument("--customer", metavar="ID", help="only this account's")
    dl.add_argument("--status", choices=control.DELIVERY_STATUSES, help="only deliveries in it")
    dl.add_argument("--event", choices=control.EVENT_TYPES, metavar="EVENT", help="only this event")
    dl.add_argument(
        "--limit", type=int, default=50, metavar="N", help="deliveries listed (default 50)"
    )
    dl.add_argument(
        "--max-attempts", type=int, metavar="N", help="with --follow: stop after N attempts"
    )
    _control_flags(dl)

    accounts = _command(
        sub,
        "accounts",
        "list the sandbox's accounts",
        "List every account: customer id, status, balance, company and contact.",
        _control_epilog("accounts"),
    )
    _control_flags(accounts)
    demo.add_commands(sub, _command, _control_flags, _control_epilog)  # demo, dashboard-link
    jobs.add_commands(sub, _command, _control_flags, _control_epilog)  # generate-cdrs
    return parser


def _control(args: argparse.Namespace) -> int:
    from pathlib import Path

    settings = load_settings()
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    url = control.sandbox_url(settings, args.url)
    admin = control.admin_token(settings, args.admin_token, data_dir)
    as_json = bool(getattr(args, "json", False))
    with control.ControlPlane(url, admin) as cp:
        if args.command == "trigger":
            return control.trigger(
                cp, args.event, args.customer, control.parse_fields(args.field), as_json
            )
        if args.command == "clock":
            if args.clock_command == "advance":
                return control.advance_clock(cp, args.seconds, args.to, as_json)
            return control.show_clock(cp, as_json)
        if args.command == "reset":
            return control.reset(cp, as_json)
        if args.command == "accounts":
            return control.accounts(cp, as_json)
        if args.command == "deliveries":
            if args.follow:
                return control.follow(
                    cp,
                    customer=args.customer,
                    status=args.status,
                    event=args.event,
                    as_json=as_json,
                    max_attempts=args.max_attempts,
                )
            return control.deliveries(
                cp,
                customer=args.customer,
                status=args.status,
                event=args.event,
                limit=args.limit,
                as_json=as_json,
            )
        from unlimcall_sandbox.cli.listen import listen  # reports its own one-line errors

        events = [e.strip() for e in args.events.split(",") if e.strip()]
        return listen(url, admin, args.customer, events, args.forward_to, args.max_events)


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "handler", None) is not None:  # commands of cli.demo
        return int(args.handler(args))
    from unlimcall_sandbox.cli import serving

    if args.command in ("serve", "api"):
        settings = load_settings(overrides_from(args, SERVER_FLAGS))
        try:
            settings.refuse_weak_admin_token()
        except ValueError as exc:
            raise CliError(str(exc), 2) from None
        serving.configure_logging(settings)
        if args.command == "serve":
            return serving.run_server(settings, workers=1, with_worker=True)
        if args.workers < 1:
            raise CliError("--workers must be at least 1", 2)
        return serving.run_server(settings, workers=args.workers, with_worker=False)
    if args.command == "worker":
        settings = load_settings(overrides_from(args, WORKER_FLAGS))
        serving.configure_logging(settings)
        return serving.run_worker(settings)
    if args.command == "migrate":
        settings = load_settings(overrides_from(args, MIGRATE_FLAGS))
        serving.configure_logging(settings)
        return serving.run_migrate(settings)
    if args.command == "token":
        settings = load_settings(overrides_from(args, TOKEN_FLAGS))
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        return serving.run_token_create(settings, args.customer, scopes, args.expires_in)
    return _control(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # no command: what there is, rather than an error
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except CliError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr, flush=True)
        return exc.status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
