"""The command line as a user meets it: `serve` and `token create`, as real processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.contract import checked_client
from tests.support.receiver import free_port

CLI = Path(sys.executable).parent / "unlimcall-sandbox"


def _env(tmp: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLIMCALL_")}
    env.update(
        UNLIMCALL_DATA_DIR=str(tmp / "data"),
        UNLIMCALL_PORT=str(port),
        UNLIMCALL_LOG_REQUESTS="false",
    )
    return env


def test_serve_prints_what_to_call_and_stops_cleanly(backend: str, tmp_path: Path) -> None:
    if backend != "sqlite":
        pytest.skip("serve's embedded defaults are SQLite + embedded Redis")
    port = free_port()
    http = checked_client(timeout=10)
    out = tmp_path / "serve.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [str(CLI), "serve"], env=_env(tmp_path, port), stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if http.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        banner = out.read_text()
        assert f"{base}/v1" in banner
        admin = re.search(r"Admin token:\s+(\S+)", banner)
        demo = re.search(r"Demo token:\s+(unl_live_\S+)", banner)
        assert admin and demo, banner
        me = http.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {demo.group(1)}"})
        assert me.json()["customerId"] == "1042"
        r = http.get(
            f"{base}/_sandbox/clock", headers={"Authorization": f"Bearer {admin.group(1)}"}
        )
        assert r.status_code == 200
        sock = tmp_path / "data" / "redis.sock"
        assert sock.exists()
        token = subprocess.run(
            [
                str(CLI),
                "token",
                "create",
                "--customer",
                "1042",
                "--scopes",
                "read:balance,read:cdrs",
            ],
            env=_env(tmp_path, port),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert re.fullmatch(r"unl_live_[A-Za-z0-9_-]{32,}\n", token), token
        balance = http.get(
            f"{base}/v1/balance", headers={"Authorization": f"Bearer {token.strip()}"}
        )
        assert balance.json()["balance"] == 42.7831
        assert (
            http.get(
                f"{base}/v1/agents", headers={"Authorization": f"Bearer {token.strip()}"}
            ).status_code
            == 401
        )
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: the conventional status.
        assert proc.wait(30) in (0, -signal.SIGTERM), out.read_text()
        assert not sock.exists(), "the embedded Redis must stop with the sandbox"
    finally:
        http.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_token_create_reports_errors_on_stderr(backend: str, tmp_path: Path) -> None:
    if backend != "sqlite":
        pytest.skip("runs against a fresh SQLite data dir")
    env = _env(tmp_path, free_port())
    bad = subprocess.run(
        [str(CLI), "token", "create", "--customer", "424242"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert "424242" in bad.stderr
    bad = subprocess.run(
        [str(CLI), "token", "create", "--customer", "1042", "--scopes", "read:everything"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert "read:everything" in bad.stderr
    env["UNLIMCALL_TIME_SCALE"] = "fast"
    bad = subprocess.run(
        [str(CLI), "token", "create", "--customer", "1042"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "UNLIMCALL" in bad.stderr or "time_scale" in bad.stderr
