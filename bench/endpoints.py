"""The HTTP benchmark: wrk against the sandbox and against the reference app in the same
run, endpoint by endpoint, plus p99 at half the measured maximum rate and the API
process's RSS idle and under load."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import pg, profile, wrk
from bench.servers import (
    ForeignLoad,
    Processes,
    RssSampler,
    Sandbox,
    start_python_module,
    start_sandbox,
)
from unlimcall_sandbox.server.settings import ALL_SCOPES

CDR_CHUNK = 100  # rows per transaction of the generation job (services.bulk.CHUNK)
PACED = ("me", "balance")
"""Endpoints whose p99 is measured again at half their maximum rate."""


@dataclass(frozen=True)
class Config:
    duration: float = 8.0
    warmup: float = 1.0
    paced_duration: float = 8.0
    connections: int = 32
    threads: int = 2
    cdr_rows: int = 1_000_000


@dataclass(frozen=True)
class Endpoint:
    key: str
    label: str
    request: wrk.Request
    target_ratio: float | None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _endpoints(token: str, agent_id: str, client_id: str, client_secret: str) -> list[Endpoint]:
    bearer = {"Authorization": f"Bearer {token}"}
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    call = json.dumps({"aiAgentId": agent_id, "toNumber": "+14155551234"}).encode()
    return [
        Endpoint("me", "GET /v1/me", wrk.Request("GET", "/v1/me", bearer), 0.75),
        Endpoint("balance", "GET /v1/balance", wrk.Request("GET", "/v1/balance", bearer), 0.6),
        Endpoint(
            "cdrs100",
            "GET /v1/cdrs?limit=100 (1M rows)",
            wrk.Request("GET", "/v1/cdrs?limit=100", bearer),
            0.35,
        ),
        Endpoint(
            "cdrs1000",
            "GET /v1/cdrs?limit=1000 (1M rows)",
            wrk.Request("GET", "/v1/cdrs?limit=1000", bearer),
            None,
        ),
        Endpoint(
            "oauth",
            "POST /oauth/token",
            wrk.Request(
                "POST",
                "/oauth/token",
                {
                    "Authorization": f"Basic {basic}",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                b"grant_type=client_credentials",
            ),
            None,
        ),
        # Last: every call it queues keeps the in-process worker busy for minutes.
        Endpoint(
            "calls",
            "POST /v1/calls",
            wrk.Request("POST", "/v1/calls", {**bearer, "Content-Type": "application/json"}, call),
            0.3,
        ),
    ]


KEYS = ("me", "balance", "cdrs100", "cdrs1000", "oauth", "calls", "paced")
SCALE_OUT_KEYS = ("me", "balance", "cdrs100", "calls")
"""The endpoints measured again on PostgreSQL + Redis (``pg_<key>``), against ``serve``'s
figure of the same run."""
SCALE_OUT_RATIO = {"balance": 0.6, "cdrs100": 0.6, "calls": 0.6}
"""Targets: the PostgreSQL deployment's req/s over ``serve``'s (issue 17, item 4)."""


def _sample(base_url: str, req: wrk.Request) -> bytes:
    """One request exactly as wrk will send it: its answer is the reference's body."""
    resp = httpx.request(
        req.method, base_url + req.path, headers=req.headers, content=req.body, timeout=60
    )
    if resp.status_code != 200:
        raise RuntimeError(f"{req.method} {req.path} -> {resp.status_code}: {resp.text[:300]}")
    return resp.content


def _generate_cdrs(sb: Sandbox, customer: str, rows: int) -> dict[str, Any]:
    """``rows`` CDRs inside the default /v1/cdrs window (the last 24 h of sandbox time):
    one job (the worker inserts them in chunks), followed until it is done."""
    now = sb.sandbox_now()
    start, till = now - 23 * 3600, now - 60
    began = time.perf_counter()
    job = sb.admin(
        "POST",
        f"/_sandbox/accounts/{customer}/cdrs/generate",
        {"count": rows, "from": _iso(start), "till": _iso(till)},
    )
    last = -1
    while job["state"] != "done":
        if job["state"] == "failed":
            raise RuntimeError(f"CDR generation failed: {job}")
        done = int(str(job["done"]))
        if done // 100_000 != last // 100_000:
            print(f"bench:   {done:,} CDRs ({time.perf_counter() - began:.1f}s)", flush=True)
            last = done
        time.sleep(0.5)
        job = sb.admin("GET", f"/_sandbox/jobs/{job['jobId']}")
    seconds = time.perf_counter() - began
    return {
        "rows": rows,
        "chunk": CDR_CHUNK,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
    }


def _measure(
    base_url: str, req: wrk.Request, cfg: Config, sampler: RssSampler | None = None
) -> wrk.WrkResult:
    if cfg.warmup > 0:
        wrk.run(base_url, req, duration=cfg.warmup, connections=cfg.connections)
    if sampler is None:
        return wrk.run(
            base_url, req, duration=cfg.duration, connections=cfg.connections, threads=cfg.threads
        )
    with sampler.running():
        return wrk.run(
            base_url, req, duration=cfg.duration, connections=cfg.connections, threads=cfg.threads
        )


def run(
    procs: Processes, cfg: Config, only: set[str], profile_dir: Path | None = None
) -> dict[str, Any]:
    selected = [k for k in KEYS if k in only]
    if "paced" in selected:  # needs the max rate of the endpoints it paces
        selected = sorted({*selected, *PACED}, key=KEYS.index)
    print(f"bench: HTTP benchmark ({', '.join(selected)})", flush=True)
    sb = start_sandbox(procs, "api")
    time.sleep(1.0)
    rss: dict[str, float] = {"idle_at_start_mb": round(sb.rss_mb(), 1)}
    customer = sb.create_account("Bench API")
    token = sb.token(customer, list(ALL_SCOPES))
    agent = sb.agent(customer)
    oauth = sb.admin("POST", f"/_sandbox/accounts/{customer}/oauth-clients", {"scopes": ALL_SCOPES})
    out: dict[str, Any] = {"customerId": customer}
    if {"cdrs100", "cdrs1000"} & set(selected):
        print(f"bench: generating {cfg.cdr_rows:,} CDRs for account {customer}", flush=True)
        out["cdr_generation"] = _generate_cdrs(sb, customer, cfg.cdr_rows)
        time.sleep(1.0)
        rss["idle_after_cdr_generation_mb"] = round(sb.rss_mb(), 1)

    endpoints = [
        e
        for e in _endpoints(token, agent, str(oauth["clientId"]), str(oauth["clientSecret"]))
        if e.key in selected
    ]
    spec: dict[str, list[dict[str, str]]] = {"routes": []}
    sizes: dict[str, int] = {}
    for ep in endpoints:
        body = _sample(sb.base_url, ep.request)
        sizes[ep.key] = len(body)
        path, _, query = ep.request.path.partition("?")
        spec["routes"].append(
            {
                "method": ep.request.method,
                "path": path,
                "query": query,
                "body": base64.b64encode(body).decode(),
            }
        )
    spec_dir = procs.tempdir("reference")
    (spec_dir / "spec.json").write_text(json.dumps(spec))
    ref = start_python_module(
        procs,
        "reference",
        "bench.reference_app",
        ["--spec", str(spec_dir / "spec.json")],
        spec_dir,
        "/__ready",
    )
    rss["idle_mb"] = round(sb.rss_mb(), 1)

    sampler = RssSampler(sb.proc.pid)
    rows: list[dict[str, Any]] = []
    max_rps: dict[str, float] = {}
    paced_rows: list[dict[str, Any]] = []

    def paced() -> None:
        for key in PACED:
            ep = next(e for e in endpoints if e.key == key)
            rate = round(max_rps[key] / 2)
            print(f"bench:   paced {ep.label} at {rate} req/s ...", flush=True)
            with sampler.running(), ForeignLoad(procs).measuring() as foreign:
                res = wrk.run(
                    sb.base_url,
                    ep.request,
                    duration=cfg.paced_duration,
                    connections=cfg.connections,
                    threads=cfg.threads,
                    rate=rate,
                )
            paced_rows.append(
                {
                    "key": key,
                    "label": ep.label,
                    "sandbox": res.as_dict(),
                    "other_cpu_pct": foreign.pct,
                }
            )
            print(
                f"bench:     {res.rps:,.0f} req/s, p50 {res.p50_ms:.2f} ms, "
                f"p99 {res.p99_ms:.2f} ms",
                flush=True,
            )

    for ep in endpoints:
        if ep.key == "calls" and "paced" in selected:
            paced()  # before POST /v1/calls leaves the worker busy
        print(f"bench:   {ep.label} ...", flush=True)
        with ForeignLoad(procs).measuring() as foreign:
            mine = _measure(sb.base_url, ep.request, cfg, sampler)
        theirs = _measure(ref.base_url, ep.request, cfg)
        max_rps[ep.key] = mine.rps
        ratio = mine.rps / theirs.rps if theirs.rps else 0.0
        rows.append(
            {
                "key": ep.key,
                "label": ep.label,
                "body_bytes": sizes[ep.key],
                "sandbox": mine.as_dict(),
                "reference": theirs.as_dict(),
                "ratio": round(ratio, 3),
                "target_ratio": ep.target_ratio,
                "pass": None if ep.target_ratio is None else ratio >= ep.target_ratio,
                "sandbox_failed_requests": mine.failed,
                "other_cpu_pct": foreign.pct,
            }
        )
        print(
            f"bench:     sandbox {mine.rps:,.0f} req/s (p99 {mine.p99_ms:.1f} ms, "
            f"{mine.failed} failed) | reference {theirs.rps:,.0f} req/s | ratio {ratio:.2f} | "
            f"other load {foreign.pct:.0f}% of a core",
            flush=True,
        )
    if "paced" in selected and "calls" not in selected:
        paced()
    profiles: dict[str, Any] = {}
    if profile_dir is not None:
        # A separate pass, so that sampling does not perturb the numbers above.
        for ep in endpoints:
            print(f"bench:   profiling {ep.label} under load ...", flush=True)
            with profile.recording(
                sb.proc.pid, profile_dir / f"http-{ep.key}.txt", ep.label
            ) as prof:
                wrk.run(sb.base_url, ep.request, duration=cfg.duration, connections=cfg.connections)
            profiles[ep.key] = prof
    out["profiles"] = profiles
    rss["under_load_peak_mb"] = round(sampler.peak, 1)
    out.update(rows=rows, paced=paced_rows, rss=rss, wrk={"connections": cfg.connections})
    return out


def run_scale_out(
    procs: Processes,
    cfg: Config,
    keys: list[str],
    start: pg.ScaleOut,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """The same requests against ``start``'s deployment (``api --workers 2`` + a worker on
    PostgreSQL + Redis), with as many CDRs; no reference app (the comparison is with
    ``serve``'s figures of the same run). Each row gives the CPU seconds each part spent
    (API processes, workers, PostgreSQL backends); with ``profile_dir`` an extra pass per
    endpoint samples the API processes with py-spy."""
    selected = [k for k in SCALE_OUT_KEYS if k in keys]
    print(f"bench: HTTP benchmark on PostgreSQL ({', '.join(selected)})", flush=True)
    sb = start(procs, "pg-api")
    try:
        customer = sb.create_account("Bench API")
        token = sb.token(customer, list(ALL_SCOPES))
        agent = sb.agent(customer)
        out: dict[str, Any] = {"customerId": customer}
        if "cdrs100" in selected:
            print(f"bench: generating {cfg.cdr_rows:,} CDRs for account {customer}", flush=True)
            out["cdr_generation"] = _generate_cdrs(sb, customer, cfg.cdr_rows)
        endpoints = [e for e in _endpoints(token, agent, "-", "-") if e.key in selected]
        rows: list[dict[str, Any]] = []
        for ep in endpoints:
            size = len(_sample(sb.base_url, ep.request))
            print(f"bench:   {ep.label} ...", flush=True)
            parts = {
                "api": ({sb.proc.pid}, ""),
                "worker": ({w.pid for w in start.worker_procs}, ""),
                "postgres": (set(), start.database),
            }
            ticks = {k: pg.cpu_ticks(*v) for k, v in parts.items()}
            with ForeignLoad(procs).measuring() as foreign:
                mine = _measure(sb.base_url, ep.request, cfg)
            cpu = {k: round((pg.cpu_ticks(*v) - ticks[k]) / 100, 2) for k, v in parts.items()}
            if profile_dir is not None:
                with profile.recording(
                    sb.proc.pid, profile_dir / f"pg-http-{ep.key}.txt", ep.label, subprocesses=True
                ):
                    _measure(sb.base_url, ep.request, cfg)
            rows.append(
                {
                    "key": ep.key,
                    "label": ep.label,
                    "body_bytes": size,
                    "sandbox": mine.as_dict(),
                    "sandbox_failed_requests": mine.failed,
                    "other_cpu_pct": foreign.pct,
                    "cpu_seconds": cpu,
                    "target_ratio": SCALE_OUT_RATIO.get(ep.key),
                }
            )
            print(
                f"bench:     {mine.rps:,.0f} req/s (p99 {mine.p99_ms:.1f} ms, {mine.failed} "
                f"failed) | other load {foreign.pct:.0f}% of a core | CPU s: {cpu}",
                flush=True,
            )
    finally:
        sb.close()
    out.update(rows=rows, wrk={"connections": cfg.connections})
    return out


def compare(scale_out: dict[str, Any], serve: dict[str, Any] | None) -> None:
    """Each PostgreSQL row gains ``serve_rps``, ``ratio`` and ``pass`` from ``serve``'s
    row of the same endpoint in the same run."""
    by_key = {r["key"]: r for r in (serve or {}).get("rows", [])}
    for row in scale_out["rows"]:
        theirs = by_key.get(row["key"])
        serve_rps = theirs["sandbox"]["rps"] if theirs else None
        ratio = row["sandbox"]["rps"] / serve_rps if serve_rps else None
        row["serve_rps"] = serve_rps
        row["ratio"] = None if ratio is None else round(ratio, 3)
        target = row["target_ratio"]
        row["pass"] = None if target is None or ratio is None else ratio >= target
