//! Engine cost per record with a no-op handler: 10 and 10,000 records,
//! standard and FIFO (100 groups), and typed JSON decoding, on the
//! multi-thread runtime the binary uses; the standard case also on a
//! current-thread runtime, for comparison. The allocator is the binary's.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde::Deserialize;
use sqsrt_core::{
    BatchOptions, Context, Engine, EngineConfig, HandlerError, Message, handler_fn, json_fn,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime builds on this machine")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime builds on this machine")
}

fn batch(n: usize, groups: Option<usize>, body: &str) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let m = Message::new(format!("m-{i}"), body);
            match groups {
                Some(g) => m.with_group(format!("g{}", i % g)),
                None => m,
            }
        })
        .collect()
}

#[derive(Deserialize)]
#[allow(dead_code)] // decoded, not read: the decode is what is measured
struct Order {
    id: u64,
    sku: String,
    qty: u32,
}

fn engine(c: &mut Criterion) {
    let rt = runtime();
    let single = current_thread();
    let noop = Engine::new(
        handler_fn(|_m: Message, _ctx: Context| async { Ok::<(), HandlerError>(()) }),
        EngineConfig::default(),
    );
    let typed = Engine::new(
        json_fn(|order: Order, _m: Message, _ctx: Context| async move {
            black_box(order);
            Ok::<_, HandlerError>(())
        }),
        EngineConfig::default(),
    );
    let options = BatchOptions::default();
    let mut group = c.benchmark_group("engine");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for n in [10, 10_000] {
        group.throughput(Throughput::Elements(n as u64));
        let standard = batch(n, None, "{}");
        group.bench_with_input(
            BenchmarkId::new("noop-standard", n),
            &standard,
            |b, msgs| {
                b.iter(|| rt.block_on(noop.run_batch(msgs.clone(), &options)));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("noop-standard-current-thread", n),
            &standard,
            |b, msgs| {
                b.iter(|| single.block_on(noop.run_batch(msgs.clone(), &options)));
            },
        );
        let fifo = batch(n, Some(100), "{}");
        let fifo_options = BatchOptions {
            fifo: true,
            ..BatchOptions::default()
        };
        group.bench_with_input(
            BenchmarkId::new("noop-fifo-100-groups", n),
            &fifo,
            |b, msgs| {
                b.iter(|| rt.block_on(noop.run_batch(msgs.clone(), &fifo_options)));
            },
        );
        let orders = batch(n, None, r#"{"id": 42, "sku": "ABC-123", "qty": 3}"#);
        group.bench_with_input(BenchmarkId::new("typed-json", n), &orders, |b, msgs| {
            b.iter(|| rt.block_on(typed.run_batch(msgs.clone(), &options)));
        });
    }
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
