//! The settler against a scripted fake queue, for the cases a real server
//! cannot be made to produce: expired receipt handles, partly refused delete
//! batches, failing dead-letter sends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Held, Settlement, Settler};
use crate::errors::ErrorLog;
use crate::heartbeat::InFlight;
use crate::metrics::Metrics;
use sqsrt_core::{Message, Outcome, RetryPolicy, SkipReason};
use sqsrt_sqs::{
    EntryFailure, OutgoingMessage, QueueArn, QueueAttributes, QueueClient, ReceiveOutput,
    ReceiveRequest, SqsError, SqsErrorKind, VisibilityChange, WorkerQueue,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Records calls; answers deletes from a script of per-call refusals.
#[derive(Default)]
struct FakeQueue {
    deleted: Mutex<Vec<String>>,
    delete_calls: Mutex<usize>,
    /// Per delete call: receipt handles to refuse, with the code.
    refusals: Mutex<VecDeque<Vec<(String, &'static str)>>>,
    visibility: Mutex<Vec<(String, u32)>>,
    sent: Mutex<Vec<OutgoingMessage>>,
    fail_sends: bool,
}

fn error(operation: &'static str) -> SqsError {
    SqsError {
        operation,
        kind: SqsErrorKind::Transport,
        code: None,
        message: "connection reset".into(),
    }
}

impl QueueClient for FakeQueue {
    async fn queue_url(&self, _arn: &QueueArn) -> Result<String, SqsError> {
        Ok("q".into())
    }

    async fn change_visibility_batch(
        &self,
        _url: &str,
        entries: Vec<VisibilityChange>,
    ) -> Result<Vec<EntryFailure>, SqsError> {
        let mut v = self.visibility.lock().unwrap();
        v.extend(
            entries
                .into_iter()
                .map(|e| (e.receipt_handle, e.timeout_secs)),
        );
        Ok(Vec::new())
    }

    async fn send_message(&self, _url: &str, message: OutgoingMessage) -> Result<String, SqsError> {
        if self.fail_sends {
            return Err(error("SendMessage"));
        }
        self.sent.lock().unwrap().push(message);
        Ok("dlq-id".into())
    }
}

impl WorkerQueue for FakeQueue {
    async fn receive(
        &self,
        _url: &str,
        _request: ReceiveRequest,
    ) -> Result<ReceiveOutput, SqsError> {
        Ok(ReceiveOutput::default())
    }

    async fn delete_batch(
        &self,
        _url: &str,
        entries: Vec<(String, String)>,
    ) -> Result<Vec<EntryFailure>, SqsError> {
        *self.delete_calls.lock().unwrap() += 1;
        let refuse = self
            .refusals
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_default();
        let mut failures = Vec::new();
        for (id, receipt) in entries {
            match refuse.iter().find(|(r, _)| *r == receipt) {
                Some((_, code)) => failures.push(EntryFailure {
                    id,
                    code: (*code).to_owned(),
                    message: "refused".into(),
                }),
                None => self.deleted.lock().unwrap().push(receipt),
            }
        }
        Ok(failures)
    }

    async fn queue_attributes(&self, _url: &str) -> Result<QueueAttributes, SqsError> {
        Ok(QueueAttributes {
            visibility_timeout: Duration::from_secs(30),
            redrive_policy: None,
            fifo: false,
        })
    }
}

fn settlement(slots: &Arc<Semaphore>, id: &str, outcome: Outcome) -> Settlement {
    Settlement {
        held: Held {
            key: 0,
            message_id: id.to_owned(),
            receipt_handle: format!("rh-{id}"),
            receive_count: 1,
            in_group: false,
            copy: Some(Message::new(id, "body")),
            slot: Arc::clone(slots).try_acquire_owned().unwrap(),
        },
        outcome,
        elapsed: Some(Duration::from_millis(1)),
    }
}

/// Runs a settler (4 s backoff) over everything already in `rx`.
async fn run_settler(
    queue: Arc<FakeQueue>,
    dlq: Option<&str>,
    metrics: Arc<Metrics>,
    rx: tokio::sync::mpsc::UnboundedReceiver<Settlement>,
) {
    let close = CancellationToken::new();
    close.cancel();
    Settler {
        queue,
        queue_url: "q".into(),
        dlq_url: dlq.map(str::to_owned),
        retry: RetryPolicy::new(Duration::from_secs(4), Duration::from_secs(4)).unwrap(),
        metrics,
        in_flight: Arc::new(InFlight::default()),
        abandoned: CancellationToken::new(),
        errors: Arc::new(ErrorLog::default()),
    }
    .run(rx, close)
    .await;
}

async fn settle(
    queue: Arc<FakeQueue>,
    dlq: Option<&str>,
    outcomes: Vec<(&str, Outcome)>,
) -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::default());
    let slots = Arc::new(Semaphore::new(100));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    metrics.received(outcomes.len());
    for (id, outcome) in outcomes {
        tx.send(settlement(&slots, id, outcome)).unwrap();
    }
    run_settler(queue, dlq, Arc::clone(&metrics), rx).await;
    assert_eq!(
        slots.available_permits(),
        100,
        "every slot is freed once settled"
    );
    metrics
}

fn retry() -> Outcome {
    Outcome::Retry {
        reason: "later".into(),
        delay: None,
    }
}

#[tokio::test(start_paused = true)]
async fn only_successes_are_deleted_and_failures_are_retimed() {
    let queue = Arc::new(FakeQueue::default());
    let skipped = Outcome::Skipped {
        reason: SkipReason::Shutdown,
    };
    let permanent = Outcome::Permanent {
        reason: "bad".into(),
    };
    settle(
        Arc::clone(&queue),
        None,
        vec![
            ("ok", Outcome::Success),
            ("r", retry()),
            ("s", skipped),
            ("p", permanent),
        ],
    )
    .await;
    assert_eq!(*queue.deleted.lock().unwrap(), ["rh-ok"]);
    let mut v = queue.visibility.lock().unwrap().clone();
    v.sort();
    // The retry gets its backoff (4 s, jittered into [2, 4]); the skipped one is released.
    assert_eq!(v[0].0, "rh-r");
    assert!((2..=4).contains(&v[0].1));
    assert_eq!(v[1], ("rh-s".to_owned(), 0));
    assert_eq!(
        v.len(),
        2,
        "a permanent failure without DLQ is left to the redrive policy"
    );
}

#[tokio::test(start_paused = true)]
async fn partly_refused_delete_batch_is_retried_until_deleted() {
    let queue = Arc::new(FakeQueue::default());
    queue.refusals.lock().unwrap().extend([
        vec![("rh-b".to_owned(), "InternalError")],
        vec![("rh-b".to_owned(), "InternalError")],
    ]);
    settle(
        Arc::clone(&queue),
        None,
        vec![("a", Outcome::Success), ("b", Outcome::Success)],
    )
    .await;
    let mut deleted = queue.deleted.lock().unwrap().clone();
    deleted.sort();
    assert_eq!(deleted, ["rh-a", "rh-b"]);
    assert_eq!(*queue.delete_calls.lock().unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn expired_receipt_handle_is_logged_not_retried() {
    let queue = Arc::new(FakeQueue::default());
    queue
        .refusals
        .lock()
        .unwrap()
        .push_back(vec![("rh-a".to_owned(), "ReceiptHandleIsInvalid")]);
    settle(Arc::clone(&queue), None, vec![("a", Outcome::Success)]).await;
    assert!(queue.deleted.lock().unwrap().is_empty());
    assert_eq!(*queue.delete_calls.lock().unwrap(), 1, "not tried again");
}

#[tokio::test(start_paused = true)]
async fn dead_lettered_then_deleted_and_a_failed_send_deletes_nothing() {
    let queue = Arc::new(FakeQueue::default());
    let metrics = settle(
        Arc::clone(&queue),
        Some("dlq"),
        vec![(
            "p",
            Outcome::Permanent {
                reason: "bad".into(),
            },
        )],
    )
    .await;
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
    assert_eq!(*queue.deleted.lock().unwrap(), ["rh-p"]);
    assert!(metrics.encode().contains("sqsrt_dlq_sends_total 1"));

    let failing = Arc::new(FakeQueue {
        fail_sends: true,
        ..FakeQueue::default()
    });
    let metrics = settle(
        Arc::clone(&failing),
        Some("dlq"),
        vec![(
            "p",
            Outcome::Permanent {
                reason: "bad".into(),
            },
        )],
    )
    .await;
    assert!(
        failing.deleted.lock().unwrap().is_empty(),
        "never deleted without a stored copy"
    );
    assert_eq!(
        failing.visibility.lock().unwrap().len(),
        1,
        "retried with backoff instead"
    );
    assert!(
        metrics
            .encode()
            .contains(r#"sqsrt_messages_processed_total{outcome="retry"} 1"#)
    );
}

#[tokio::test(start_paused = true)]
async fn group_mates_of_a_retried_fifo_message_share_its_delay() {
    let queue = Arc::new(FakeQueue::default());
    let metrics = Arc::new(Metrics::default());
    let slots = Arc::new(Semaphore::new(10));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut failed = settlement(&slots, "a1", retry());
    failed.held.in_group = true;
    let mut behind = settlement(
        &slots,
        "a2",
        Outcome::Skipped {
            reason: SkipReason::GroupFailed {
                failed_message_id: "a1".into(),
            },
        },
    );
    behind.held.in_group = true;
    tx.send(failed).unwrap();
    tx.send(behind).unwrap();
    run_settler(Arc::clone(&queue), None, metrics, rx).await;
    let v = queue.visibility.lock().unwrap().clone();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].1, v[1].1, "{v:?}");
    assert!(v[0].1 > 0);
}
