//! The pure path, without broker or Redis: what lcm-worker spends per
//! request on top of I/O. `cargo bench --bench pure`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use lcm_worker::outcomes::OutcomeList;
use lcm_worker::protocol::{parse_request, render_outcomes};
use lcm_worker::protocol::{RequestKind, Selection};
use tokio::time::Instant;

mod common;
use common::{runtime, sample_properties, sample_service, stored_list};

const REQUEST: &[u8] = br#"{"channel":"LCM","topic":"WebService","subtopic":"GetBusinessOutCome","source":"agent-desktop-eu","data":{"callid":"12345","AccountNumber":"5|3|1|0|0|44|1"}}"#;

fn benches(c: &mut Criterion) {
    c.bench_function("parse_request", |b| {
        b.iter(|| parse_request(black_box(REQUEST), 65536))
    });

    let list = OutcomeList::parse("1", &stored_list()).unwrap();
    let kind = RequestKind::from_subtopic("GetBusinessOutcome").unwrap();
    c.bench_function("render_reply_8_outcomes", |b| {
        b.iter(|| render_outcomes(kind, black_box("12345"), &list, &Selection::All))
    });
    c.bench_function("parse_stored_list_8_outcomes", |b| {
        let stored = stored_list();
        b.iter(|| OutcomeList::parse("1", black_box(&stored)))
    });

    let service = sample_service();
    let properties = sample_properties();
    let runtime = runtime();
    c.bench_function("decide_with_memory_store", |b| {
        b.to_async(&runtime)
            .iter(|| service.handle(black_box(REQUEST), &properties, Instant::now()))
    });
}

criterion_group!(pure, benches);
criterion_main!(pure);
