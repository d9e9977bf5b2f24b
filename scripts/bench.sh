#!/usr/bin/env bash
# Side-by-side benchmark of Granary and redis-server with ../shared/bench/compare.sh
# (both servers pinned to CPU 0, redis-benchmark to CPU 1, interleaved rounds).
#   scripts/bench.sh                 # all workloads, 5 rounds
#   WORKLOADS="a b" ROUNDS=3 scripts/bench.sh
# The numbers quoted in docs/benchmarks.md come from this script; quote ratios.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH_DIR:-$ROOT/../shared/bench}
[[ -x $BENCH/compare.sh ]] || { echo "bench.sh: $BENCH/compare.sh not found (set BENCH_DIR)" >&2; exit 1; }
cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
"$BENCH/setup.sh" >/dev/null
export ROUNDS=${ROUNDS:-5} WAIT_IDLE=${WAIT_IDLE:-600} IDLE_MAX=${IDLE_MAX:-10} RETRIES=${RETRIES:-2} NOISY_MAX=${NOISY_MAX:-10}
exec "$BENCH/compare.sh" \
  redis="redis-server --port {port} --save '' --appendonly no" \
  granary="$ROOT/target/release/granary --port {port} --save '' --appendonly no"
