#!/usr/bin/env python3
"""The Python half of the bench scripts (bench/*.sh), one subcommand each.

    tools.py compare-table OUT HZ ROUNDS SECONDS   compare.sh's table of medians
    tools.py soak-watch WORKER BENCH PORT INTERVAL OUT RATE COMMIT
                                                   soak.sh's sampler and verdict
    tools.py gnuplot-data CSV                      a CSV as gnuplot reads it
    tools.py json-get FILE KEY...                  one value of a JSON report
    tools.py outcome-list ITEMS                    a stored list of ITEMS outcomes
    tools.py growth-report OUT HZ COMMIT SECONDS RATE   growth.sh's points as one JSON report
    tools.py growth-data JSON SWEEP                one sweep of that report as gnuplot data
    tools.py stall-table OUT HZ SECONDS HOLD_MS    stall.sh's held / free summary
    tools.py machine-table OUT HZ                  machine-cpu.sh's CPU per request by process

Standard library only. The pure parts are tested: python3 -m unittest bench/test_tools.py
"""

import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request


# ---- compare.sh

def read_pairs(path, width):
    """Lines of `width` space-separated fields, blank lines skipped."""
    with open(path) as f:
        return [line.split() for line in f if line.strip() and len(line.split()) == width]


def median(values):
    return statistics.median(values) if values else float("nan")


def compare_rows(reports, cpu, hz):
    """reports: {(round, target, load): bench JSON}; cpu: {(round, target, load): ticks}.
    Returns {(load, target): {"thr", "p50", "p99", "cpu": [..], "lost", "wrong"}}."""
    rows = {}
    for (r, t, n), report in sorted(reports.items()):
        row = rows.setdefault((n, t), {"thr": [], "p50": [], "p99": [], "cpu": [], "lost": 0, "wrong": 0})
        row["thr"].append(report["throughput_per_s"])
        row["p50"].append(report["latency_us"]["p50"])
        row["p99"].append(report["latency_us"]["p99"])
        row["lost"] += report["lost"]
        row["wrong"] += report["wrong"]
        if report["answered"]:
            row["cpu"].append(cpu[(r, t, n)] / hz / report["answered"] * 1e6)
    return rows


def compare_table(rows, rounds, seconds):
    """The Markdown table compare.sh prints, as a list of lines."""
    lines = [f"\nMedians over {rounds} alternating rounds of {seconds} s per load "
             "(worker = lcm-worker, echo = examples/echo, baseline = LCM_COMPARE_BASELINE; "
             "ratio = worker / echo)\n",
             "| load | target | throughput /s | p50 µs | p99 µs | CPU µs/request | lost | wrong |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in ["closed64", "closed1", "open2000"]:
        cells = {}
        for target in ["echo", "worker", "baseline"]:
            row = rows.get((name, target))
            if not row:
                continue
            cells[target] = [median(row[k]) for k in ("thr", "p50", "p99", "cpu")]
            thr, p50, p99, c = cells[target]
            lines.append(f"| {name} | {target} | {thr:.0f} | {p50:.0f} | {p99:.0f} | {c:.1f} "
                         f"| {row['lost']} | {row['wrong']} |")
        for target, label in (("worker", "ratio"), ("baseline", "baseline ratio")):
            if "echo" not in cells or target not in cells:
                continue
            e, w = cells["echo"], cells[target]
            ratio = [w[i] / e[i] if e[i] else float("nan") for i in range(4)]
            lines.append(f"| {name} | {label} | {ratio[0]:.2f}x | {ratio[1]:.2f}x (+{w[1]-e[1]:.0f} µs) "
                         f"| {ratio[2]:.2f}x | {ratio[3]:.2f}x | | |")
    return lines


def cmd_compare_table(out, hz, rounds, seconds):
    hz = int(hz)
    cpu = {(r, t, n): int(ticks) for r, t, n, ticks in read_pairs(os.path.join(out, "cpu.txt"), 4)}
    rss = {}
    for _, t, kb in read_pairs(os.path.join(out, "rss.txt"), 3):
        rss.setdefault(t, []).append(int(kb))
    reports = {}
    for name in sorted(os.listdir(out)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(out, name)) as f:
                reports[tuple(name[:-len(".json")].split("."))] = json.load(f)
        except ValueError:
            continue
    for line in compare_table(compare_rows(reports, cpu, hz), rounds, seconds):
        print(line)
    print()
    for target in ["echo", "worker", "baseline"]:
        if target in rss:
            print(f"peak RSS {target}: {max(rss[target]) / 1024:.1f} MB (largest VmHWM over the rounds)")


# ---- soak.sh

def histogram_sum(text, family):
    """Sum, count and cumulative buckets {le: n} of a Prometheus histogram
    family, over all its label sets."""
    total, count, buckets = 0.0, 0.0, {}
    for line in text.splitlines():
        if not line.startswith(family):
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith(family + "_sum"):
            total += float(value)
        elif name.startswith(family + "_count"):
            count += float(value)
        elif name.startswith(family + "_bucket"):
            le = re.search(r'le="([^"]+)"', name).group(1)
            le = float("inf") if le == "+Inf" else float(le)
            buckets[le] = buckets.get(le, 0.0) + float(value)
    return total, count, buckets


def p99_bound(buckets, before):
    """Upper bound of the bucket holding the 99th percentile of the interval."""
    deltas = sorted((le, n - before.get(le, 0.0)) for le, n in buckets.items())
    if not deltas or deltas[-1][1] <= 0:
        return None
    want = 0.99 * deltas[-1][1]
    return next(le for le, n in deltas if n >= want)


def resource_checks(rows, check):
    """Judges a soak's samples: memory, descriptors, connections; calls
    check(ok, text) for each criterion."""
    end = rows[-1]["t_s"]
    window = [r for r in rows if r["t_s"] >= end - 300]
    growth = window[-1]["rss_kb"] - window[0]["rss_kb"]
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


def end_checks(report, worker_alive, check):
    """Judges the bench's report and the worker's survival."""
    if report is None:
        check(False, "the bench printed no report (see bench.log)")
    else:
        check(report["lost"] == 0 and report["wrong"] == 0,
              f"bench: lost {report['lost']}, wrong {report['wrong']}, duplicates {report['duplicates']}")
    check(worker_alive, "the worker ran to the end")


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A child that has exited but not been waited for is a zombie.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def cpu_ticks(pid):
    """User plus system CPU ticks of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cmd_soak_watch(worker, bench, port, interval, out, rate, commit):
    """Samples until the bench exits, then judges the series; exit status 1 = a criterion failed."""
    worker, bench, interval = int(worker), int(bench), float(interval)
    hz = os.sysconf("SC_CLK_TCK")

    def rss_kb():
        with open(f"/proc/{worker}/status") as f:
            return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))

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
        return histogram_sum(text, "lcm_request_duration_seconds")

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
            ticks = cpu_ticks(worker)
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
                    bound = p99_bound(buckets, p_buckets)
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
    try:
        with open(os.path.join(out, "bench.json")) as f:
            report = json.load(f)
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
        return 1
    print(f"RSS: start {rows[0]['rss_kb'] / 1024:.1f} MB, end {rows[-1]['rss_kb'] / 1024:.1f} MB, "
          f"max {max(r['rss_kb'] for r in rows) / 1024:.1f} MB")
    resource_checks(rows, check)
    means = [r["latency_mean_ms"] for r in rows if r.get("latency_mean_ms") not in (None, "")]
    p99s = [r["latency_p99_ms"] for r in rows if r.get("latency_p99_ms") not in (None, "")]
    served = [r["requests_per_s"] for r in rows if r.get("requests_per_s") not in (None, "")]
    cpu = [r["cpu_percent"] for r in rows if r.get("cpu_percent") not in (None, "")]
    if means:
        print(f"latency (worker, receipt to settlement), per {interval:.0f} s interval: mean "
              f"{min(means):.3f}..{max(means):.3f} ms (median {sorted(means)[len(means) // 2]:.3f}), "
              f"p99 bucket bound {min(p99s):g}..{max(p99s):g} ms")
    if served:
        print(f"served: {sorted(served)[len(served) // 2]:.0f} requests/s (median of intervals); "
              f"worker CPU {sorted(cpu)[len(cpu) // 2]:.0f}% of one core (median)")
    if report is not None:
        lat = report["latency_us"]
        print(f"bench: sent {report['sent']}, answered {report['answered']}, "
              f"{report['throughput_per_s']:.0f}/s, latency p50 {lat['p50']} µs, p99 {lat['p99']} µs, "
              f"p99.9 {lat['p999']} µs, max {lat['max']} µs")
    end_checks(report, worker_alive, check)
    return 1 if failures else 0


# ---- small helpers

def gnuplot_rows(rows):
    """CSV rows (header first) as gnuplot data lines: blanks become "?"."""
    return [" ".join(cell if cell != "" else "?" for cell in row) for row in rows[1:]]


def cmd_gnuplot_data(path):
    with open(path) as f:
        for line in gnuplot_rows(list(csv.reader(f))):
            print(line)


def json_get(value, keys):
    for key in keys:
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


def cmd_json_get(path, *keys):
    with open(path) as f:
        print(json_get(json.load(f), keys))


def outcome_list(items):
    """A stored outcome list of `items` outcomes of about 200 bytes each."""
    return json.dumps([{"OutComeID": str(i), "Description": "outcome %d %s" % (i, "x" * 180)}
                       for i in range(items)])


def cmd_outcome_list(items):
    print(outcome_list(int(items)), end="")


GROWTH_SWEEPS = {
    "outcomes": "entries in the outcome list",
    "campaigns": "distinct campaigns requested",
    "prefetch": "amqp.prefetch",
}


def growth_report(points, cpu, hz, meta, ir=None):
    """points: {(sweep, x): (bench JSON, load)}; cpu: {(sweep, x): worker ticks};
    ir: {(sweep, x): worker instructions}, with ("idle", "0") a run without
    requests, when the worker ran under callgrind. The report growth.sh
    writes: meta, then per sweep its points by x."""
    ir = ir or {}
    idle = ir.get(("idle", "0"))
    sweeps = []
    for name, axis in GROWTH_SWEEPS.items():
        rows = []
        for (sweep, x), (report, load) in points.items():
            if sweep != name:
                continue
            answered = report["answered"]
            instructions = ir.get((sweep, x))
            rows.append({"x": int(x), "load": load,
                         "cpu_us_per_request": cpu[(sweep, x)] / hz / answered * 1e6 if answered else None,
                         "instructions_per_request": (instructions - idle) / answered
                         if answered and instructions is not None and idle is not None else None,
                         "throughput_per_s": report["throughput_per_s"],
                         "latency_us": report["latency_us"],
                         "answered": answered, "lost": report["lost"], "wrong": report["wrong"]})
        if rows:
            sweeps.append({"name": name, "x": axis, "points": sorted(rows, key=lambda r: r["x"])})
    return dict(meta, sweeps=sweeps)


def cmd_growth_report(out, hz, commit, seconds, rate):
    cpu = {(sweep, x): int(ticks) for sweep, x, ticks in read_pairs(os.path.join(out, "cpu.txt"), 3)}
    loads = {(sweep, x): load for sweep, x, load in
             (line.split(" ", 2) for line in open(os.path.join(out, "loads.txt")).read().splitlines())}
    points = {}
    for key, load in loads.items():
        try:
            with open(os.path.join(out, f"{key[0]}.{key[1]}.json")) as f:
                points[key] = (json.load(f), load)
        except (OSError, ValueError):
            continue
    ir = {}
    if os.path.exists(os.path.join(out, "ir.txt")):
        ir = {(sweep, x): int(n) for sweep, x, n in read_pairs(os.path.join(out, "ir.txt"), 3)}
    meta = {"commit": commit, "seconds_per_point": int(seconds), "rate": float(rate),
            "cpus": os.cpu_count(),
            "machine": os.uname().machine, "kernel": os.uname().release,
            "worker_under_callgrind": bool(ir)}
    print(json.dumps(growth_report(points, cpu, int(hz), meta, ir), indent=1))


def growth_data(report, name):
    """One sweep of growth.sh's report as gnuplot data: x, CPU µs/request,
    p99 µs, throughput /s, thousands of instructions per request."""
    sweep = next(s for s in report["sweeps"] if s["name"] == name)
    lines = [f"# {sweep['name']}: {sweep['x']}"]
    for point in sweep["points"]:
        cpu = point["cpu_us_per_request"]
        ir = point.get("instructions_per_request")
        lines.append(f"{point['x']} {'?' if cpu is None else f'{cpu:.2f}'} "
                     f"{point['latency_us']['p99']} {point['throughput_per_s']:.1f} "
                     f"{'?' if ir is None else f'{ir / 1000:.2f}'}")
    return "\n".join(lines)


def cmd_growth_data(path, name):
    with open(path) as f:
        print(growth_data(json.load(f), name))


# ---- stall.sh

def stall_summary(reports, cpu, hz, invalid):
    """reports: {(round, phase): bench JSON}, phase "held" or "free"; cpu:
    {(round, phase): ticks}; rounds in `invalid` are left out. Returns
    {phase: (median throughput /s, median CPU µs/request, lost, wrong)}."""
    phases = {}
    for (r, phase), report in reports.items():
        if r in invalid:
            continue
        row = phases.setdefault(phase, {"thr": [], "cpu": [], "lost": 0, "wrong": 0})
        row["thr"].append(report["throughput_per_s"])
        row["lost"] += report["lost"]
        row["wrong"] += report["wrong"]
        if report["answered"]:
            row["cpu"].append(cpu[(r, phase)] / hz / report["answered"] * 1e6)
    return {phase: (median(row["thr"]), median(row["cpu"]), row["lost"], row["wrong"])
            for phase, row in phases.items()}


def cmd_stall_table(out, hz, seconds, hold_ms):
    cpu = {(r, p): int(ticks) for r, p, ticks in read_pairs(os.path.join(out, "cpu.txt"), 3)}
    invalid = set()
    if os.path.exists(os.path.join(out, "invalid.txt")):
        invalid = {line.strip() for line in open(os.path.join(out, "invalid.txt"))}
    reports = {}
    for name in os.listdir(out):
        if name.endswith(".json"):
            try:
                with open(os.path.join(out, name)) as f:
                    reports[tuple(name[:-len(".json")].split("."))] = json.load(f)
            except ValueError:
                continue
    summary = stall_summary(reports, cpu, int(hz), invalid)
    rounds = len({r for r, _ in reports} - invalid)
    print(f"\nMedians over {rounds} rounds of {seconds} s per phase; held = one delivery "
          f"unsettled (limits.request_deadline_ms {hold_ms})\n")
    print("| phase | throughput /s | worker CPU µs/request | lost | wrong |")
    print("|---|---:|---:|---:|---:|")
    for phase in ("free", "held"):
        if phase in summary:
            thr, c, lost, wrong = summary[phase]
            print(f"| {phase} | {thr:.0f} | {c:.1f} | {lost} | {wrong} |")
    if "free" in summary and "held" in summary:
        (f_thr, f_cpu, _, _), (h_thr, h_cpu, _, _) = summary["free"], summary["held"]
        print(f"| held / free | {h_thr / f_thr:.2f}x | {h_cpu / f_cpu:.2f}x | | |")
    return 1 if invalid else 0


# ---- machine-cpu.sh

def machine_rows(ticks, reports, times, hz):
    """ticks: [[round, target, 5 counters before, 5 after]] (broker, Redis,
    target, machine busy, machine idle, in clock ticks); reports: {(round,
    target): bench JSON}; times: {(round, target): the load generator's
    user + system seconds}. Returns one row per run: round, target,
    throughput, and the CPU µs per request of broker, redis, bench (the load
    generator), target_cpu, and the machine's busy and idle time."""
    rows = []
    for line in ticks:
        r, t = line[0], line[1]
        before, after = [int(x) for x in line[2:7]], [int(x) for x in line[7:12]]
        report = reports[(r, t)]
        answered = report["answered"]
        if not answered:
            continue
        spent = [(a - b) / hz / answered * 1e6 for a, b in zip(after, before)]
        broker, redis, target, busy, idle = spent
        bench = times[(r, t)] / answered * 1e6
        rows.append({"round": r, "target": t, "thr": report["throughput_per_s"],
                     "broker": broker, "redis": redis, "bench": bench, "target_cpu": target,
                     "busy": busy, "idle": idle})
    return rows


def machine_table(rows):
    """The Markdown table machine-cpu.sh prints: every run, then the medians."""
    lines = ["\nCPU µs per request answered, one closed loop at 64 in flight per run\n",
             "| run | target | throughput /s | broker | Redis | load generator | echo or worker "
             "| machine busy | machine idle |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    cells = lambda x: (f"{x['thr']:.0f} | {x['broker']:.1f} | {x['redis']:.1f} | {x['bench']:.1f} "
                       f"| {x['target_cpu']:.1f} | {x['busy']:.1f} | {x['idle']:.1f}")
    for row in rows:
        lines.append(f"| {row['round']} | {row['target']} | {cells(row)} |")
    for target in ["echo", "worker"]:
        mine = [row for row in rows if row["target"] == target]
        if mine:
            med = {k: median([row[k] for row in mine])
                   for k in ["thr", "broker", "redis", "bench", "target_cpu", "busy", "idle"]}
            lines.append(f"| median | {target} | {cells(med)} |")
    return lines


def cmd_machine_table(out, hz):
    hz = int(hz)
    ticks = read_pairs(os.path.join(out, "ticks.txt"), 12)
    reports, times = {}, {}
    for line in ticks:
        key = (line[0], line[1])
        try:
            with open(os.path.join(out, f"{key[0]}.{key[1]}.json")) as f:
                reports[key] = json.load(f)
            with open(os.path.join(out, f"{key[0]}.{key[1]}.time")) as f:
                user, system = f.read().split()[-2:]
            times[key] = float(user) + float(system)
        except (OSError, ValueError):
            continue
    ticks = [line for line in ticks if (line[0], line[1]) in reports and (line[0], line[1]) in times]
    for line in machine_table(machine_rows(ticks, reports, times, hz)):
        print(line)


COMMANDS = {
    "compare-table": cmd_compare_table,
    "soak-watch": cmd_soak_watch,
    "gnuplot-data": cmd_gnuplot_data,
    "json-get": cmd_json_get,
    "outcome-list": cmd_outcome_list,
    "growth-report": cmd_growth_report,
    "growth-data": cmd_growth_data,
    "stall-table": cmd_stall_table,
    "machine-table": cmd_machine_table,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]) or 0)
