#!/usr/bin/env bash
# One stalled delivery (issue 20, item 11): throughput and worker CPU per
# request of a closed-loop load while one delivery is held unsettled,
# against the same load with none held. Outside CI.
#
#   bench/stall.sh [SECONDS] [ROUNDS]     # defaults: 20 s per phase, 3 rounds
#
#   LCM_STALL_WORKER=path/to/lcm-worker   use that binary, build nothing
#   LCM_STALL_HOLD_MS=65000               limits.request_deadline_ms of the
#                                         worker: how long the refused reply
#                                         is republished, so the delivery held
#   LCM_STALL_CONCURRENCY=64              requests in flight
#
# Each round: bench/stall.py publishes one request whose reply_to is a
# queue that refuses every message (x-max-length 0, reject-publish); the
# worker republishes the refused reply until the deadline. `bench` runs
# for SECONDS meanwhile ("held"); the script checks that the delivery was
# still unacknowledged at the end, waits for it to settle, then runs
# `bench` again with nothing held ("free"). The summary gives medians and
# held / free.
#
# Needs RabbitMQ and Redis as configured (defaults: 127.0.0.1), `rabbitmqctl`,
# `redis-cli` and python3 with venv (pika is installed into target/bench-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
seconds=${1:-20}
rounds=${2:-3}
hold_ms=${LCM_STALL_HOLD_MS:-65000}
concurrency=${LCM_STALL_CONCURRENCY:-64}

bin=$(bench_binary "${LCM_STALL_WORKER:-}")
venv=target/bench-venv
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import pika' 2>/dev/null \
  || "$venv/bin/pip" install --quiet --disable-pip-version-check -r examples/requesters/python/requirements.txt

run="stall-$$"
bench_names "$run"
export LCM__HTTP__ADDR=127.0.0.1:0 RUST_LOG=${RUST_LOG:-warn} LCM__LIMITS__REQUEST_DEADLINE_MS=$hold_ms
out=$(mktemp -d)
refusing="$run.refusing"
worker_pid=
cleanup() {
  bench_stop "$worker_pid"
  rabbitmqctl -q delete_queue "$refusing" >/dev/null 2>&1 || true
  bench_remove "$run" stall.sh
}
trap cleanup EXIT

"$bin" 2>"$out/worker.log" &
worker_pid=$!
bench_wait_consuming "$worker_pid" "$run.queue"

unacked() { # messages of the request queue delivered and not yet settled
  rabbitmqctl -q list_queues name messages_unacknowledged --no-table-headers 2>/dev/null \
    | awk -v q="$run.queue" '$1 == q {print $2}'
}

phase() { # round name
  local before after
  before=$(bench_cpu_ticks "$worker_pid")
  "$bin" bench --concurrency "$concurrency" --duration "${seconds}s" --calls 10000 --campaigns 50 \
    --outcomes 8 --json --no-progress >"$out/$1.$2.json" || true
  after=$(bench_cpu_ticks "$worker_pid")
  echo "$1 $2 $(( after - before ))" >>"$out/cpu.txt"
  echo "round $1 $2: $(tr -d '\n' <"$out/$1.$2.json" | cut -c1-120)" >&2
}

for round in $(seq 1 "$rounds"); do
  "$venv/bin/python" bench/stall.py "$refusing" "$run.requests" lcm-stall
  sleep 1 # received and its reply refused at least once
  phase "$round" held
  held=$(unacked)
  if [[ ${held:-0} -lt 1 ]]; then
    echo "round $round: the stalled delivery was settled before the phase ended; raise LCM_STALL_HOLD_MS" >&2
    echo "$round" >>"$out/invalid.txt"
  fi
  for _ in $(seq 1 $(( hold_ms / 1000 + 30 ))); do
    [[ $(unacked) == 0 ]] && break
    sleep 1
  done
  phase "$round" free
done

python3 bench/tools.py stall-table "$out" "$(getconf CLK_TCK)" "$seconds" "$hold_ms"
