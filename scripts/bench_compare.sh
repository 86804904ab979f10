#!/usr/bin/env bash
# Before/after in one run: `python -m bench` on another commit's tree and on this working
# tree, back to back, same machine, same venv, same options; then the HTTP rows side by
# side. Each run also measures its own reference app, so both the raw req/s and the ratio
# to the reference (which absorbs the machine's drift between the two runs) are compared.
#
#   bash scripts/bench_compare.sh REF [bench options...]
#   bash scripts/bench_compare.sh 38c8fee --only me,balance,cdrs100,calls --quick
#
# REF's tree is exported with `git archive` into a temporary directory (no worktree, no
# checkout) and run with this repository's .venv, its own code first on PYTHONPATH. Every
# sandbox either run starts is loopback-only (UNLIMCALL_WEBHOOK_EGRESS=loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:?usage: scripts/bench_compare.sh REF [bench options...]}
shift
root=$PWD
py="$root/.venv/bin/python"
work=$(mktemp -d -t unlimcall-bench-compare-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/before"
git archive "$ref" | tar -x -C "$work/before"
export UNLIMCALL_WEBHOOK_EGRESS=loopback

echo "== before: $ref ($(git rev-parse --short "$ref"))"
(cd "$work/before" && PYTHONPATH="$work/before" "$py" -m bench --out "$work/before.json" "$@")
echo "== after: working tree ($(git rev-parse --short HEAD)$(git diff --quiet || echo +changes))"
"$py" -m bench --out "$work/after.json" "$@"

"$py" - "$work/before.json" "$work/after.json" "$ref" <<'EOF'
import json
import sys

before, after = (json.load(open(p)) for p in sys.argv[1:3])
rows = lambda r: {row["key"]: row for row in r.get("http", {}).get("rows", [])}  # noqa: E731
b, a = rows(before), rows(after)
print(f"\n| endpoint | before req/s | after req/s | change | before ratio | after ratio | change |")
print("|---|---|---|---|---|---|---|")
worst = 0.0
for key, row in a.items():
    if key not in b:
        continue
    rb, ra = b[key]["sandbox"]["rps"], row["sandbox"]["rps"]
    qb, qa = b[key]["ratio"], row["ratio"]
    d_rps, d_ratio = ra / rb - 1, qa / qb - 1
    worst = min(worst, d_ratio)
    print(
        f"| {row['label']} | {rb:,.0f} | {ra:,.0f} | {d_rps:+.0%} | {qb:.2f} | {qa:.2f} "
        f"| {d_ratio:+.0%} |"
    )
print(f"\nworst change of the ratio to the reference: {worst:+.0%} (guard rail: no row below -15%)")
EOF
