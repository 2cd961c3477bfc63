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
bin=${1:-target/release/lcm-worker}
rounds=${ROUNDS:-3}
n=${N:-40}
id="cachespike-$$"
export LCM__AMQP__REQUEST_EXCHANGE="$id.requests" LCM__AMQP__REQUEST_QUEUE="$id.queue" \
  LCM__AMQP__REPLY_EXCHANGE="$id.replies" LCM__AMQP__DEAD_LETTER_EXCHANGE="$id.dead" \
  LCM__AMQP__DEAD_LETTER_QUEUE="$id.dead.queue" LCM__REDIS__KEY_PREFIX="$id" \
  LCM__HTTP__ADDR=127.0.0.1:0 RUST_LOG=warn
list=$(mktemp)
log=$(mktemp)

cleanup() {
  [[ -n ${worker:-} ]] && kill "$worker" 2>/dev/null && wait "$worker" 2>/dev/null
  redis-cli --scan --pattern "$id:*" | xargs -r redis-cli del >/dev/null
  for queue in "$id.queue" "$id.dead.queue"; do
    rabbitmqctl -q delete_queue "$queue" >/dev/null 2>&1 || true
  done
  for exchange in "$id.requests" "$id.replies" "$id.dead"; do
    rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$exchange\">>), false, <<\"cache-spike\">>)." \
      >/dev/null 2>&1 || true
  done
  rm -f "$list" "$log"
}
trap cleanup EXIT

ITEMS=${ITEMS:-3400} python3 - >"$list" <<'PY'
import json, os
print(json.dumps([{"OutComeID": str(i), "Description": "outcome %d %s" % (i, "x" * 180)}
                  for i in range(int(os.environ["ITEMS"]))]), end="")
PY
for c in $(seq 1 $((rounds * n))); do
  redis-cli -x set "$id:campaign:$c:outcomes" <"$list" >/dev/null
  redis-cli hset "$id:call:$c" campaign_id "$c" >/dev/null
done
echo "stored: $((rounds * n)) campaigns, $(stat -c %s "$list") bytes each"

RUST_LOG=info "$bin" 2>"$log" &
worker=$!
for _ in $(seq 1 100); do grep -q consuming "$log" 2>/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$worker/status"; }
echo "RSS idle: $(rss) kB"
for r in $(seq 1 "$rounds"); do
  pids=()
  for i in $(seq 1 "$n"); do
    "$bin" request --callid $(((r - 1) * n + i)) --account 1 --timeout 60s >/dev/null 2>&1 & pids+=($!)
  done
  peak=0
  while kill -0 "${pids[@]}" 2>/dev/null; do
    x=$(rss); (( x > peak )) && peak=$x
    sleep 0.05
  done
  failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
  echo "round $r: RSS peak $peak kB, after $(rss) kB ($n requests, $failed failed)"
done
sleep 1; echo "RSS 1 s after the last round: $(rss) kB"
sleep 4; echo "RSS 5 s after: $(rss) kB"
sleep 5; echo "RSS 10 s after: $(rss) kB"
