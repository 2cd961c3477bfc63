#!/usr/bin/env bash
# What traces cost (issue 23): compare.sh runs of this build, outside CI,
# on a quiet machine.
#
#   bench/trace-cost.sh [ROUNDS] [SECONDS]      # defaults: 3 rounds of 10 s per load
#   LCM_TRACE_BASELINE=path/to/older/lcm-worker bench/trace-cost.sh
#       # first, export off (the default) against that older build
#
# Then export on, every span sampled (OTEL_TRACES_SAMPLER=always_on), to a
# live OTLP/HTTP sink (examples/otlp_sink.rs: one thread, as little of the
# machine as a collector elsewhere would take) on a free port, against the
# same build with export off: the table's "baseline" column is export off.
# Each compare.sh run also measures the echo yardstick.
#
# Needs what compare.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-3}
seconds=${2:-10}

if [[ -n ${LCM_TRACE_BASELINE:-} ]]; then
  echo "== export off (this build) against $LCM_TRACE_BASELINE (baseline)"
  LCM_COMPARE_BASELINE=$LCM_TRACE_BASELINE bench/compare.sh "$rounds" "$seconds"
fi

bench_build otlp_sink
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/release/examples/otlp_sink "$port" &
sink=$!
trap 'kill -TERM "$sink" 2>/dev/null; wait "$sink" 2>/dev/null || true' EXIT
echo "== export on, all sampled, to 127.0.0.1:$port (worker) against export off (baseline)"
LCM_COMPARE_BASELINE=target/release/lcm-worker \
  LCM_COMPARE_WORKER_ENV="OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$port OTEL_TRACES_SAMPLER=always_on" \
  bench/compare.sh "$rounds" "$seconds"
