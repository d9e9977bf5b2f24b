#!/usr/bin/env bash
# Runs every test Granary has, from a fresh Debian 12 machine with cargo,
# python3 and apt: installs what is missing, builds the release binary, then
# rustfmt, clippy, the Rust tests (nextest) and the Python client suite.
# Safe to run again; exits non-zero if any step failed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
VENV="$ROOT/.venv"
LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT

STEPS=()
FAILED=0

step() { printf '\n==== %s ====\n' "$*"; }

# run NAME CMD...: runs a step, tees its output to $LOGS/NAME.log and records
# PASS/FAIL with the time it took, without stopping the remaining steps.
run() {
    local name="$1" start status
    shift
    step "$name: $*"
    start=$SECONDS
    set +e
    "$@" 2>&1 | tee "$LOGS/$name.log"
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" -eq 0 ]; then
        STEPS+=("PASS  $name ($((SECONDS - start))s)")
    else
        STEPS+=("FAIL  $name (exit $status, $((SECONDS - start))s)")
        FAILED=1
    fi
    return "$status"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# redis-server and redis-cli are the differential-testing oracle and the CLI
# under test. Installing the package must not start Debian's redis service
# (it would take port 6379), so a policy-rc.d denies service starts meanwhile.
ensure_redis_tools() {
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
        return 0
    fi
    step "installing redis-server and redis-tools"
    local policy=/usr/sbin/policy-rc.d added=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod +x "$policy"
        added=1
    fi
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends redis-server redis-tools
    if [ "$added" -eq 1 ]; then as_root rm -f "$policy"; fi
}

# PostgreSQL binaries for the write-behind tests, which start their own
# server (initdb in a temporary directory, a free port). Debian's own cluster
# service must not start, hence the same policy-rc.d trick.
ensure_postgres() {
    if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        return 0
    fi
    step "installing postgresql"
    local policy=/usr/sbin/policy-rc.d added=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod +x "$policy"
        added=1
    fi
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends postgresql-15 ||
        as_root apt-get install -y -q --no-install-recommends postgresql
    if [ "$added" -eq 1 ]; then as_root rm -f "$policy"; fi
}

# Debian's own python3 has no venv/ensurepip without python3-venv.
# Node.js and npm for the BullMQ job-queue test (tests/python/test_bullmq.py).
ensure_node() {
    if command -v node >/dev/null && command -v npm >/dev/null; then
        return 0
    fi
    step "installing nodejs and npm"
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends nodejs npm
}

ensure_venv() {
    if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$VENV" # a half-made venv from an interrupted run
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
            step "installing python3-venv"
            as_root apt-get update -q
            as_root apt-get install -y -q --no-install-recommends python3-venv
        fi
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q -r tests/python/requirements.txt
}

rust_tests() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --release --no-fail-fast
    else
        echo "cargo-nextest not found: falling back to cargo test"
        cargo test --workspace --release --no-fail-fast
    fi
}

python_tests() {
    GRANARY_BIN="$TARGET_DIR/release/granary" "$VENV/bin/python" -m pytest tests/python
}

# Adds up the counts matching ERE $1 (e.g. "passed") on the runners' summary
# lines, which the summary step below has left in $LOGS/*.summary.
count() {
    local total=0 n
    for n in $(cat "$LOGS"/*.summary 2>/dev/null | grep -oE "[0-9]+ ($1)" | grep -oE '^[0-9]+' || true); do
        total=$((total + n))
    done
    echo "$total"
}

ensure_redis_tools
ensure_postgres
ensure_node
ensure_venv

run fmt cargo fmt --all -- --check --color never || true
run build cargo build --release --workspace || true
if [ ! -x "$TARGET_DIR/release/granary" ]; then
    echo "release build failed: nothing else can run" >&2
    exit 1
fi
run clippy cargo clippy --all-targets -- -D warnings || true
run rust-tests rust_tests || true
run python-tests python_tests || true

step "summary"
printf '%s\n' "${STEPS[@]}"
# Only the runners' summary lines are counted, so no test's own output can
# skew the totals: nextest's "Summary [...]" line (or cargo test's
# "test result:" lines) and pytest's closing line.
grep -hE '^ *Summary \[|^test result:' "$LOGS/rust-tests.log" > "$LOGS/rust.summary" 2>/dev/null || true
grep -hE '^=* *[0-9]+ (passed|failed|error)' "$LOGS/python-tests.log" 2>/dev/null |
    tail -n 1 > "$LOGS/python.summary" || true
cat "$LOGS/rust.summary" "$LOGS/python.summary"
echo "total: $(count passed) passed, $(count 'failed|errors?|timed out') failed"
exit "$FAILED"
