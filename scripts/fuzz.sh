#!/usr/bin/env bash
# The bug hunt: runs the randomised differential tests (Granary against
# redis-server) over and over with fresh seeds. The test suite itself uses
# fixed seeds so that a landing is deterministic; this is where new seeds
# are tried. Every failure prints its seed variable (DIFF_SEED=..., etc.):
# rerun the named test with it to reproduce, fix, and add a fixed-seed
# regression test.
#
#   scripts/fuzz.sh [ROUNDS]      (default 20; build with cargo first)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS="${1:-20}"
TESTS=(differential notify hash hash_ttl list set zset lualibs protocol)
LOG="$(mktemp -d)"
export GRANARY_RANDOM_SEEDS=1
failures=0
for round in $(seq 1 "$ROUNDS"); do
    for t in "${TESTS[@]}"; do
        if ! cargo nextest run --release -p granary-server --test "$t" \
            --no-fail-fast >"$LOG/$t.$round.log" 2>&1; then
            failures=$((failures + 1))
            echo "round $round: $t FAILED ($LOG/$t.$round.log)"
            grep -E '_SEED=[0-9]+' "$LOG/$t.$round.log" | sort -u | head -5
        fi
    done
    echo "round $round done, $failures failure(s) so far"
done
[ "$failures" -eq 0 ]
