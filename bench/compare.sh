#!/usr/bin/env bash
# Compares lcm-worker with the echo yardstick (examples/echo.rs) under the
# same `lcm-worker bench` loads, alternating the two in every round, and
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
#
# echo's prefetch is held at 64 whatever config/default.toml says, so that
# the yardstick stays the one issue 14 measured.
#
# Needs RabbitMQ and Redis as configured (defaults: 127.0.0.1), `rabbitmqctl`
# and python3. Uses its own queue, exchange and key names, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-10}

cargo build --release --quiet --bin lcm-worker --example echo
bin=target/release/lcm-worker
worker_bin=${LCM_COMPARE_WORKER:-$bin}
echo_bin=target/release/examples/echo
baseline_bin=${LCM_COMPARE_BASELINE:+$(realpath "$LCM_COMPARE_BASELINE")}
baseline_dir=${LCM_COMPARE_BASELINE_DIR:-.}
targets=(echo worker)
[[ -n $baseline_bin ]] && targets+=(baseline)
run="compare-$$"
export LCM__AMQP__REQUEST_EXCHANGE="$run.requests" LCM__AMQP__REQUEST_QUEUE="$run.queue" \
  LCM__AMQP__REPLY_EXCHANGE="$run.replies" LCM__AMQP__DEAD_LETTER_EXCHANGE="$run.dead" \
  LCM__AMQP__DEAD_LETTER_QUEUE="$run.queue.dead" LCM__REDIS__KEY_PREFIX="$run" \
  LCM__HTTP__ADDR=127.0.0.1:18281 RUST_LOG=warn
out=$(mktemp -d)
ticks_per_second=$(getconf CLK_TCK)
loads=("closed64:--concurrency 64" "closed1:--concurrency 1" "open2000:--rate 2000")

cleanup() {
  [[ -n "${target_pid:-}" ]] && kill "$target_pid" 2>/dev/null || true
  for queue in "$run.queue" "$run.queue.dead"; do
    rabbitmqctl -q delete_queue "$queue" >/dev/null 2>&1 || true
  done
  # rabbitmqctl has no delete_exchange; this is the broker's own call
  # (RabbitMQ 3.x), best effort.
  for exchange in "$run.requests" "$run.replies" "$run.dead"; do
    rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$exchange\">>), false, <<\"compare.sh\">>)." \
      >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

wait_consuming() { # pid
  for _ in $(seq 1 200); do
    kill -0 "$1" 2>/dev/null || { echo "the process under test exited" >&2; exit 1; }
    if rabbitmqctl -q list_consumers queue_name 2>/dev/null | grep -qx "$run.queue"; then return; fi
    sleep 0.1
  done
  echo "no consumer on $run.queue after 20 s" >&2
  exit 1
}

measure() { # round target
  local round=$1 target=$2 flags=()
  case $target in
    echo) LCM__AMQP__PREFETCH=64 "$echo_bin" 2>>"$out/echo.log" & ;;
    # shellcheck disable=SC2086
    worker) env ${LCM_COMPARE_WORKER_ENV:-} "$worker_bin" 2>>"$out/worker.log" & ;;
    # shellcheck disable=SC2086
    baseline) (cd "$baseline_dir" && exec env ${LCM_COMPARE_BASELINE_ENV:-} "$baseline_bin") \
      2>>"$out/baseline.log" & ;;
  esac
  target_pid=$!
  [[ $target == echo ]] && flags=(--no-check)
  wait_consuming "$target_pid"
  for load in "${loads[@]}"; do
    local name=${load%%:*} args=${load#*:}
    local before after
    before=$(cpu_ticks "$target_pid")
    # shellcheck disable=SC2086
    "$bin" bench $args --duration "${seconds}s" --calls 10000 --campaigns 50 --outcomes 8 \
      --json --no-progress "${flags[@]}" >"$out/$round.$target.$name.json" || true
    after=$(cpu_ticks "$target_pid")
    echo "$round $target $name $(( after - before ))" >>"$out/cpu.txt"
    echo "round $round $target $name: $(tr -d '\n' <"$out/$round.$target.$name.json" | cut -c1-160)" >&2
  done
  echo "$round $target $(awk '/VmHWM/ {print $2}' "/proc/$target_pid/status")" >>"$out/rss.txt"
  kill -TERM "$target_pid"
  wait "$target_pid" || true
  target_pid=
}

for round in $(seq 1 "$rounds"); do
  # Rotate which goes first, so that none always meets a warmer broker.
  shift_by=$(( (round - 1) % ${#targets[@]} ))
  order=("${targets[@]:shift_by}" "${targets[@]:0:shift_by}")
  for target in "${order[@]}"; do measure "$round" "$target"; done
done

python3 - "$out" "$ticks_per_second" "$rounds" "$seconds" <<'PY'
import json, statistics, sys, pathlib
out, hz, rounds, seconds = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
cpu = {}
for line in (out / "cpu.txt").read_text().split("\n"):
    if line:
        r, t, n, ticks = line.split()
        cpu[(r, t, n)] = int(ticks)
rss = {}
for line in (out / "rss.txt").read_text().split("\n"):
    if line:
        r, t, kb = line.split()
        rss.setdefault(t, []).append(int(kb))
def median(values):
    return statistics.median(values) if values else float("nan")
rows = {}
for f in sorted(out.glob("*.json")):
    r, t, n = f.stem.split(".")
    try:
        report = json.loads(f.read_text())
    except ValueError:
        continue
    row = rows.setdefault((n, t), {"thr": [], "p50": [], "p99": [], "cpu": [], "lost": 0, "wrong": 0})
    row["thr"].append(report["throughput_per_s"])
    row["p50"].append(report["latency_us"]["p50"])
    row["p99"].append(report["latency_us"]["p99"])
    row["lost"] += report["lost"]
    row["wrong"] += report["wrong"]
    if report["answered"]:
        row["cpu"].append(cpu[(r, t, n)] / hz / report["answered"] * 1e6)
print(f"\nMedians over {rounds} alternating rounds of {seconds} s per load "
      "(worker = lcm-worker, echo = examples/echo, baseline = LCM_COMPARE_BASELINE; "
      "ratio = worker / echo)\n")
print("| load | target | throughput /s | p50 µs | p99 µs | CPU µs/request | lost | wrong |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for name in ["closed64", "closed1", "open2000"]:
    cells = {}
    for target in ["echo", "worker", "baseline"]:
        row = rows.get((name, target))
        if not row:
            continue
        cells[target] = [median(row[k]) for k in ("thr", "p50", "p99", "cpu")]
        thr, p50, p99, c = cells[target]
        print(f"| {name} | {target} | {thr:.0f} | {p50:.0f} | {p99:.0f} | {c:.1f} | {row['lost']} | {row['wrong']} |")
    for target, label in (("worker", "ratio"), ("baseline", "baseline ratio")):
        if "echo" not in cells or target not in cells:
            continue
        e, w = cells["echo"], cells[target]
        ratio = [w[i] / e[i] if e[i] else float("nan") for i in range(4)]
        print(f"| {name} | {label} | {ratio[0]:.2f}x | {ratio[1]:.2f}x (+{w[1]-e[1]:.0f} µs) | {ratio[2]:.2f}x | {ratio[3]:.2f}x | | |")
print()
for target in ["echo", "worker", "baseline"]:
    if target not in rss:
        continue
    print(f"peak RSS {target}: {max(rss.get(target, [0])) / 1024:.1f} MB (largest VmHWM over the rounds)")
PY
