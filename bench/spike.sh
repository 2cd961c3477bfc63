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
bin=${1:-target/release/lcm-worker}
n=${2:-30}
id="spike-$$"
export LCM__AMQP__REQUEST_EXCHANGE="$id.requests" LCM__AMQP__REQUEST_QUEUE="$id.queue" \
  LCM__AMQP__REPLY_EXCHANGE="$id.replies" LCM__AMQP__DEAD_LETTER_EXCHANGE="$id.dead" \
  LCM__AMQP__DEAD_LETTER_QUEUE="$id.dead.queue" LCM__REDIS__KEY_PREFIX="$id" \
  LCM__HTTP__ADDR=127.0.0.1:0 RUST_LOG=warn

cleanup() {
  [[ -n ${worker:-} ]] && kill "$worker" 2>/dev/null && wait "$worker" 2>/dev/null
  redis-cli del "$id:call:big" "$id:campaign:big:outcomes" >/dev/null
  for queue in "$id.queue" "$id.dead.queue"; do
    rabbitmqctl -q delete_queue "$queue" >/dev/null 2>&1 || true
  done
  # rabbitmqctl has no delete_exchange; the broker's own call, as compare.sh does.
  for exchange in "$id.requests" "$id.replies" "$id.dead"; do
    rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$exchange\">>), false, <<\"spike.sh\">>)." \
      >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

python3 - <<'PY' | redis-cli -x set "$id:campaign:big:outcomes" >/dev/null
import json, os, sys
print(json.dumps([{"OutComeID": str(i), "Description": "outcome %d %s" % (i, "x" * 180)}
                  for i in range(int(os.environ.get("SPIKE_ITEMS", "50000")))]), end="")
PY
redis-cli hset "$id:call:big" campaign_id big >/dev/null
echo "stored list: $(redis-cli strlen "$id:campaign:big:outcomes") bytes"

RUST_LOG=info "$bin" 2>/tmp/spike-worker.log &
worker=$!
for _ in $(seq 1 100); do grep -q consuming /tmp/spike-worker.log 2>/dev/null && break; sleep 0.1; done
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
