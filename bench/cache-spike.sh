#!/usr/bin/env bash
# Memory after rounds of new campaigns (issue 20, item 5): ROUNDS rounds of
# N campaigns never asked before, each with an outcome list of ITEMS
# outcomes (3,400: 0.8 MB, under the 1 MiB limit), one request each, all at
# once; prints the worker's RSS idle, after each round, and 1, 5 and 10 s
# after the last. Outside CI.
#
#   bench/cache-spike.sh [WORKER_BINARY]        # ROUNDS=3 N=40 ITEMS=3400
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bin=${1:-target/release/lcm-worker}
rounds=${ROUNDS:-3}
n=${N:-40}
id="cachespike-$$"
bench_names "$id"
export LCM__HTTP__ADDR=127.0.0.1:0 RUST_LOG=warn
list=$(mktemp)
log=$(mktemp)

cleanup() {
  bench_stop "${worker:-}"
  bench_remove "$id" cache-spike.sh
  rm -f "$list" "$log"
}
trap cleanup EXIT

python3 bench/tools.py outcome-list "${ITEMS:-3400}" >"$list"
for c in $(seq 1 $((rounds * n))); do
  redis-cli -x set "$id:campaign:$c:outcomes" <"$list" >/dev/null
  redis-cli hset "$id:call:$c" campaign_id "$c" >/dev/null
done
echo "stored: $((rounds * n)) campaigns, $(stat -c %s "$list") bytes each"

RUST_LOG=info "$bin" 2>"$log" &
worker=$!
bench_wait_consuming "$worker" "$id.queue"
rss() { bench_rss "$worker"; }
echo "RSS idle: $(rss) kB"
for r in $(seq 1 "$rounds"); do
  # shellcheck disable=SC2046
  bench_burst "$worker" "$bin" $(seq $(((r - 1) * n + 1)) $((r * n)))
  echo "round $r: RSS peak $burst_peak kB, after $(rss) kB ($n requests, $burst_failed failed)"
done
sleep 1; echo "RSS 1 s after the last round: $(rss) kB"
sleep 4; echo "RSS 5 s after: $(rss) kB"
sleep 5; echo "RSS 10 s after: $(rss) kB"
