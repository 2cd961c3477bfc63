//! `cargo xtask <task> [ARGS...]`: one entry point for the tasks of
//! lcm-worker that are not `cargo test`. Each task runs one script or
//! command from the repository root and passes its arguments on; the
//! scripts themselves say what they take (`bench/*.sh`, `.ci/compose.sh`).
//!
//! Why `cargo xtask` and not a justfile: everyone who builds the worker has
//! cargo already, and CI needs nothing installed for it; `just` is not in
//! Debian 12, the distribution this machine and CI run. The cost is this
//! small crate, which uses the standard library only and builds in
//! seconds, in its own workspace (`xtask/target`) so that the worker's
//! build and lock file are untouched.

use std::path::{Path, PathBuf};
use std::process::{exit, Command};

/// Name, what it runs, and a line of help.
const TASKS: &[(&str, &[&str], &str)] = &[
    (
        "compare",
        &["bench/compare.sh"],
        "[ROUNDS] [SECONDS]  lcm-worker against the echo yardstick (quiet machine only)",
    ),
    (
        "trace-cost",
        &["bench/trace-cost.sh"],
        "[ROUNDS] [SECONDS]  export off against LCM_TRACE_BASELINE, export on against off",
    ),
    (
        "machine-cpu",
        &["bench/machine-cpu.sh"],
        "[ROUNDS] [SECONDS]  CPU per request of broker, Redis, load generator and target",
    ),
    (
        "soak",
        &["bench/soak.sh"],
        "[RATE|auto] [DURATION]  steady load for a long time, watched for leaks",
    ),
    (
        "spike",
        &["bench/spike.sh"],
        "[WORKER_BINARY] [N]  memory after N requests for a 10 MB list at once",
    ),
    (
        "growth",
        &["bench/growth.sh"],
        "[SECONDS]  CPU per request and p99 against list size, campaigns and prefetch",
    ),
    (
        "stall",
        &["bench/stall.sh"],
        "[SECONDS] [ROUNDS]  throughput beside one delivery held unsettled",
    ),
    (
        "per-request",
        &["cargo", "bench", "--bench", "per_request", "--"],
        "[CASE [N]]  allocations per request, checked against their budget",
    ),
    (
        "bench-tools-test",
        &["python3", "-m", "unittest", "bench/test_tools.py"],
        "  the tests of bench/tools.py",
    ),
    (
        "fuzz",
        &["bench/fuzz.sh"],
        "TARGET [SECONDS]  one cargo-fuzz target (request, outcome_list), 300 s by default",
    ),
    (
        "compose",
        &[".ci/compose.sh"],
        "  the container image and the compose stack, run for real (needs Docker)",
    ),
];

fn usage() -> ! {
    eprintln!("usage: cargo xtask <task> [ARGS...]\n\ntasks:");
    for (name, _, help) in TASKS {
        eprintln!("  {name} {help}");
    }
    exit(2)
}

/// The repository root: the parent of this crate's folder.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ sits in the repository root")
        .to_path_buf()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_else(|| usage());
    let Some((_, command, _)) = TASKS.iter().find(|(name, _, _)| *name == task) else {
        eprintln!("unknown task {task:?}\n");
        usage()
    };
    let status = Command::new(command[0])
        .args(&command[1..])
        .args(args)
        .current_dir(root())
        .status()
        .unwrap_or_else(|e| {
            eprintln!("xtask: cannot run {}: {e}", command[0]);
            exit(127)
        });
    exit(status.code().unwrap_or(1))
}
