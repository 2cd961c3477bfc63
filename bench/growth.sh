#!/usr/bin/env bash
# How cost grows with the work: the worker's CPU per request and the
# bench's p99 against three sizes, each point a fresh worker and one
# `lcm-worker bench` run. Outside CI.
#
#   bench/growth.sh [SECONDS]     # per point; default 15
#   bench/growth.sh --plot JSON DIR   # only draw the PNGs of an earlier growth.json
#
#   sweeps (the others at their defaults: 8 entries, 50 campaigns, prefetch 128):
#   outcomes   8, 80, 800 entries per list        open loop, LCM_GROWTH_RATE/s
#   campaigns  10 ... 100,000 distinct campaigns  open loop, LCM_GROWTH_RATE/s
#   prefetch   16 ... 512                         closed loop, 512 in flight
#
#   LCM_GROWTH_WORKER=path/to/lcm-worker   use that binary, build nothing
#   LCM_GROWTH_COMMIT=name                 what the plots call the build
#                                          (default: git describe here)
#   LCM_GROWTH_RATE=1000                   the open loop's requests per second
#   LCM_GROWTH_SWEEPS="outcomes campaigns prefetch"   which sweeps to run
#   LCM_GROWTH_OUT=dir                     growth.json and the PNGs (default
#                                          target/growth; docs refreshes the
#                                          committed ones)
#   LCM_GROWTH_CALLGRIND=1                 run the worker under callgrind and
#                                          count instructions per request
#                                          instead of CPU time: a measure that
#                                          other load on the machine does not
#                                          move (rate 25/s by default; p99 is
#                                          then valgrind's, not drawn). An idle
#                                          run of the same length is subtracted.
#
# Writes growth.json (every point: CPU µs per request, throughput, latency
# percentiles, lost, wrong; the commit and machine) and one PNG per sweep
# drawn from it with gnuplot. Needs RabbitMQ and Redis as configured,
# `rabbitmqctl`, `redis-cli`, python3 and gnuplot (Debian: gnuplot-nox).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
seconds=${1:-15}
callgrind=${LCM_GROWTH_CALLGRIND:-}
rate=${LCM_GROWTH_RATE:-1000}
if [[ -n $callgrind ]]; then
  # Valgrind runs the worker tens of times slower: a lower rate, and a
  # deadline long enough that no request ends as `Cache unavailable`.
  rate=${LCM_GROWTH_RATE:-25}
  export LCM__LIMITS__REQUEST_DEADLINE_MS=120000
fi
sweeps=${LCM_GROWTH_SWEEPS:-outcomes campaigns prefetch}
final=${LCM_GROWTH_OUT:-target/growth}

# plot_sweeps JSON DIR: one PNG per sweep of a growth.json, into DIR: CPU per
# request (left axis) and p99 (right axis); or, when the worker ran under
# callgrind, instructions per request alone.
plot_sweeps() {
  local json=$1 dir=$2 sweep dat xlabel load plots ylabel commit rate callgrind
  commit=$(python3 bench/tools.py json-get "$json" commit)
  rate=$(python3 bench/tools.py json-get "$json" rate)
  callgrind=$(python3 bench/tools.py json-get "$json" worker_under_callgrind)
  [[ $callgrind == True ]] || callgrind=
  dat=$(mktemp)
  for sweep in $(python3 -c 'import json,sys; print(" ".join(s["name"] for s in json.load(open(sys.argv[1]))["sweeps"]))' "$json"); do
    python3 bench/tools.py growth-data "$json" "$sweep" >"$dat"
    case $sweep in
      outcomes) xlabel="entries in the outcome list"; load="open loop, $rate requests/s" ;;
      campaigns) xlabel="distinct campaigns requested"; load="open loop, $rate requests/s" ;;
      prefetch) xlabel="amqp.prefetch"; load="closed loop, 512 in flight" ;;
    esac
    if [[ -n $callgrind ]]; then
      plots="\"$dat\" using 1:5 with linespoints pt 7 title \"instructions per request (thousands)\""
      ylabel="thousands of instructions per request"
      load="$load, worker under callgrind"
    else
      plots="\"$dat\" using 1:2 with linespoints pt 7 title \"CPU per request\", \"$dat\" using 1:(\$3/1000) axes x1y2 with linespoints pt 5 dt 2 title \"p99 (right)\""
      ylabel="worker CPU per request (µs)"
    fi
    gnuplot <<GP
set terminal pngcairo size 800,480 font ",10"
set output "$dir/growth-$sweep.png"
set title "lcm-worker: cost against $xlabel ($load, $commit)"
set datafile missing "?"
set logscale x
set xlabel "$xlabel"
set ylabel "$ylabel"
set yrange [0:*]
set ytics nomirror
$([[ -n $callgrind ]] || printf 'set y2label "p99 latency (ms)"\nset y2range [0:*]\nset y2tics')
set grid
set key top left
plot $plots
GP
  done
  rm -f "$dat"
}

if [[ ${1:-} == --plot ]]; then # --plot JSON DIR: draw the PNGs of an earlier run again
  plot_sweeps "$2" "$3"
  exit 0
fi

bin=$(bench_binary "${LCM_GROWTH_WORKER:-}")
commit=${LCM_GROWTH_COMMIT:-$(git describe --always --dirty 2>/dev/null || echo unknown)}
run="growth-$$"
bench_names "$run"
export LCM__HTTP__ADDR=127.0.0.1:0 RUST_LOG=${RUST_LOG:-warn}
out=$(mktemp -d)
mkdir -p "$final"
worker_pid=
cleanup() {
  bench_stop "$worker_pid"
  bench_remove "$run" growth.sh
}
trap cleanup EXIT

start_worker() { # sweep x prefetch
  if [[ -n $callgrind ]]; then
    LCM__AMQP__PREFETCH=$3 valgrind --tool=callgrind --callgrind-out-file="$out/$1.$2.cg" \
      --log-file="$out/$1.$2.vg" "$bin" 2>>"$out/worker.log" &
  else
    LCM__AMQP__PREFETCH=$3 "$bin" 2>>"$out/worker.log" &
  fi
  worker_pid=$!
  bench_wait_consuming "$worker_pid" "$run.queue"
}

stop_worker() { # sweep x: under callgrind, its instruction count into ir.txt
  bench_stop "$worker_pid"
  worker_pid=
  if [[ -n $callgrind ]]; then
    echo "$1 $2 $(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/$1.$2.vg")" >>"$out/ir.txt"
  fi
}

point() { # sweep x prefetch bench-args...
  local sweep=$1 x=$2 prefetch=$3 before after
  shift 3
  start_worker "$sweep" "$x" "$prefetch"
  before=$(bench_cpu_ticks "$worker_pid")
  "$bin" bench "$@" --duration "${seconds}s" --json --no-progress >"$out/$sweep.$x.json" \
    2>>"$out/bench.log" || true
  after=$(bench_cpu_ticks "$worker_pid")
  stop_worker "$sweep" "$x"
  echo "$sweep $x $(( after - before ))" >>"$out/cpu.txt"
  echo "$sweep $x $*" >>"$out/loads.txt"
  echo "$sweep $x: $(tr -d '\n' <"$out/$sweep.$x.json" | cut -c1-140)" >&2
}

if [[ -n $callgrind ]]; then
  # What a worker spends without requests over a point's length: start-up,
  # timers, the pool's checks.
  start_worker idle 0 128
  sleep "$(( seconds + 5 ))"
  stop_worker idle 0
fi

for sweep in $sweeps; do
  case $sweep in
    outcomes)
      for n in 8 80 800; do
        point outcomes "$n" 128 --rate "$rate" --outcomes "$n" --campaigns 50 --calls 10000
      done ;;
    campaigns)
      for n in 10 100 1000 10000 100000; do
        point campaigns "$n" 128 --rate "$rate" --outcomes 8 --campaigns "$n" \
          --calls "$(( n > 10000 ? n : 10000 ))"
      done ;;
    prefetch)
      for n in 16 32 64 128 256 512; do
        point prefetch "$n" "$n" --concurrency 512 --outcomes 8 --campaigns 50 --calls 10000
      done ;;
    *) echo "unknown sweep $sweep" >&2; exit 2 ;;
  esac
done

python3 bench/tools.py growth-report "$out" "$(getconf CLK_TCK)" "$commit" "$seconds" "$rate" \
  >"$final/growth.json"

plot_sweeps "$final/growth.json" "$final"
echo "growth: $final/growth.json, $final/growth-*.png" >&2
