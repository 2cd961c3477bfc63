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
rate=${1:-auto}
duration=${2:-10m}
out=${LCM_SOAK_OUT:-target/soak}
port=${LCM_SOAK_HTTP_PORT:-18291}
interval=10

# plot CSV PNG TITLE: one PNG, a panel per series.
plot() {
  local csv=$1 png=$2 title=$3 dat
  dat=$(mktemp)
  python3 - "$csv" >"$dat" <<'PY'
import csv, sys
# gnuplot reads blanks as missing values when they are "?".
rows = list(csv.reader(open(sys.argv[1])))
for row in rows[1:]:
    print(" ".join(cell if cell != "" else "?" for cell in row))
PY
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

if [[ -n ${LCM_SOAK_WORKER:-} ]]; then
  bin=$LCM_SOAK_WORKER
else
  # Fat LTO makes this slow the first time; a no-op when up to date.
  nice -n 19 cargo build --release --quiet --bin lcm-worker
  bin=target/release/lcm-worker
fi
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
mkdir -p "$out"

run="soak-$$"
export LCM__AMQP__REQUEST_EXCHANGE="$run.requests" LCM__AMQP__REQUEST_QUEUE="$run.queue" \
  LCM__AMQP__REPLY_EXCHANGE="$run.replies" LCM__AMQP__DEAD_LETTER_EXCHANGE="$run.dead" \
  LCM__AMQP__DEAD_LETTER_QUEUE="$run.queue.dead" LCM__REDIS__KEY_PREFIX="$run" \
  LCM__HTTP__ADDR="127.0.0.1:$port" RUST_LOG=${RUST_LOG:-warn}

worker_pid= bench_pid=
cleanup() {
  if [[ -n $bench_pid ]] && kill "$bench_pid" 2>/dev/null; then
    wait "$bench_pid" 2>/dev/null || true
  fi
  if [[ -n $worker_pid ]] && kill -TERM "$worker_pid" 2>/dev/null; then
    wait "$worker_pid" 2>/dev/null || true
  fi
  for queue in "$run.queue" "$run.queue.dead"; do
    rabbitmqctl -q delete_queue "$queue" >/dev/null 2>&1 || true
  done
  # rabbitmqctl has no delete_exchange; this is the broker's own call
  # (RabbitMQ 3.x), best effort.
  for exchange in "$run.requests" "$run.replies" "$run.dead"; do
    rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$exchange\">>), false, <<\"soak.sh\">>)." \
      >/dev/null 2>&1 || true
  done
  # The bench removes its own keys; anything left under the prefix goes too.
  redis-cli --scan --pattern "$run:*" | xargs -r -n 500 redis-cli del >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" 2>"$out/worker.log" &
worker_pid=$!
for _ in $(seq 1 200); do
  kill -0 "$worker_pid" 2>/dev/null || { echo "soak.sh: the worker exited; see $out/worker.log" >&2; exit 1; }
  if rabbitmqctl -q list_consumers queue_name 2>/dev/null | grep -qx "$run.queue"; then break; fi
  sleep 0.1
done

if [[ $rate == auto ]]; then
  "$bin" bench --concurrency 64 --duration 10s --json --no-progress >"$out/capacity.json" 2>>"$out/bench.log" || {
    echo "soak.sh: the capacity run failed: $(cat "$out/capacity.json")" >&2
    exit 1
  }
  capacity=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["throughput_per_s"])' "$out/capacity.json")
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
python3 - "$worker_pid" "$bench_pid" "$port" "$interval" "$out" "$rate" "$commit" <<'PY'
import csv, os, re, subprocess, sys, time, urllib.request

worker, bench, port, interval, out, rate, commit = sys.argv[1:8]
worker, bench, interval = int(worker), int(bench), float(interval)
hz = os.sysconf("SC_CLK_TCK")

def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A child that has exited but not been waited for is a zombie.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"

def rss_kb():
    with open(f"/proc/{worker}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))

def cpu_ticks():
    with open(f"/proc/{worker}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])

def local_ports(remote_port):
    lines = subprocess.run(["ss", "-tnpH", "state", "established", f"( dport = :{remote_port} )"],
                           capture_output=True, text=True).stdout.splitlines()
    return {int(line.split()[2].rsplit(":", 1)[1]) for line in lines if f"pid={worker}," in line}

def amqp_channels():
    ports = local_ports(5672)
    listing = subprocess.run(["rabbitmqctl", "-q", "list_connections", "peer_port", "channels",
                              "--no-table-headers"], capture_output=True, text=True).stdout
    channels = 0
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and int(fields[0]) in ports:
            channels += int(fields[1])
    return len(ports), channels

def scrape():
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total, count, buckets = 0.0, 0.0, {}
    for line in text.splitlines():
        if not line.startswith("lcm_request_duration_seconds"):
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("lcm_request_duration_seconds_sum"):
            total += float(value)
        elif name.startswith("lcm_request_duration_seconds_count"):
            count += float(value)
        elif name.startswith("lcm_request_duration_seconds_bucket"):
            le = re.search(r'le="([^"]+)"', name).group(1)
            le = float("inf") if le == "+Inf" else float(le)
            buckets[le] = buckets.get(le, 0.0) + float(value)
    return total, count, buckets

def p99(buckets, before):
    """Upper bound of the bucket holding the 99th percentile of the interval."""
    deltas = sorted((le, n - before.get(le, 0.0)) for le, n in buckets.items())
    if not deltas or deltas[-1][1] <= 0:
        return None
    want = 0.99 * deltas[-1][1]
    return next(le for le, n in deltas if n >= want)

columns = ["t_s", "rss_kb", "fds", "amqp_connections", "amqp_channels", "redis_connections",
           "requests_per_s", "latency_mean_ms", "latency_p99_ms", "cpu_percent"]
rows = []
start = time.monotonic()
previous = None
with open(os.path.join(out, "soak.csv"), "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(columns)
    tick = 0
    while alive(bench) and alive(worker):
        now = time.monotonic()
        fds = len(os.listdir(f"/proc/{worker}/fd"))  # before the scrape opens a socket
        rss = rss_kb()
        ticks = cpu_ticks()
        connections, channels = amqp_channels()
        redis = len(local_ports(6379))
        total, count, buckets = scrape()
        row = {"t_s": round(now - start), "rss_kb": rss, "fds": fds,
               "amqp_connections": connections, "amqp_channels": channels,
               "redis_connections": redis}
        if previous is not None:
            p_now, p_total, p_count, p_buckets, p_ticks = previous
            dt = now - p_now
            served = count - p_count
            row["requests_per_s"] = round(served / dt, 1)
            row["cpu_percent"] = round(100.0 * (ticks - p_ticks) / hz / dt, 1)
            if served > 0:
                row["latency_mean_ms"] = round(1000.0 * (total - p_total) / served, 3)
                bound = p99(buckets, p_buckets)
                row["latency_p99_ms"] = "" if bound is None else round(1000.0 * bound, 3)
        previous = (now, total, count, buckets, ticks)
        writer.writerow([row.get(c, "") for c in columns])
        f.flush()
        rows.append(row)
        tick += 1
        time.sleep(max(0.0, start + tick * interval - time.monotonic()))

worker_alive = alive(worker)
# Wait for the bench's report.
while alive(bench):
    time.sleep(0.2)

import json
try:
    report = json.load(open(os.path.join(out, "bench.json")))
except (OSError, ValueError):
    report = None

failures = []
def check(ok, text):
    print(("PASS " if ok else "FAIL ") + text)
    if not ok:
        failures.append(text)

print(f"\nsoak: commit {commit}, {rate} requests/s, {len(rows)} samples every {interval:.0f} s")
if not rows:
    print("FAIL no sample taken")
    sys.exit(1)
end = rows[-1]["t_s"]
window = [r for r in rows if r["t_s"] >= end - 300]
growth = window[-1]["rss_kb"] - window[0]["rss_kb"]
print(f"RSS: start {rows[0]['rss_kb'] / 1024:.1f} MB, end {rows[-1]['rss_kb'] / 1024:.1f} MB, "
      f"max {max(r['rss_kb'] for r in rows) / 1024:.1f} MB")
if end < 300:
    check(False, f"RSS growth over the last 5 minutes: the run sampled only {end} s")
else:
    check(growth < 1024, f"RSS growth over the last 5 minutes (t={window[0]['t_s']}..{end} s): "
          f"{growth} kB (< 1024 kB)")
fds = [r["fds"] for r in rows]
check(fds[-1] == fds[0] and max(fds) - min(fds) <= 2,
      f"file descriptors: first {fds[0]}, last {fds[-1]}, min {min(fds)}, max {max(fds)}")
for key, label in (("amqp_channels", "AMQP channels"), ("amqp_connections", "AMQP connections"),
                   ("redis_connections", "Redis connections")):
    series = [r[key] for r in rows]
    check(series[-1] <= series[0] and series[-1] > 0,
          f"{label}: first {series[0]}, last {series[-1]}, min {min(series)}, max {max(series)}")
means = [r["latency_mean_ms"] for r in rows if r.get("latency_mean_ms") not in (None, "")]
p99s = [r["latency_p99_ms"] for r in rows if r.get("latency_p99_ms") not in (None, "")]
served = [r["requests_per_s"] for r in rows if r.get("requests_per_s") not in (None, "")]
cpu = [r["cpu_percent"] for r in rows if r.get("cpu_percent") not in (None, "")]
if means:
    print(f"latency (worker, receipt to settlement), per 10 s interval: mean "
          f"{min(means):.3f}..{max(means):.3f} ms (median {sorted(means)[len(means) // 2]:.3f}), "
          f"p99 bucket bound {min(p99s):g}..{max(p99s):g} ms")
if served:
    print(f"served: {sorted(served)[len(served) // 2]:.0f} requests/s (median of intervals); "
          f"worker CPU {sorted(cpu)[len(cpu) // 2]:.0f}% of one core (median)")
if report is None:
    check(False, "the bench printed no report (see bench.log)")
else:
    lat = report["latency_us"]
    print(f"bench: sent {report['sent']}, answered {report['answered']}, "
          f"{report['throughput_per_s']:.0f}/s, latency p50 {lat['p50']} µs, p99 {lat['p99']} µs, "
          f"p99.9 {lat['p999']} µs, max {lat['max']} µs")
    check(report["lost"] == 0 and report["wrong"] == 0,
          f"bench: lost {report['lost']}, wrong {report['wrong']}, duplicates {report['duplicates']}")
check(worker_alive, "the worker ran to the end")
sys.exit(1 if failures else 0)
PY
status=$?
set -e
bench_pid=

plot "$out/soak.csv" "$out/soak.png" "lcm-worker soak: $rate requests/s, commit $commit"
echo "soak: $out/soak.csv, $out/soak.png" >&2
exit "$status"
