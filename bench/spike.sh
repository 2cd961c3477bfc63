#!/usr/bin/env bash
# Memory after a spike (README, Hostile input): one campaign with a 10 MB
# outcome list, N requests for it at once; prints the worker's RSS before,
# at its peak, and 10 s after the last reply. Outside CI.
#
#   bench/spike.sh [WORKER_BINARY] [N]     # SPIKE_ITEMS=3400: a list just under the 1 MiB limit
#
# Extra environment for the worker (GLIBC_TUNABLES, say) passes through.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bin=${1:-target/release/lcm-worker}
n=${2:-30}
id="spike-$$"
bench_names "$id"
export LCM__HTTP__ADDR=127.0.0.1:0 RUST_LOG=warn

cleanup() {
  bench_stop "${worker:-}"
  bench_remove "$id" spike.sh
}
trap cleanup EXIT

python3 bench/tools.py outcome-list "${SPIKE_ITEMS:-50000}" | redis-cli -x set "$id:campaign:big:outcomes" >/dev/null
redis-cli hset "$id:call:big" campaign_id big >/dev/null
echo "stored list: $(redis-cli strlen "$id:campaign:big:outcomes") bytes"

RUST_LOG=info "$bin" 2>/tmp/spike-worker.log &
worker=$!
bench_wait_consuming "$worker" "$id.queue"
echo "RSS idle: $(bench_rss "$worker") kB"
# shellcheck disable=SC2046
bench_burst "$worker" "$bin" $(for _ in $(seq 1 "$n"); do echo big; done)
echo "RSS peak: $burst_peak kB ($n requests, $burst_failed failed)"
sleep 10
echo "RSS 10 s after: $(bench_rss "$worker") kB"
