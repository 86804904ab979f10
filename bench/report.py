"""The targets (issue 6, 3 and 4) and the printed tables."""

from __future__ import annotations

from typing import Any

P99_AT_HALF_RATE_MS = 25.0
RSS_UNDER_LOAD_MB = 150.0
LIFECYCLE_CALLS_PER_S = 200.0
DELIVERIES_PER_S = 500.0
DELIVERY_P50_MS = 250.0


def _target(name: str, value: float | None, op: str, limit: float, unit: str) -> dict[str, Any]:
    ok = value is not None and (value >= limit if op == ">=" else value <= limit)
    return {"name": name, "value": value, "target": f"{op} {limit:g}{unit}", "pass": ok}


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    http = results.get("http")
    if http and "error" not in http:
        for row in http["rows"]:
            if row["target_ratio"] is not None:
                out.append(
                    _target(f"{row['label']}: ratio", row["ratio"], ">=", row["target_ratio"], "")
                )
        for row in http["paced"]:
            rate = row["sandbox"]["target_rps"]
            out.append(
                _target(
                    f"{row['label']}: p99 at half max ({rate:g} req/s)",
                    row["sandbox"]["p99_ms"],
                    "<=",
                    P99_AT_HALF_RATE_MS,
                    " ms",
                )
            )
        out.append(
            _target(
                "API RSS under load (peak)",
                http["rss"]["under_load_peak_mb"],
                "<=",
                RSS_UNDER_LOAD_MB,
                " MB",
            )
        )
    life = results.get("lifecycle")
    if life and "error" not in life:
        out.append(
            _target(
                f"lifecycle: calls/s end to end ({life['calls']} calls)",
                life["calls_per_s"],
                ">=",
                LIFECYCLE_CALLS_PER_S,
                "",
            )
        )
        out.append(_target("lifecycle: lost calls", life["lost"], "<=", 0, ""))
    dlv = results.get("delivery")
    if dlv and "error" not in dlv:
        out.append(
            _target(
                "delivery: deliveries/s (burst)",
                dlv["burst"]["deliveries_per_s"],
                ">=",
                DELIVERIES_PER_S,
                "",
            )
        )
        out.append(
            _target(
                "delivery: event→first attempt p50 (steady)",
                dlv["steady"]["p50_ms"],
                "<=",
                DELIVERY_P50_MS,
                " ms",
            )
        )
    out += _scale_out_targets(results)
    fair = results.get("fairness")
    if fair and "error" not in fair:
        out.append(
            _target(
                f"fairness: B's event→first attempt p99 ({fair['a_hooks']} hanging hooks on A)",
                fair["p99_ms"],
                "<=",
                1000.0,
                " ms",
            )
        )
    work = results.get("bulk")
    if work and "error" not in work:
        for key, label in (("healthz_p99_ms", "/healthz"), ("me_p99_ms", "/v1/me")):
            out.append(
                _target(
                    f"bulk: {label} p99 during a {work['count']:,}-CDR generation",
                    work[key],
                    "<=",
                    100.0,
                    " ms",
                )
            )
    return out


SECOND_WORKER_GAIN = 1.5
SATURATED_CPU_PER_CPU_S = 0.9
"""A second worker process: ≥ 1.5 × the lifecycle throughput, or (the cores saturated)
calls per CPU-second within 10 % of one worker's."""


def _ok(section: Any) -> bool:
    return bool(section) and "error" not in section


def _scale_out_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 17, item 4: PostgreSQL + Redis against ``serve``, in the same run."""
    out: list[dict[str, Any]] = []
    http = results.get("pg_http")
    if _ok(http):
        for row in http["rows"]:
            if row.get("target_ratio") is not None:
                out.append(
                    _target(
                        f"PG {row['label']}: req/s over serve's",
                        row.get("ratio"),
                        ">=",
                        row["target_ratio"],
                        "",
                    )
                )
    life = results.get("pg_lifecycle")
    if _ok(life):
        one, two = life.get("1"), life.get("2")
        if one:
            out.append(
                _target(
                    f"PG lifecycle, 1 worker: calls/s end to end ({one['calls']} calls)",
                    one["calls_per_s"],
                    ">=",
                    LIFECYCLE_CALLS_PER_S,
                    "",
                )
            )
        for n, run in life.items():
            out.append(
                _target(f"PG lifecycle, {n} worker(s): lost calls", run["lost"], "<=", 0, "")
            )
        if one and two and one["calls_per_s"] and two["calls_per_s"]:
            gain = two["calls_per_s"] / one["calls_per_s"]
            per_cpu = (
                two["calls_per_cpu_s"] / one["calls_per_cpu_s"]
                if one.get("calls_per_cpu_s") and two.get("calls_per_cpu_s")
                else None
            )
            row = _target(
                "PG lifecycle: 2nd worker, throughput gain (or calls per CPU-s kept)",
                round(gain, 2),
                ">=",
                SECOND_WORKER_GAIN,
                "×",
            )
            row["calls_per_cpu_s_ratio"] = None if per_cpu is None else round(per_cpu, 2)
            if not row["pass"] and per_cpu is not None and per_cpu >= SATURATED_CPU_PER_CPU_S:
                row["pass"] = True
                row["target"] += f" or per CPU-s ≥ {SATURATED_CPU_PER_CPU_S:g}× ({per_cpu:.2f})"
            out.append(row)
    dlv = results.get("pg_delivery")
    if _ok(dlv):
        one = dlv.get("1")
        if one:
            out.append(
                _target(
                    "PG delivery, 1 worker: deliveries/s (burst)",
                    one["burst"]["deliveries_per_s"],
                    ">=",
                    DELIVERIES_PER_S,
                    "",
                )
            )
    return out


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def _f(value: Any, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def _print_scale_out(results: dict[str, Any]) -> None:
    http = results.get("pg_http")
    if _ok(http):
        rows = []
        for r in http["rows"]:
            s = r["sandbox"]
            rows.append(
                [
                    r["label"],
                    _f(s["rps"]),
                    _f(s["p50_ms"], ".2f"),
                    _f(s["p99_ms"], ".2f"),
                    _f(r.get("serve_rps")),
                    "-" if r.get("ratio") is None else f"{r['ratio']:.2f}",
                    "-" if r["target_ratio"] is None else f">= {r['target_ratio']:g}",
                    "" if r.get("pass") is None else ("✓" if r["pass"] else "✗"),
                    str(r["sandbox_failed_requests"]),
                    f"{r.get('other_cpu_pct', 0):.0f}%",
                ]
            )
        print()
        print(
            "PostgreSQL + Redis: api --workers 2 + 1 worker (wrk, "
            f"{http['wrk']['connections']} connections; ratio = req/s over serve's, same run)"
        )
        headers = ["endpoint", "req/s", "p50", "p99", "serve req/s", "ratio", "target", ""]
        print(_table([*headers, "errors", "other"], rows))
        gen = http.get("cdr_generation")
        if gen:
            print(
                f"CDR generation on PostgreSQL: {gen['rows']:,} rows in {gen['seconds']} s "
                f"({gen['rows_per_s']:,} rows/s)"
            )
    life = results.get("pg_lifecycle")
    if _ok(life):
        for n, run in life.items():
            print(
                f"PG lifecycle, {n} worker(s): {run['cdrs']}/{run['accepted']} ended in "
                f"{run['end_to_end_seconds']} s -> {run['calls_per_s']} calls/s; POSTs "
                f"{run['post_rate']}/s; lost {run['lost']}; {run.get('cpu_seconds')} CPU s "
                f"-> {run.get('calls_per_cpu_s')} calls per CPU s"
            )
    dlv = results.get("pg_delivery")
    if _ok(dlv):
        for n, run in dlv.items():
            st, bu = run["steady"], run["burst"]
            print(
                f"PG delivery, {n} worker(s) ({run['hooks']} hooks): steady p50 "
                f"{st['p50_ms']} ms, p99 {st['p99_ms']} ms; burst {bu['deliveries_received']}/"
                f"{bu['deliveries_expected']} in {bu['seconds']} s -> "
                f"{bu['deliveries_per_s']} deliveries/s"
            )


def print_tables(results: dict[str, Any]) -> None:
    names = ("http", "lifecycle", "delivery", "fairness", "bulk", "pg_http", "pg_lifecycle")
    for name in (*names, "pg_delivery"):
        section = results.get(name)
        if section and "error" in section:
            print(f"\n{name}: FAILED: {section['error'].splitlines()[0]}")
    http = results.get("http")
    if http and "error" not in http:
        rows = []
        for r in http["rows"]:
            s, ref = r["sandbox"], r["reference"]
            verdict = "" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
            rows.append(
                [
                    r["label"],
                    _f(s["rps"]),
                    _f(s["p50_ms"], ".2f"),
                    _f(s["p99_ms"], ".2f"),
                    _f(ref["rps"]),
                    _f(ref["p50_ms"], ".2f"),
                    _f(ref["p99_ms"], ".2f"),
                    f"{r['ratio']:.2f}",
                    "-" if r["target_ratio"] is None else f">= {r['target_ratio']:g}",
                    verdict,
                    str(r["body_bytes"]),
                    str(r["sandbox_failed_requests"]),
                    f"{r.get('other_cpu_pct', 0):.0f}%",
                ]
            )
        print()
        print(
            f"HTTP (wrk, {http['wrk']['connections']} connections, 2 threads; "
            "latencies in ms; same-run reference; other = CPU used by other processes "
            "during the sandbox run, % of one core)"
        )
        print(
            _table(
                [
                    "endpoint",
                    "req/s",
                    "p50",
                    "p99",
                    "ref req/s",
                    "ref p50",
                    "ref p99",
                    "ratio",
                    "target",
                    "",
                    "bytes",
                    "errors",
                    "other",
                ],
                rows,
            )
        )
        for p in http["paced"]:
            s = p["sandbox"]
            print(
                f"paced {p['label']}: {s['rps']:,.0f} req/s (target {s['target_rps']:g}) "
                f"p50 {s['p50_ms']:.2f} ms p99 {s['p99_ms']:.2f} ms "
                f"(other load {p.get('other_cpu_pct', 0):.0f}%)"
            )
        rss = http["rss"]
        print("API RSS (MB): " + ", ".join(f"{k} {v}" for k, v in rss.items()))
        gen = http.get("cdr_generation")
        if gen:
            print(
                f"CDR generation: {gen['rows']:,} rows in {gen['seconds']} s "
                f"({gen['rows_per_s']:,} rows/s, chunks of {gen['chunk']:,})"
            )
    life = results.get("lifecycle")
    if life and "error" not in life:
        print(
            f"Lifecycle: {life['cdrs']}/{life['accepted']} calls ended in "
            f"{life['end_to_end_seconds']} s at time scale {life['time_scale']:g} -> "
            f"{life['calls_per_s']} calls/s; POSTs {life['post_rate']}/s; lost {life['lost']}"
        )
    dlv = results.get("delivery")
    if dlv and "error" not in dlv:
        st, bu = dlv["steady"], dlv["burst"]
        print(
            f"Delivery ({dlv['hooks']} hooks): steady {st['events_per_s']:g} events/s -> "
            f"event->first attempt p50 {st['p50_ms']} ms, p99 {st['p99_ms']} ms; burst "
            f"{bu['deliveries_received']}/{bu['deliveries_expected']} in {bu['seconds']} s -> "
            f"{bu['deliveries_per_s']} deliveries/s (p50 {bu['latency_p50_ms']} ms under "
            f"backlog; pending after {bu['pending_after']}, failed {bu['failed_after']})"
        )
    _print_scale_out(results)
    targets = results.get("targets") or []
    if targets:
        print()
        print("Targets")
        print(
            _table(
                ["target", "measured", "wanted", ""],
                [
                    [
                        t["name"],
                        _f(t["value"], ",.2f")
                        if isinstance(t["value"], float)
                        else str(t["value"]),
                        t["target"],
                        "✓" if t["pass"] else "✗",
                    ]
                    for t in targets
                ],
            )
        )
        failed = sum(1 for t in targets if not t["pass"])
        print(f"{len(targets) - failed} of {len(targets)} targets pass")
