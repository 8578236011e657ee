//! The cost of the log line every message yields: 10,000 Lambda outcome
//! lines (`message_id`, `outcome`, `receive_count`, `duration_ms`, the
//! invocation span's `request_id`) through sqsrt's JSON layer: rendered in
//! one pass by the outcome-line writer as the Lambda adapter does under
//! sqsrt's logging (`lambda-writer`), as `tracing` events batched in
//! `sqsrt_lambda::OUTCOME_LINES_SPAN` (`lambda-events`, what a program with
//! the JSON layer alone gets), and one write per line as the worker does.
//! The lines go to a byte counter, so the figure is the formatting cost
//! without the write syscalls. The allocator is the binary's.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sqsrt_lambda::OutcomeLine;
use sqsrt_lambda::outcome_lines::{log_lines, log_outcome_lines};
use tracing_subscriber::layer::SubscriberExt;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn logging(c: &mut Criterion) {
    let written = Arc::new(AtomicUsize::new(0));
    let sink = || {
        let written = Arc::clone(&written);
        move |bytes: &[u8]| {
            written.fetch_add(black_box(bytes).len(), Ordering::Relaxed);
        }
    };
    let filter: tracing_subscriber::filter::Targets = "info".parse().expect("a valid filter");
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(sqsrt::logging::json_layer(sink()))
        .with(sqsrt::logging::outcome_line_writer(sink()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut group = c.benchmark_group("log-lines");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for n in [10_u64, 10_000] {
        let ids: Vec<String> = (0..n)
            .map(|i| format!("059f36b4-87a3-44ab-83d2-{i:012}"))
            .collect();
        let lines: Vec<OutcomeLine<'_>> = ids
            .iter()
            .map(|id| OutcomeLine {
                message_id: id,
                outcome: "success",
                receive_count: 1,
                duration_ms: Some(0),
                reason: None,
                listed: false,
                dead_lettered: false,
            })
            .collect();
        group.throughput(Throughput::Elements(n));
        let invocation = tracing::info_span!(
            "invocation",
            request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
        );
        group.bench_with_input(BenchmarkId::new("lambda-writer", n), &lines, |b, lines| {
            b.iter(|| invocation.in_scope(|| log_outcome_lines(lines, false)));
        });
        group.bench_with_input(BenchmarkId::new("lambda-events", n), &lines, |b, lines| {
            b.iter(|| {
                invocation.in_scope(|| {
                    tracing::info_span!(sqsrt_lambda::OUTCOME_LINES_SPAN)
                        .in_scope(|| log_lines(lines));
                });
            });
        });
        group.bench_with_input(BenchmarkId::new("line-by-line", n), &lines, |b, lines| {
            b.iter(|| log_lines(lines));
        });
    }
    group.finish();
    assert!(written.load(Ordering::Relaxed) > 0, "no line was written");
}

criterion_group!(benches, logging);
criterion_main!(benches);
