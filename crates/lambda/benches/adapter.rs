//! The Lambda adapter from event JSON bytes to response JSON bytes, no-op
//! handler, 10 and 10,000 realistic records: the stock decode
//! (`aws_lambda_events::SqsEvent`) against sqsrt's decoder ([`SqsRecords`]),
//! alone and through the whole adapter (engine, settle, response encode).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use sqsrt_core::{Context, Engine, EngineConfig, HandlerError, Message, handler_fn};
use sqsrt_lambda::stock::into_messages;
use sqsrt_lambda::{IntoRecords, LambdaConfig, SqsLambda, SqsRecords};
use sqsrt_sqs::{EntryFailure, OutgoingMessage, QueueArn, QueueClient, SqsError, VisibilityChange};

// The allocator the sqsrt binary ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// All records succeed, so the adapter never calls SQS.
struct NoCalls;

impl QueueClient for NoCalls {
    async fn queue_url(&self, _: &QueueArn) -> Result<String, SqsError> {
        unreachable!("no record fails")
    }
    async fn change_visibility_batch(
        &self,
        _: &str,
        _: Vec<VisibilityChange>,
    ) -> Result<Vec<EntryFailure>, SqsError> {
        unreachable!("no record fails")
    }
    async fn send_message(&self, _: &str, _: OutgoingMessage) -> Result<String, SqsError> {
        unreachable!("no record fails")
    }
}

/// `n` copies of `tests/fixtures/bench-record.json` (an SQS record with a
/// realistic receipt handle and the four system attributes), each with its
/// own id: 10,000 of them are just under Lambda's 6 MiB payload limit.
fn event(n: usize) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/bench-record.json"
    );
    let template: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    let records: Vec<_> = (0..n)
        .map(|i| {
            let mut r = template.clone();
            r["messageId"] = json!(format!("059f36b4-87a3-44ab-83d2-{i:012}"));
            r
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).expect("serializable")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime builds on this machine")
}

async fn through<E: IntoRecords>(
    adapter: &SqsLambda<impl sqsrt_core::Handler, NoCalls>,
    event: E,
) -> Vec<u8> {
    let response = adapter
        .handle(event, Some(Duration::from_secs(900)))
        .await
        .expect("valid event");
    serde_json::to_vec(&response).expect("serializable")
}

fn adapter(c: &mut Criterion) {
    let rt = runtime();
    let engine = Engine::new(
        handler_fn(|_m: Message, _ctx: Context| async { Ok::<(), HandlerError>(()) }),
        EngineConfig::default(),
    );
    let adapter = SqsLambda::new(engine, LambdaConfig::default(), Arc::new(NoCalls));
    let mut group = c.benchmark_group("adapter");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    for n in [10, 10_000] {
        let bytes = event(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("decode stock", n), &bytes, |b, bytes| {
            b.iter(|| {
                into_messages(serde_json::from_slice::<SqsEvent>(bytes).expect("valid event"))
                    .expect("valid event")
            });
        });
        // What lambda_runtime's own decode costs: it tracks the path of
        // every field (serde_path_to_error) to name it in errors.
        group.bench_with_input(
            BenchmarkId::new("decode stock, path tracked", n),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let mut de = serde_json::Deserializer::from_slice(bytes);
                    into_messages(
                        serde_path_to_error::deserialize::<_, SqsEvent>(&mut de)
                            .expect("valid event"),
                    )
                    .expect("valid event")
                });
            },
        );
        group.bench_with_input(BenchmarkId::new("decode sqsrt", n), &bytes, |b, bytes| {
            b.iter(|| {
                SqsRecords::from_slice(bytes)
                    .expect("valid event")
                    .into_messages()
                    .expect("valid event")
            });
        });
        group.bench_with_input(
            BenchmarkId::new("decode sqsrt, serde visitor only", n),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    SqsRecords::from_slice_visitor(bytes)
                        .expect("valid event")
                        .into_messages()
                        .expect("valid event")
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("decode sqsrt, two threads", n),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    SqsRecords::from_slice_split(bytes, 0)
                        .expect("valid event")
                        .into_messages()
                        .expect("valid event")
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("bytes to response, stock decode", n),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    rt.block_on(through(
                        &adapter,
                        serde_json::from_slice::<SqsEvent>(bytes).expect("valid event"),
                    ))
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("bytes to response, sqsrt", n),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    black_box(rt.block_on(through(
                        &adapter,
                        SqsRecords::from_slice(bytes).expect("valid event"),
                    )))
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, adapter);
criterion_main!(benches);
