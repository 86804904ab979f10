"""``launch_sandbox()``: the one way this repository starts a sandbox process (the pytest
plugin, the schemathesis script, the benchmarks, the scale-out tests)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from unlimcall_sandbox.testing.launch import SandboxDidNotStart, launch_sandbox


def processes_naming(path: Path) -> list[int]:
    """Live processes whose command line names ``path`` (the embedded Redis names its
    socket in the data dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and str(path).encode() in cmdline:
            found.append(int(entry.name))
    return found


def test_a_launched_sandbox_answers_and_leaves_nothing_behind() -> None:
    with launch_sandbox({"UNLIMCALL_TIME_SCALE": "3600"}) as sb:
        assert sb.url.startswith("http://127.0.0.1:")
        env = sb.env
        assert (env["UNLIMCALL_WEBHOOK_EGRESS"], env["UNLIMCALL_WEBHOOK_ALLOW"]) == ("loopback", "")
        assert env["UNLIMCALL_TIME_SCALE"] == "3600"
        assert not any(k.startswith("UNLIMCALL_TEST_") for k in env)
        with httpx.Client(base_url=sb.url, trust_env=False) as client:
            assert client.get("/readyz").status_code == 200
            r = client.get("/_sandbox/clock", headers={"Authorization": f"Bearer {sb.admin_token}"})
            assert r.status_code == 200, r.text
            assert r.json()["scale"] == 3600
        data_dir = sb.data_dir
        assert data_dir.is_dir()
        assert processes_naming(data_dir)  # its embedded Redis
    assert not sb.alive
    assert processes_naming(data_dir) == []
    assert not data_dir.exists()  # a temporary data dir goes with it


def test_a_sandbox_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(SandboxDidNotStart) as failed:
        launch_sandbox({"UNLIMCALL_TIME_SCALE": "fast"}, data_dir=tmp_path / "given")
    assert "UNLIMCALL_TIME_SCALE" in str(failed.value)  # the tail of its log
    assert (tmp_path / "given").is_dir()  # a data dir that was given is kept


def test_several_start_at_once_then_wait(tmp_path: Path) -> None:
    launched = [launch_sandbox(data_dir=tmp_path / f"sb{n}", ready=False) for n in range(2)]
    try:
        assert len({sb.port for sb in launched}) == 2
        for sb in launched:
            sb.wait_ready()
    finally:
        for sb in launched:
            sb.stop()
    for sb in launched:
        assert not sb.alive
        with pytest.raises(ProcessLookupError):
            os.killpg(sb.pid, 0)  # nothing left in its session
