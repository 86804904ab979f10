"""The sandbox installed the way users install it: a wheel in a fresh venv outside the repo.

    .venv/bin/python scripts/wheel_check.py

1. builds the sdist and the wheel (``python -m build``) and runs ``check-wheel-contents``
   on the wheel (any warning fails);
2. installs the wheel (and pytest) into a new venv in a temp dir outside the repository;
3. runs that venv's ``unlimcall-sandbox serve`` (port and data dir from flags, webhook
   egress limited to loopback) from the temp dir, and checks ``/healthz``, ``/v1/me`` and a
   ``POST /v1/calls`` that ends with its CDR — every ``/v1`` answer checked against the
   contract;
4. copies ``examples/integrator`` next to a package of its own named ``server`` and runs
   it with plain ``pytest`` from that venv.

Nothing here talks to anything but 127.0.0.1 (and PyPI, for the venv's installs).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.contract import check  # noqa: E402  (the repo's contract checker)

ADMIN = "adm_wheel_check_" + os.urandom(12).hex()
# A package of the integrator's own with the name the sandbox used to install at top level.
INTEGRATOR_SERVER = (
    '"""The integrator\'s own `server` package: must win over anything installed."""\n'
    '\nNAME = "acme"\n'
)
SERVER_TEST = """from server import NAME


def test_our_own_server_package_is_the_one_imported() -> None:
    assert NAME == "acme"
"""


def step(text: str) -> None:
    print(f"wheel-check: {text}", flush=True)


def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(
            f"wheel-check: {' '.join(cmd)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc.stdout + proc.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(out: Path) -> Path:
    step("building sdist and wheel")
    # No flags: the sdist first, then the wheel built from the unpacked sdist (so a file
    # missing from the sdist fails here, and no stale build/ folder leaks in).
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    step(f"built {wheel.name} and {sdist.name}")
    report = run([str(Path(sys.executable).parent / "check-wheel-contents"), str(wheel)])
    if "OK" not in report or "W0" in report or "W1" in report or "W2" in report:
        sys.exit(f"wheel-check: check-wheel-contents is not clean:\n{report}")
    step("check-wheel-contents: OK")
    return wheel


def make_venv(where: Path, wheel: Path) -> Path:
    step(f"installing the wheel into a fresh venv at {where}")
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    py = where / "bin" / "python"
    run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{wheel}",
            "pytest",
        ]
    )
    return where / "bin"


def contract_checked() -> httpx.Client:
    def hook(response: httpx.Response) -> None:
        response.read()
        check(
            response.request.method,
            response.request.url.path,
            response.status_code,
            response.headers,
            response.content,
        )

    return httpx.Client(timeout=10, event_hooks={"response": [hook]})


def journey(base: str) -> None:
    with contract_checked() as http:
        deadline = time.monotonic() + 60
        while True:
            try:
                if http.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                sys.exit("wheel-check: the installed sandbox never answered /healthz")
            time.sleep(0.2)
        step("/healthz 200")
        admin = {"Authorization": f"Bearer {ADMIN}"}
        minted = http.post(
            f"{base}/_sandbox/accounts/1042/tokens",
            json={"scopes": ["read:cdrs", "read:agents", "write:calls"]},
            headers=admin,
        )
        minted.raise_for_status()
        auth = {"Authorization": f"Bearer {minted.json()['token']}"}
        me = http.get(f"{base}/v1/me", headers=auth)
        if me.status_code != 200 or me.json()["customerId"] != "1042":
            sys.exit(f"wheel-check: /v1/me answered {me.status_code} {me.text}")
        step("/v1/me 200")
        agent = http.get(f"{base}/v1/agents", headers=auth).json()["agents"][0]["id"]
        placed = http.post(
            f"{base}/v1/calls", headers=auth, json={"aiAgentId": agent, "toNumber": "+15005550008"}
        )
        if placed.status_code != 200:
            sys.exit(f"wheel-check: POST /v1/calls answered {placed.status_code} {placed.text}")
        call_id = placed.json()["callId"]
        step(f"POST /v1/calls 200 ({call_id})")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cdrs = http.get(f"{base}/v1/cdrs", headers=auth, params={"limit": "100"}).json()
            if any(c.get("dst") == "+15005550008" for c in cdrs["calls"]):
                step("the call ended with its CDR")
                return
            time.sleep(0.2)
        sys.exit("wheel-check: the call never produced its CDR")


def serve_and_check(bin_dir: Path, home: Path) -> None:
    port = free_port()
    data = home / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLIMCALL_")}
    env["UNLIMCALL_WEBHOOK_EGRESS"] = "loopback"
    env.pop("PYTHONPATH", None)
    cmd = [
        str(bin_dir / "unlimcall-sandbox"),
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data),
        "--admin-token",
        ADMIN,
        "--time-scale",
        "3600",
    ]
    step(f"running unlimcall-sandbox serve on port {port} from {home}")
    log = home / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        journey(f"http://127.0.0.1:{port}")
    except BaseException:
        print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def integrator_project(bin_dir: Path, home: Path) -> None:
    project = home / "acme"
    shutil.copytree(
        ROOT / "examples" / "integrator",
        project,
        ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"),
    )
    (project / "server").mkdir()
    (project / "server" / "__init__.py").write_text(INTEGRATOR_SERVER)
    (project / "tests" / "test_own_server_package.py").write_text(SERVER_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLIMCALL_")}
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    step("examples/integrator beside its own `server` package: plain `pytest`")
    out = run(
        [str(bin_dir / "pytest"), "-q", "-W", "ignore::DeprecationWarning"], cwd=project, env=env
    )
    print(out.strip().splitlines()[-1], flush=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="unlimcall-wheel-") as tmp:
        home = Path(tmp)
        wheel = build(home / "dist")
        bin_dir = make_venv(home / "venv", wheel)
        serve_and_check(bin_dir, home)
        integrator_project(bin_dir, home)
    step("all green")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
