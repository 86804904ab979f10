"""The integrator example project runs its own tests through the shipped pytest plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "integrator"


def test_the_example_project_passes_with_the_plugin(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the plugin starts its own sandbox (SQLite + embedded Redis)")
    run = subprocess.run(
        [str(Path(sys.executable).parent / "pytest"), "-q", "-W", "ignore::DeprecationWarning"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "4 passed" in run.stdout
