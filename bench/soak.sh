#!/usr/bin/env bash
# Soak test (outside CI): one worker under a steady open-loop load for a long
# time, watched every 10 s for what would give a slow leak away: resident
# memory, file descriptors, AMQP channels, Redis connections, and latency.
#
#   bench/soak.sh [RATE|auto] [DURATION]     # defaults: auto, 10m
#     RATE      requests per second offered by `lcm-worker bench --rate`;
#               `auto` measures the capacity first (closed loop, 64 in
#               flight, 10 s) and offers half of it
#     DURATION  of the open-loop load, as `bench --duration` takes it (10m, 30m, 1h)
#
#   bench/soak.sh --plot CSV PNG [TITLE]     # only draw the PNG of an earlier CSV
#
#   LCM_SOAK_WORKER=path/to/lcm-worker   use that binary, build nothing
#                                         (default: cargo build --release, niced)
#   LCM_SOAK_OUT=dir                     where soak.csv, soak.png and the logs go
#                                         (default target/soak; LCM_SOAK_OUT=docs
#                                         refreshes the committed plot)
#   LCM_SOAK_HTTP_PORT=port              the worker's /metrics port (default 18291)
#
# Pass criteria (exit 1 if one fails): RSS grows less than 1 MB over the
# last 5 minutes; open file descriptors stay flat (last sample = first, and
# at most 2 apart in between: a /metrics scrape's socket); AMQP channels and
# Redis connections do not grow; the bench's `lost` and `wrong` are 0; the
# worker is still running at the end.
#
# Needs RabbitMQ and Redis as configured (defaults: 127.0.0.1), `rabbitmqctl`,
# `redis-cli`, `ss`, `curl`, python3 and gnuplot (Debian: gnuplot-nox). Uses
# its own queue, exchange and key names, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rate=${1:-auto}
duration=${2:-10m}
out=${LCM_SOAK_OUT:-target/soak}
port=${LCM_SOAK_HTTP_PORT:-18291}
interval=10

# plot CSV PNG TITLE: one PNG, a panel per series.
plot() {
  local csv=$1 png=$2 title=$3 dat
  dat=$(mktemp)
  python3 bench/tools.py gnuplot-data "$csv" >"$dat"
  gnuplot <<GP
set terminal pngcairo size 900,1000 font ",10"
set output "$png"
set datafile missing "?"
set multiplot layout 4,1 title "$title"
set xlabel "time (s)"
set grid
set key outside top center horizontal
set xrange [0:*]
set offsets 0, 0, graph 0.2, 0
set ylabel "RSS (MB)"
plot "$dat" using 1:(\$2/1024) with linespoints pt 7 ps 0.4 title "VmRSS"
set ylabel "open fds"
set yrange [0:*]
plot "$dat" using 1:3 with linespoints pt 7 ps 0.4 title "file descriptors"
set ylabel "count"
set yrange [0:*]
plot "$dat" using 1:5 with linespoints pt 7 ps 0.4 title "AMQP channels", \
     "$dat" using 1:6 with linespoints pt 5 ps 0.4 title "Redis connections", \
     "$dat" using 1:4 with lines dt 2 title "AMQP connections"
set ylabel "latency (ms)"
set yrange [0:*]
set y2label "requests/s"
set y2range [0:*]
set y2tics
plot "$dat" using 1:8 with linespoints pt 7 ps 0.4 title "mean", \
     "$dat" using 1:9 with steps title "p99 (bucket bound)", \
     "$dat" using 1:7 axes x1y2 with lines lc rgb "gray" title "served/s (right)"
unset multiplot
GP
  rm -f "$dat"
}

if [[ ${1:-} == --plot ]]; then # --plot CSV PNG [TITLE]: draw a CSV of an earlier run again
  plot "$2" "$3" "${4:-lcm-worker soak}"
  exit 0
fi

for tool in rabbitmqctl redis-cli ss curl python3 gnuplot; do
  command -v "$tool" >/dev/null || { echo "soak.sh: $tool is missing" >&2; exit 2; }
done
if ss -tlnH "( sport = :$port )" | grep -q .; then
  echo "soak.sh: port $port is taken; set LCM_SOAK_HTTP_PORT" >&2
  exit 2
fi

bin=$(bench_binary "${LCM_SOAK_WORKER:-}")
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
mkdir -p "$out"

run="soak-$$"
bench_names "$run"
export LCM__HTTP__ADDR="127.0.0.1:$port" RUST_LOG=${RUST_LOG:-warn}

worker_pid= bench_pid=
cleanup() {
  bench_stop "$bench_pid"
  bench_stop "$worker_pid"
  # The bench removes its own keys; bench_remove takes anything left too.
  bench_remove "$run" soak.sh
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" 2>"$out/worker.log" &
worker_pid=$!
bench_wait_consuming "$worker_pid" "$run.queue" # the worker's log: $out/worker.log

if [[ $rate == auto ]]; then
  "$bin" bench --concurrency 64 --duration 10s --json --no-progress >"$out/capacity.json" 2>>"$out/bench.log" || {
    echo "soak.sh: the capacity run failed: $(cat "$out/capacity.json")" >&2
    exit 1
  }
  capacity=$(python3 bench/tools.py json-get "$out/capacity.json" throughput_per_s)
  rate=$(python3 -c 'import sys; print(max(1, int(float(sys.argv[1]) / 2)))' "$capacity")
  echo "capacity (closed loop, 64 in flight, 10 s): $capacity requests/s; soak rate: $rate/s" >&2
fi

echo "soak: worker pid $worker_pid ($bin, commit $commit), $rate requests/s for $duration," \
  "sampled every $interval s into $out/soak.csv" >&2
"$bin" bench --rate "$rate" --duration "$duration" --json --no-progress \
  >"$out/bench.json" 2>>"$out/bench.log" &
bench_pid=$!

# Samples until the bench exits, then judges the series. Exit status 1 = a
# criterion failed.
set +e
python3 bench/tools.py soak-watch "$worker_pid" "$bench_pid" "$port" "$interval" "$out" "$rate" "$commit"
status=$?
set -e
bench_pid=

plot "$out/soak.csv" "$out/soak.png" "lcm-worker soak: $rate requests/s, commit $commit"
echo "soak: $out/soak.csv, $out/soak.png" >&2
exit "$status"
