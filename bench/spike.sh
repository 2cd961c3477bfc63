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
rss() { awk '/VmRSS/ {print $2}' "/proc/$worker/status"; }
echo "RSS idle: $(rss) kB"
peak=0
pids=()
for _ in $(seq 1 "$n"); do
  "$bin" request --callid big --account 1 --timeout 60s >/dev/null 2>&1 & pids+=($!)
done
while kill -0 "${pids[@]}" 2>/dev/null; do
  r=$(rss); (( r > peak )) && peak=$r
  sleep 0.05
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
echo "RSS peak: $peak kB ($n requests, $failed failed)"
sleep 10
echo "RSS 10 s after: $(rss) kB"
