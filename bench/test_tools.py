"""Tests of bench/tools.py's pure parts: python3 -m unittest bench/test_tools.py"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tools  # noqa: E402

METRICS = """\
# HELP lcm_request_duration_seconds x
lcm_request_duration_seconds_bucket{result="ok",le="0.001"} 90
lcm_request_duration_seconds_bucket{result="ok",le="0.01"} 99
lcm_request_duration_seconds_bucket{result="ok",le="+Inf"} 100
lcm_request_duration_seconds_sum{result="ok"} 0.2
lcm_request_duration_seconds_count{result="ok"} 100
lcm_request_duration_seconds_bucket{result="malformed",le="0.001"} 0
lcm_request_duration_seconds_bucket{result="malformed",le="0.01"} 0
lcm_request_duration_seconds_bucket{result="malformed",le="+Inf"} 100
lcm_request_duration_seconds_sum{result="malformed"} 1.0
lcm_request_duration_seconds_count{result="malformed"} 100
lcm_requests_total{result="ok"} 100
"""


def report(thr, p50, p99, answered, lost=0, wrong=0):
    return {"throughput_per_s": thr, "latency_us": {"p50": p50, "p99": p99},
            "answered": answered, "lost": lost, "wrong": wrong}


class Histogram(unittest.TestCase):
    def test_label_sets_are_summed(self):
        total, count, buckets = tools.histogram_sum(METRICS, "lcm_request_duration_seconds")
        self.assertAlmostEqual(total, 1.2)
        self.assertEqual(count, 200)
        self.assertEqual(buckets, {0.001: 90, 0.01: 99, float("inf"): 200})

    def test_p99_is_the_bound_of_the_bucket_holding_it(self):
        before = {0.001: 0, 0.01: 0, float("inf"): 0}
        self.assertEqual(tools.p99_bound({0.001: 50, 0.01: 99, float("inf"): 100}, before), 0.01)
        self.assertEqual(tools.p99_bound({0.001: 100, 0.01: 100, float("inf"): 100}, before), 0.001)
        # Only the interval counts: what came before is subtracted.
        self.assertEqual(tools.p99_bound({0.001: 100, 0.01: 110, float("inf"): 200},
                                         {0.001: 100, 0.01: 100, float("inf"): 100}),
                         float("inf"))

    def test_an_interval_without_requests_has_no_p99(self):
        same = {0.001: 5, float("inf"): 5}
        self.assertIsNone(tools.p99_bound(same, same))
        self.assertIsNone(tools.p99_bound({}, {}))


class Compare(unittest.TestCase):
    def test_medians_and_ratios_against_echo(self):
        reports = {
            ("1", "echo", "closed64"): report(1000, 100, 200, 10000),
            ("2", "echo", "closed64"): report(3000, 300, 400, 10000),
            ("3", "echo", "closed64"): report(2000, 200, 300, 10000),
            ("1", "worker", "closed64"): report(1800, 250, 330, 10000, lost=1),
            ("2", "worker", "closed64"): report(1900, 250, 330, 10000),
            ("3", "worker", "closed64"): report(1700, 250, 330, 0),
        }
        cpu = {key: 100 for key in reports}
        rows = tools.compare_rows(reports, cpu, hz=100)
        worker = rows[("closed64", "worker")]
        self.assertEqual(worker["thr"], [1800, 1900, 1700])
        self.assertEqual(worker["lost"], 1)
        # CPU per request only from rounds that answered: 1 s / 10,000 = 100 µs.
        self.assertEqual(worker["cpu"], [100.0, 100.0])
        table = tools.compare_table(rows, 3, 10)
        self.assertIn("| closed64 | echo | 2000 | 200 | 300 | 100.0 | 0 | 0 |", table)
        self.assertIn("| closed64 | worker | 1800 | 250 | 330 | 100.0 | 1 | 0 |", table)
        self.assertIn("| closed64 | ratio | 0.90x | 1.25x (+50 µs) | 1.10x | 1.00x | | |", table)
        self.assertFalse(any("closed1" in line for line in table))


class Soak(unittest.TestCase):
    def rows(self, rss, fds=(10, 11, 10)):
        return [{"t_s": t, "rss_kb": r, "fds": f, "amqp_channels": 2, "amqp_connections": 1,
                 "redis_connections": 4} for t, r, f in zip((0, 200, 400), rss, fds)]

    def verdicts(self, rows, report, alive=True):
        seen = []
        tools.resource_checks(rows, lambda ok, text: seen.append((ok, text.split(":")[0])))
        tools.end_checks(report, alive, lambda ok, text: seen.append((ok, text.split(":")[0])))
        return seen

    def test_a_flat_run_passes_every_criterion(self):
        ok = {"lost": 0, "wrong": 0, "duplicates": 0}
        self.assertTrue(all(ok for ok, _ in self.verdicts(self.rows((100, 5000, 5500)), ok)))

    def test_growth_lost_replies_and_a_dead_worker_fail(self):
        bad = {"lost": 1, "wrong": 0, "duplicates": 0}
        failed = [name for ok, name in self.verdicts(self.rows((100, 200, 5000), (10, 13, 10)),
                                                     bad, alive=False) if not ok]
        self.assertEqual(failed, ["RSS growth over the last 5 minutes (t=200..400 s)",
                                  "file descriptors", "bench", "the worker ran to the end"])

    def test_a_run_shorter_than_five_minutes_cannot_pass(self):
        rows = self.rows((1, 1, 1), (10, 10, 10))[:2]
        failed = [name for ok, name in self.verdicts(rows, None) if not ok]
        self.assertEqual(failed, ["RSS growth over the last 5 minutes",
                                  "the bench printed no report (see bench.log)"])


class Stall(unittest.TestCase):
    def test_medians_per_phase_leave_invalid_rounds_out(self):
        reports = {("1", "free"): report(1000, 0, 0, 10000), ("1", "held"): report(800, 0, 0, 10000),
                   ("2", "free"): report(1200, 0, 0, 10000), ("2", "held"): report(5, 0, 0, 10000),
                   ("3", "free"): report(1100, 0, 0, 10000), ("3", "held"): report(900, 0, 0, 0)}
        cpu = {key: 200 for key in reports}
        summary = tools.stall_summary(reports, cpu, 100, invalid={"2"})
        self.assertEqual(summary["free"], (1050, 200.0, 0, 0))
        # Round 3's held phase answered nothing: no CPU per request from it.
        self.assertEqual(summary["held"], (850, 200.0, 0, 0))


class Helpers(unittest.TestCase):
    def test_blank_cells_become_question_marks_for_gnuplot(self):
        self.assertEqual(tools.gnuplot_rows([["a", "b"], ["1", ""], ["", "2"]]), ["1 ?", "? 2"])

    def test_json_get_walks_keys_and_indexes(self):
        self.assertEqual(tools.json_get({"a": [{"b": 3}]}, ["a", "0", "b"]), 3)

    def test_outcome_list_is_a_valid_stored_list(self):
        items = json.loads(tools.outcome_list(3))
        self.assertEqual([i["OutComeID"] for i in items], ["0", "1", "2"])
        self.assertTrue(all(len(i["Description"]) > 180 for i in items))

    def test_growth_report_groups_points_by_sweep_in_x_order(self):
        points = {("outcomes", "80"): (report(500, 1, 900, 5000), "--rate 500"),
                  ("outcomes", "8"): (report(500, 1, 700, 5000), "--rate 500"),
                  ("prefetch", "16"): (report(900, 1, 50, 0), "--concurrency 512")}
        cpu = {("outcomes", "80"): 50, ("outcomes", "8"): 25, ("prefetch", "16"): 9}
        out = tools.growth_report(points, cpu, 100, {"commit": "abc"})
        self.assertEqual(out["commit"], "abc")
        self.assertEqual([s["name"] for s in out["sweeps"]], ["outcomes", "prefetch"])
        outcomes = out["sweeps"][0]["points"]
        self.assertEqual([p["x"] for p in outcomes], [8, 80])
        # 0.25 s of CPU over 5,000 answers: 50 µs each.
        self.assertEqual(outcomes[0]["cpu_us_per_request"], 50.0)
        self.assertIsNone(out["sweeps"][1]["points"][0]["cpu_us_per_request"])
        data = tools.growth_data(out, "outcomes").splitlines()
        self.assertEqual(data, ["# outcomes: entries in the outcome list",
                                "8 50.00 700 500.0 ?", "80 100.00 900 500.0 ?"])
        self.assertEqual(tools.growth_data(out, "prefetch").splitlines()[1], "16 ? 50 900.0 ?")

    def test_under_callgrind_the_idle_run_is_subtracted(self):
        points = {("outcomes", "8"): (report(100, 1, 9, 1000), "--rate 100")}
        ir = {("idle", "0"): 5_000_000, ("outcomes", "8"): 105_000_000}
        out = tools.growth_report(points, {("outcomes", "8"): 10}, 100, {}, ir)
        self.assertEqual(out["sweeps"][0]["points"][0]["instructions_per_request"], 100_000)
        self.assertEqual(tools.growth_data(out, "outcomes").splitlines()[1], "8 100.00 9 100.0 100.00")


class MachineTable(unittest.TestCase):
    def test_each_process_is_counted_per_request_answered(self):
        # 100 ticks a second; 1,000 answered: a tick is 10 µs a request.
        ticks = [["1", "echo", "0", "0", "0", "0", "0", "200", "3", "50", "400", "20"],
                 ["1", "worker", "0", "0", "0", "0", "0", "100", "40", "70", "500", "10"]]
        reports = {("1", "echo"): report(1000, 1, 1, 1000), ("1", "worker"): report(900, 1, 1, 1000)}
        times = {("1", "echo"): 0.06, ("1", "worker"): 0.05}
        rows = tools.machine_rows(ticks, reports, times, 100)
        self.assertEqual([r["target"] for r in rows], ["echo", "worker"])
        self.assertAlmostEqual(rows[0]["broker"], 2000.0)
        self.assertAlmostEqual(rows[0]["redis"], 30.0)
        self.assertAlmostEqual(rows[0]["bench"], 60.0)
        self.assertAlmostEqual(rows[1]["target_cpu"], 700.0)
        self.assertAlmostEqual(rows[1]["busy"], 5000.0)
        self.assertAlmostEqual(rows[1]["idle"], 100.0)
        lines = tools.machine_table(rows)
        self.assertIn("| median | worker | 900 | 1000.0 | 400.0 | 50.0 | 700.0 | 5000.0 | 100.0 |", lines)

    def test_a_run_that_answered_nothing_is_left_out(self):
        ticks = [["1", "echo", "0", "0", "0", "0", "0", "1", "1", "1", "1", "1"]]
        rows = tools.machine_rows(ticks, {("1", "echo"): report(0, 0, 0, 0)}, {("1", "echo"): 0.1}, 100)
        self.assertEqual(rows, [])


if __name__ == "__main__":
    unittest.main()
