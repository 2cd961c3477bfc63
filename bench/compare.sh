#!/usr/bin/env bash
# Compares lcm-worker with the echo yardstick (examples/echo.rs) under the
# same `lcm-worker bench` loads, alternating the two at every load of every
# round (a process of each per load), and
# prints one table of medians with lcm-worker's ratio to echo.
#
#   bench/compare.sh [ROUNDS] [SECONDS]      # defaults: 3 rounds of 10 s per load
#   LCM_COMPARE_WORKER=path/to/lcm-worker bench/compare.sh   # measure another build
#   LCM_COMPARE_BASELINE=path/to/old/lcm-worker bench/compare.sh
#       # also measures an older build in the same rounds: before/after in one run
#   LCM_COMPARE_BASELINE_DIR=path/to/old/checkout   # where the older build runs,
#       # so that it reads its own config/default.toml (default: here)
#   LCM_COMPARE_WORKER_ENV="LCM__AMQP__PREFETCH=128"  # settings for the worker only
#   LCM_COMPARE_BASELINE_ENV="LCM__AMQP__PREFETCH=64" # settings for the baseline only
#       # (space-separated NAME=value): one build against itself, one setting apart
#   LCM_COMPARE_ECHO_ENV="LCM_ECHO_LOOKUP=10000"     # settings for echo only: this one
#       # makes echo read each request's call record first, as the worker does
#
# echo's prefetch is held at 64 whatever config/default.toml says, so that
# the yardstick stays the one issue 14 measured.
#
# Needs RabbitMQ and Redis as configured (defaults: 127.0.0.1), `rabbitmqctl`,
# `redis-cli` and python3. Uses its own queue, exchange and key names,
# removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-3}
seconds=${2:-10}

bench_build echo
bin=target/release/lcm-worker
worker_bin=${LCM_COMPARE_WORKER:-$bin}
echo_bin=target/release/examples/echo
baseline_bin=${LCM_COMPARE_BASELINE:+$(realpath "$LCM_COMPARE_BASELINE")}
baseline_dir=${LCM_COMPARE_BASELINE_DIR:-.}
targets=(echo worker)
[[ -n $baseline_bin ]] && targets+=(baseline)
run="compare-$$"
bench_names "$run"
export LCM__HTTP__ADDR=127.0.0.1:18281 RUST_LOG=warn
out=$(mktemp -d)
ticks_per_second=$(getconf CLK_TCK)
loads=("closed64:--concurrency 64" "closed1:--concurrency 1" "open2000:--rate 2000")

cleanup() {
  [[ -n "${target_pid:-}" ]] && kill "$target_pid" 2>/dev/null || true
  bench_remove "$run" compare.sh
}
trap cleanup EXIT

# One process per target and load, so that the targets take a load one
# right after the other: this machine's speed drifts by a tenth and more
# within minutes (the load generator's own CPU per request moves with it),
# and a round that ran each target through all three loads put a minute
# between echo's and the worker's turn at the same load.
measure() { # round target load
  local round=$1 target=$2 load=$3 flags=()
  case $target in
    # shellcheck disable=SC2086
    echo) env LCM__AMQP__PREFETCH=64 ${LCM_COMPARE_ECHO_ENV:-} "$echo_bin" 2>>"$out/echo.log" & ;;
    # shellcheck disable=SC2086
    worker) env ${LCM_COMPARE_WORKER_ENV:-} "$worker_bin" 2>>"$out/worker.log" & ;;
    # shellcheck disable=SC2086
    baseline) (cd "$baseline_dir" && exec env ${LCM_COMPARE_BASELINE_ENV:-} "$baseline_bin") \
      2>>"$out/baseline.log" & ;;
  esac
  target_pid=$!
  [[ $target == echo ]] && flags=(--no-check)
  bench_wait_consuming "$target_pid" "$run.queue"
  local name=${load%%:*} args=${load#*:}
  local before after
  before=$(bench_cpu_ticks "$target_pid")
  # shellcheck disable=SC2086
  "$bin" bench $args --duration "${seconds}s" --calls 10000 --campaigns 50 --outcomes 8 \
    --json --no-progress "${flags[@]}" >"$out/$round.$target.$name.json" || true
  after=$(bench_cpu_ticks "$target_pid")
  echo "$round $target $name $(( after - before ))" >>"$out/cpu.txt"
  echo "round $round $target $name: $(tr -d '\n' <"$out/$round.$target.$name.json" | cut -c1-160)" >&2
  echo "$round $target $(awk '/VmHWM/ {print $2}' "/proc/$target_pid/status")" >>"$out/rss.txt"
  kill -TERM "$target_pid"
  wait "$target_pid" || true
  target_pid=
}

for round in $(seq 1 "$rounds"); do
  # Rotate which goes first, so that none always meets a warmer broker.
  shift_by=$(( (round - 1) % ${#targets[@]} ))
  order=("${targets[@]:shift_by}" "${targets[@]:0:shift_by}")
  for load in "${loads[@]}"; do
    for target in "${order[@]}"; do measure "$round" "$target" "$load"; done
  done
done

python3 bench/tools.py compare-table "$out" "$ticks_per_second" "$rounds" "$seconds"
