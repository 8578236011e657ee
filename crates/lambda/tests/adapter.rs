//! The adapter against a fake queue client: what is listed, dead-lettered
//! and re-timed for each outcome, checked on real event fixtures.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use common::{FakeQueue, event, listed};
use sqsrt_core::{Context, Engine, EngineConfig, HandlerError, Message, RetryPolicy, handler_fn};
use sqsrt_lambda::{InvocationError, LambdaConfig, SqsLambda};

/// Body `ok` succeeds, `retry` retries, `perm` is permanent.
fn adapter(
    queue: Arc<FakeQueue>,
    dlq: Option<&str>,
) -> SqsLambda<impl sqsrt_core::Handler, FakeQueue> {
    let handler = handler_fn(|m: Message, _ctx: Context| async move {
        match m.body() {
            "retry" => Err(HandlerError::retry("try later")),
            "retry-30" => Err(HandlerError::retry_after("later", Duration::from_secs(30))),
            "perm" => Err(HandlerError::permanent("bad input")),
            _ => Ok(()),
        }
    });
    let config = LambdaConfig::default()
        .dlq_url(dlq.map(str::to_owned))
        .retry(RetryPolicy::new(Duration::from_secs(4), Duration::from_secs(60)).unwrap());
    SqsLambda::new(Engine::new(handler, EngineConfig::default()), config, queue)
}

#[tokio::test]
async fn without_dlq_failures_are_listed_and_retries_get_backoff() {
    let queue = Arc::new(FakeQueue::default());
    let lambda = adapter(Arc::clone(&queue), None);
    let response = lambda
        .handle(
            event(&[
                ("a", "ok"),
                ("b", "retry"),
                ("c", "perm"),
                ("d", "retry-30"),
            ]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(listed(&response), ["b", "c", "d"]);
    assert!(queue.sent.lock().unwrap().is_empty());
    let calls = queue.visibility.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].0,
        "https://sqs.us-east-1.example/000000000000/orders"
    );
    let mut entries: Vec<(String, u32)> = calls[0]
        .1
        .iter()
        .map(|e| (e.receipt_handle.clone(), e.timeout_secs))
        .collect();
    entries.sort();
    // b: base 4 s jittered into [2, 4]; d: the handler's 30 s; c (permanent, no DLQ) is left alone.
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0].0, "rh-b");
    assert!((2..=4).contains(&entries[0].1), "{entries:?}");
    assert_eq!(entries[1], ("rh-d".to_owned(), 30));
}

#[tokio::test]
async fn with_dlq_permanent_failures_are_sent_with_reason_then_not_listed() {
    let queue = Arc::new(FakeQueue::default());
    let lambda = adapter(Arc::clone(&queue), Some("https://dlq"));
    let response = lambda
        .handle(event(&[("a", "ok"), ("c", "perm")]), None)
        .await
        .unwrap();
    assert!(
        listed(&response).is_empty(),
        "dead-lettered records are settled"
    );
    let sent = queue.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    let (url, message) = &sent[0];
    assert_eq!(url, "https://dlq");
    assert_eq!(message.body, "perm");
    assert_eq!(message.message_attributes.len(), 4, "k plus sqsrt's three");
    assert!(message.message_attributes.contains_key("sqsrt.reason"));
}

#[tokio::test]
async fn failed_dlq_send_becomes_a_listed_retry_so_nothing_is_lost() {
    let queue = Arc::new(FakeQueue {
        fail_sends: true,
        ..FakeQueue::default()
    });
    let lambda = adapter(Arc::clone(&queue), Some("https://dlq"));
    let response = lambda.handle(event(&[("c", "perm")]), None).await.unwrap();
    assert_eq!(listed(&response), ["c"]);
    let calls = queue.visibility.lock().unwrap();
    assert_eq!(
        calls[0].1.len(),
        1,
        "the fallback retry gets its backoff too"
    );
}

#[tokio::test]
async fn denied_visibility_stops_further_attempts_and_records_are_still_listed() {
    let queue = Arc::new(FakeQueue {
        deny_visibility: true,
        ..FakeQueue::default()
    });
    let lambda = adapter(Arc::clone(&queue), None);
    for _ in 0..3 {
        let response = lambda.handle(event(&[("b", "retry")]), None).await.unwrap();
        assert_eq!(listed(&response), ["b"]);
    }
    assert_eq!(
        queue
            .visibility_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

/// SQS unreachable: the first invocation's first calls get no answer, the
/// rest of its calls and the next invocations' are not made; every failed
/// record is still listed (permanent ones too: not dead-lettered, retried).
#[tokio::test(start_paused = true)]
async fn unreachable_sqs_turns_calls_off_for_a_period_and_lists_everything() {
    let queue = Arc::new(FakeQueue {
        unreachable: true,
        ..FakeQueue::default()
    });
    let lambda = adapter(Arc::clone(&queue), Some("https://dlq"));
    let records: Vec<(String, &str)> = (0..100)
        .map(|i| (format!("m{i}"), if i % 5 == 0 { "perm" } else { "retry" }))
        .collect();
    let records: Vec<(&str, &str)> = records.iter().map(|(id, b)| (id.as_str(), *b)).collect();
    let unanswered = || queue.unanswered.load(std::sync::atomic::Ordering::SeqCst);
    let response = lambda.handle(event(&records), None).await.unwrap();
    assert_eq!(listed(&response).len(), 100, "every record listed");
    let first = unanswered();
    assert!(
        (1..=8).contains(&first),
        "at most the first concurrent calls are made: {first}"
    );
    for _ in 0..3 {
        let response = lambda.handle(event(&records), None).await.unwrap();
        assert_eq!(listed(&response).len(), 100);
    }
    assert_eq!(unanswered(), first, "no call while off");
    tokio::time::advance(Duration::from_secs(60)).await;
    lambda.handle(event(&records), None).await.unwrap();
    assert!(unanswered() > first, "after the period, calls try again");
}

#[tokio::test]
async fn visibility_changes_go_in_batches_of_ten() {
    let queue = Arc::new(FakeQueue::default());
    let lambda = adapter(Arc::clone(&queue), None);
    let ids: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
    let records: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "retry")).collect();
    let response = lambda.handle(event(&records), None).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 25);
    let mut sizes: Vec<usize> = queue
        .visibility
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.1.len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [5, 10, 10]);
}

#[tokio::test]
async fn all_failed_lists_all_unless_configured_to_error() {
    let queue = Arc::new(FakeQueue::default());
    let records = [("a", "retry"), ("b", "perm")];
    let response = adapter(Arc::clone(&queue), None)
        .handle(event(&records), None)
        .await
        .unwrap();
    assert_eq!(listed(&response), ["a", "b"]);

    let handler = handler_fn(|_m: Message, _ctx: Context| async { Err(HandlerError::retry("no")) });
    let strict = SqsLambda::new(
        Engine::new(handler, EngineConfig::default()),
        LambdaConfig::default().fail_invocation_when_all_fail(true),
        queue,
    );
    assert_eq!(
        strict.handle(event(&records), None).await.unwrap_err(),
        InvocationError::AllFailed { count: 2 }
    );
}

#[tokio::test]
async fn fixtures_round_trip_through_the_adapter() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
    for name in [
        "standard.json",
        "fifo.json",
        "all-fail.json",
        "empty.json",
        "deadline.json",
    ] {
        let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        let event: SqsEvent = serde_json::from_str(&text).unwrap();
        let again: SqsEvent =
            serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(event, again, "{name}");
    }
    let missing = std::fs::read_to_string(format!("{dir}/missing-message-id.json")).unwrap();
    let queue = Arc::new(FakeQueue::default());
    let error = adapter(queue, None)
        .handle(
            serde_json::from_str::<sqsrt_lambda::SqsRecords>(&missing).unwrap(),
            None,
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("record 1 of 2 has no messageId"));
}

#[tokio::test]
async fn fifo_records_behind_a_retry_share_its_delay_others_are_released() {
    let queue = Arc::new(FakeQueue::default());
    let lambda = adapter(Arc::clone(&queue), None);
    let records: Vec<serde_json::Value> = [
        ("a1", "g", "retry-30"),
        ("a2", "g", "ok"),
        ("b1", "h", "perm"),
        ("b2", "h", "ok"),
    ]
    .iter()
    .map(|(id, group, body)| {
        serde_json::json!({
            "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": group},
            "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:orders.fifo"
        })
    })
    .collect();
    let event: SqsEvent =
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
    let response = lambda.handle(event, None).await.unwrap();
    assert_eq!(listed(&response), ["a1", "a2", "b1", "b2"]);
    let mut entries: Vec<(String, u32)> = queue
        .visibility
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, e)| e.iter().map(|e| (e.receipt_handle.clone(), e.timeout_secs)))
        .collect();
    entries.sort();
    // b1 is permanent without a DLQ: left alone; b2 behind it is released at once.
    assert_eq!(
        entries,
        [
            ("rh-a1".to_owned(), 30),
            ("rh-a2".to_owned(), 30),
            ("rh-b2".to_owned(), 0)
        ]
    );
}

#[tokio::test]
async fn on_a_standard_queue_a_group_id_is_a_tenant_and_holds_nothing_back() {
    // SQS fair queues: a standard queue's records carry the tenant as their
    // group id. The first of five failing lists it alone (not all five), and
    // the rest ran.
    let queue = Arc::new(FakeQueue::default());
    let lambda = adapter(Arc::clone(&queue), None);
    let records: Vec<serde_json::Value> = ["retry-30", "ok", "ok", "ok", "ok"]
        .iter()
        .enumerate()
        .map(|(i, body)| {
            serde_json::json!({
                "messageId": format!("t{i}"), "receiptHandle": format!("rh-t{i}"), "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": "tenant-1"},
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:orders"
            })
        })
        .collect();
    let event: SqsEvent =
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
    let (response, detail) = lambda.handle_detailed(event, None).await.unwrap();
    assert_eq!(listed(&response), ["t0"]);
    assert!(
        detail[1..].iter().all(|r| r.outcome.is_success()),
        "{detail:?}"
    );
}
