#!/usr/bin/env bash
# Proof that a stage sends nothing off this machine (issue 12): run a command inside an empty
# network namespace (loopback only) under strace, then read every connect() it and its
# children made. Any AF_INET/AF_INET6 connect to an address outside 127.0.0.0/8 and ::1
# fails the audit, whether or not it could have succeeded.
#
#   scripts/egress_audit.sh make schemathesis MODE=sqlite
#   scripts/egress_audit.sh --trace-only make test   # no namespace (PostgreSQL and Redis on
#                                                    # 127.0.0.1 stay reachable): detect only
#
# Needs root (unshare -n), strace and ip; without them it says so and runs the command
# unaudited (exit status of the command).
set -uo pipefail
cd "$(dirname "$0")/.."

netns=1
if [[ "${1:-}" == "--trace-only" ]]; then
  netns=0
  shift
fi
if [[ $# -eq 0 ]]; then
  echo "usage: scripts/egress_audit.sh COMMAND [ARGS...]" >&2
  exit 2
fi

if ! command -v strace >/dev/null 2>&1 \
  || { [[ $netns -eq 1 ]] && ! { command -v ip >/dev/null 2>&1 && unshare -n true 2>/dev/null; }; }; then
  echo "egress-audit: strace, ip or unshare -n unavailable here: running '$*' unaudited" >&2
  "$@"
  exit $?
fi

trace="$(mktemp -d)/connect.trace"
if [[ $netns -eq 1 ]]; then
  # A fresh namespace has only `lo`, and it is down until brought up.
  unshare -n -- bash -c 'ip link set lo up && exec "$@"' audit \
    strace -f -qq --seccomp-bpf -e trace=connect -o "$trace" "$@"
else
  strace -f -qq --seccomp-bpf -e trace=connect -o "$trace" "$@"
fi
status=$?

python3 - "$trace" <<'PY'
import ipaddress
import re
import sys

trace = sys.argv[1]
inet = re.compile(r'sin_addr=inet_addr\("([^"]+)"\)')
inet6 = re.compile(r'inet_pton\(AF_INET6, "([^"]+)"')
# Chromium (the browser tests) checks whether IPv6 is globally routable by connect()ing a UDP
# socket to Google's resolver on port 443 and reading the local address: a route lookup that
# sends no packet. It is the one non-loopback connect() allowed, to exactly that address/port.
ROUTE_PROBES = {("2001:4860:4860::8888", "443")}
port_of = re.compile(r"sin6?_port=htons\((\d+)\)")
seen: dict[str, int] = {}
probes = 0
offending: list[str] = []
with open(trace, encoding="utf-8", errors="replace") as lines:
    for line in lines:
        if "connect(" not in line:
            continue
        for pattern in (inet, inet6):
            for address in pattern.findall(line):
                seen[address] = seen.get(address, 0) + 1
                ip = ipaddress.ip_address(address)
                mapped = getattr(ip, "ipv4_mapped", None)
                if ip.is_loopback or (mapped is not None and mapped.is_loopback):
                    continue
                port = port_of.search(line)
                if port and (address, port.group(1)) in ROUTE_PROBES:
                    probes += 1
                    continue
                offending.append(line.strip())
summary = ", ".join(f"{a} x{n}" for a, n in sorted(seen.items())) or "none"
print(f"egress-audit: TCP/UDP connects by address: {summary}")
if probes:
    print(f"egress-audit: {probes} of them Chromium's IPv6 route probe (UDP, sends nothing)")
if offending:
    print("egress-audit: FAILED: connects to non-loopback addresses:")
    for line in offending[:50]:
        print("  " + line)
    sys.exit(1)
print("egress-audit: OK: nothing but loopback (and unix sockets)")
PY
audit=$?
rm -rf "$(dirname "$trace")"
if [[ $status -ne 0 ]]; then
  exit "$status"
fi
exit "$audit"
