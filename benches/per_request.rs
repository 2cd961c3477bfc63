//! Work per request on the pure path, counted rather than timed: heap
//! allocations (a counting global allocator) and, run under callgrind,
//! instructions. Counts do not move when other programs load the machine,
//! so they compare two builds where wall-clock figures cannot.
//!
//! ```sh
//! cargo bench --bench per_request                 # every case, JSON lines
//! cargo bench --bench per_request -- decide 20000 # one case, N iterations
//! ```
//!
//! Instructions per request: run one case under
//! `valgrind --tool=callgrind` at two iteration counts and divide the
//! difference of the totals by the difference of the counts (start-up
//! cancels out).
//!
//! The allocation budget of [`MAX_ALLOCATIONS`] is checked on every run: a
//! change that allocates more per request fails this bench.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use lcm_worker::outcomes::OutcomeList;
use lcm_worker::protocol::{parse_request, render_outcomes};
use lcm_worker::protocol::{RequestKind, Selection};
use tokio::time::Instant;

mod common;
use common::{runtime, sample_properties, sample_service, stored_list};

/// Counts every allocation (and reallocation) the program makes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The request of the contract's sample, as a requester sends it.
const REQUEST: &[u8] = br#"{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutCome","source":"agent-desktop-eu","data":{"callid":"12345","AccountNumber":"5|3|1|0|0|44|1"}}"#;

/// Most heap allocations one case may make per request (per list parsed,
/// for `parse_list`: a stored list of 8 outcomes, parsed and rendered as
/// on an outcome-cache miss). `parse`: the
/// source, the echoed callid, the query's callid and account number.
/// `decide` is the whole pure path of a request whose outcome list is
/// cached: parse, the route (its routing key), the call record (two
/// strings, as the Redis store builds them), and the reply.
const MAX_ALLOCATIONS: &[(&str, f64)] = &[
    ("parse", 4.0),
    ("render", 1.0),
    ("decide", 8.0),
    ("parse_list", 38.0),
];

/// Runs `case` `iterations` times; returns allocations and bytes per run.
fn measure(case: &str, iterations: u64) -> (f64, f64) {
    let stored = stored_list();
    let list = OutcomeList::parse("1", &stored).expect("the sample list parses");
    let kind = RequestKind::from_subtopic("GetBusinessOutcome").expect("a served kind");
    let service = sample_service();
    let properties = sample_properties();
    let runtime = runtime();
    let run = || match case {
        "parse" => drop(black_box(parse_request(black_box(REQUEST), 65536))),
        "render" => drop(black_box(render_outcomes(
            kind,
            black_box("12345"),
            &list,
            &Selection::All,
        ))),
        "decide" => drop(black_box(runtime.block_on(service.handle(
            black_box(REQUEST),
            &properties,
            Instant::now(),
        )))),
        "parse_list" => drop(black_box(OutcomeList::parse("1", black_box(&stored)))),
        other => panic!("unknown case {other:?}: parse, render, decide or parse_list"),
    };
    // The first run fills the outcome cache.
    run();
    let (allocations, bytes) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for _ in 0..iterations {
        run();
    }
    let per_run = |total: u64| total as f64 / iterations.max(1) as f64;
    (
        per_run(ALLOCATIONS.load(Ordering::Relaxed) - allocations),
        per_run(BYTES.load(Ordering::Relaxed) - bytes),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let iterations = args.get(1).map_or(10_000, |n| n.parse().expect("a count"));
    let cases: Vec<&str> = match args.first() {
        Some(case) => vec![case.as_str()],
        None => MAX_ALLOCATIONS.iter().map(|(case, _)| *case).collect(),
    };
    let mut over_budget = Vec::new();
    for case in cases {
        let (allocations, bytes) = measure(case, iterations);
        println!(
            r#"{{"case":"{case}","iterations":{iterations},"allocations_per_request":{allocations:.2},"bytes_per_request":{bytes:.0}}}"#
        );
        let budget = MAX_ALLOCATIONS.iter().find(|(c, _)| *c == case);
        if let Some((_, max)) = budget.filter(|(_, max)| allocations > *max) {
            over_budget.push(format!("{case}: {allocations:.2} allocations > {max}"));
        }
    }
    if !over_budget.is_empty() && iterations > 0 {
        eprintln!("over the allocation budget: {}", over_budget.join("; "));
        std::process::exit(1);
    }
}
