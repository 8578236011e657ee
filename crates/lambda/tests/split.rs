//! A large Lambda batch runs as two halves at once (engine and log lines):
//! the same response and exactly one outcome line per record as one thread.
//!
//! Alone in its test binary on purpose: `tracing` caches a callsite's
//! interest process-wide the first time any thread hits it, so a sibling
//! test logging the same lines without a subscriber could make this
//! test's thread-local capture see nothing.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{FakeQueue, event, listed};
use sqsrt_core::{Context, Engine, EngineConfig, HandlerError, Message, handler_fn};
use sqsrt_lambda::{LambdaConfig, SqsLambda};

/// The `message_id` of every event, and whether it was inside the
/// `invocation` span.
#[derive(Clone, Default)]
struct OutcomeLines(Arc<Mutex<Vec<(String, bool)>>>);

impl<S> tracing_subscriber::Layer<S> for OutcomeLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        struct Id(Option<String>);
        impl tracing::field::Visit for Id {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "message_id" {
                    self.0 = Some(value.to_owned());
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut id = Id(None);
        event.record(&mut id);
        if let Some(id) = id.0 {
            let in_invocation = ctx
                .event_scope(event)
                .is_some_and(|scope| scope.from_root().any(|span| span.name() == "invocation"));
            self.0.lock().unwrap().push((id, in_invocation));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_runs_as_two_halves_with_the_same_outcomes_and_lines() {
    use tracing::Instrument as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    // 3,000 records (past the two-thread threshold): every 7th retries,
    // every 11th is permanent. Handlers record their thread.
    let threads = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let handler = {
        let threads = Arc::clone(&threads);
        handler_fn(move |m: Message, _ctx: Context| {
            threads.lock().unwrap().insert(std::thread::current().id());
            async move {
                match m.body() {
                    "retry" => Err(HandlerError::retry("try later")),
                    "perm" => Err(HandlerError::permanent("bad input")),
                    _ => Ok(()),
                }
            }
        })
    };
    let lambda = SqsLambda::new(
        Engine::new(handler, EngineConfig::default()),
        LambdaConfig::default(),
        Arc::new(FakeQueue::default()),
    );
    let records: Vec<(String, &str)> = (0..3_000)
        .map(|i| {
            let body = match i {
                _ if i % 7 == 0 => "retry",
                _ if i % 11 == 0 => "perm",
                _ => "ok",
            };
            (format!("m{i}"), body)
        })
        .collect();
    let lines = OutcomeLines::default();
    let subscriber = tracing_subscriber::registry().with(lines.clone());
    let response = {
        let _default = tracing::subscriber::set_default(subscriber);
        lambda
            .handle(
                event(
                    &records
                        .iter()
                        .map(|(id, b)| (id.as_str(), *b))
                        .collect::<Vec<_>>(),
                ),
                None,
            )
            .instrument(tracing::info_span!("invocation", request_id = "r-1"))
            .await
            .unwrap()
    };
    let want: Vec<&str> = records
        .iter()
        .filter(|(_, body)| *body != "ok")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(listed(&response), want, "failures listed in batch order");
    assert!(
        threads.lock().unwrap().len() >= 2,
        "the halves ran on two threads"
    );
    let lines = lines.0.lock().unwrap();
    let mut seen: Vec<&str> = lines.iter().map(|(id, _)| id.as_str()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        (lines.len(), seen.len()),
        (records.len(), records.len()),
        "exactly one outcome line per record"
    );
    assert!(
        lines.iter().all(|(_, in_invocation)| *in_invocation),
        "every line carries the invocation's span"
    );
}
