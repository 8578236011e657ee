//! The cost of the log line every message yields: 10,000 Lambda outcome
//! lines (`message_id`, `outcome`, the invocation span's `request_id`)
//! through sqsrt's JSON layer, batched as the Lambda adapter does
//! (`sqsrt_lambda::OUTCOME_LINES_SPAN`) and one write per line as the worker does.
//! The lines go to a byte counter, so the figure is the formatting cost
//! without the write syscalls. The allocator is the binary's.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tracing::info;
use tracing_subscriber::layer::SubscriberExt;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn outcome_lines(ids: &[String]) {
    for id in ids {
        info!(
            message_id = id.as_str(),
            outcome = "success",
            "Message processed."
        );
    }
}

fn logging(c: &mut Criterion) {
    let written = Arc::new(AtomicUsize::new(0));
    let sink = {
        let written = Arc::clone(&written);
        move |bytes: &[u8]| {
            written.fetch_add(black_box(bytes).len(), Ordering::Relaxed);
        }
    };
    let filter: tracing_subscriber::filter::Targets = "info".parse().expect("a valid filter");
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(sqsrt::logging::json_layer(sink));
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut group = c.benchmark_group("log-lines");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for n in [10_u64, 10_000] {
        let ids: Vec<String> = (0..n)
            .map(|i| format!("059f36b4-87a3-44ab-83d2-{i:012}"))
            .collect();
        group.throughput(Throughput::Elements(n));
        let invocation = tracing::info_span!(
            "invocation",
            request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
        );
        group.bench_with_input(BenchmarkId::new("lambda-batched", n), &ids, |b, ids| {
            b.iter(|| {
                invocation.in_scope(|| {
                    tracing::info_span!(sqsrt_lambda::OUTCOME_LINES_SPAN)
                        .in_scope(|| outcome_lines(ids));
                });
            });
        });
        group.bench_with_input(BenchmarkId::new("line-by-line", n), &ids, |b, ids| {
            b.iter(|| outcome_lines(ids));
        });
    }
    group.finish();
    assert!(written.load(Ordering::Relaxed) > 0, "no line was written");
}

criterion_group!(benches, logging);
criterion_main!(benches);
