#!/usr/bin/env bash
# Where the machine's CPU goes per request (docs/performance.md, "What
# bounds throughput here"): echo and lcm-worker alternate under one closed
# loop at 64 in flight, and each run records the CPU time of the broker,
# Redis, the load generator and the process under test, and the whole
# machine's busy and idle time, per request answered.
#
#   bench/machine-cpu.sh [ROUNDS] [SECONDS]   # defaults: 3 rounds of 10 s
#   LCM_COMPARE_WORKER=path/to/lcm-worker bench/machine-cpu.sh   # another build
#
# The broker and Redis are the ones the worker is configured for, found
# by asking them their process ids, so they must run on this machine.
# Needs what compare.sh needs, and /usr/bin/time. Quiet machine only.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-3}
seconds=${2:-10}

bench_build echo
bin=target/release/lcm-worker
worker_bin=${LCM_COMPARE_WORKER:-$bin}
echo_bin=target/release/examples/echo
run="machine-$$"
bench_names "$run"
export LCM__HTTP__ADDR=127.0.0.1:18282 RUST_LOG=warn
out=$(mktemp -d)

cleanup() {
  [[ -n "${target_pid:-}" ]] && kill "$target_pid" 2>/dev/null || true
  bench_remove "$run" machine-cpu.sh
}
trap cleanup EXIT

broker_pid=$(rabbitmqctl -q eval 'os:getpid().' | tr -dc '0-9')
redis_pid=$(redis-cli info server | awk -F: '/^process_id:/ {print $2}' | tr -dc '0-9')
[[ -n $broker_pid && -n $redis_pid ]] || { echo "broker or Redis process not found" >&2; exit 1; }

# Busy (user, nice, system, irq, softirq, steal) and idle (idle, iowait) ticks.
machine() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; }

measure() { # round target
  local round=$1 target=$2 flags=()
  case $target in
    echo) LCM__AMQP__PREFETCH=64 "$echo_bin" 2>>"$out/echo.log" & flags=(--no-check) ;;
    worker) "$worker_bin" 2>>"$out/worker.log" & ;;
  esac
  target_pid=$!
  bench_wait_consuming "$target_pid" "$run.queue"
  local before after
  before="$(bench_cpu_ticks "$broker_pid") $(bench_cpu_ticks "$redis_pid") $(bench_cpu_ticks "$target_pid") $(machine)"
  /usr/bin/time -f "%U %S" -o "$out/$round.$target.time" \
    "$bin" bench --concurrency 64 --duration "${seconds}s" --calls 10000 --campaigns 50 \
    --outcomes 8 --json --no-progress "${flags[@]}" >"$out/$round.$target.json" || true
  after="$(bench_cpu_ticks "$broker_pid") $(bench_cpu_ticks "$redis_pid") $(bench_cpu_ticks "$target_pid") $(machine)"
  echo "$round $target $before $after" >>"$out/ticks.txt"
  echo "round $round $target: $(tr -d '\n' <"$out/$round.$target.json" | cut -c1-120)" >&2
  kill -TERM "$target_pid"
  wait "$target_pid" || true
  target_pid=
}

for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then order=(echo worker); else order=(worker echo); fi
  for target in "${order[@]}"; do measure "$round" "$target"; done
done

python3 bench/tools.py machine-table "$out" "$(getconf CLK_TCK)"
