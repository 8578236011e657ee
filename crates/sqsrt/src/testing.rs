//! The test kit (cargo feature `testing`, for `[dev-dependencies]`): build a
//! [`Message`] and a [`Context`] in a unit test, and run a handler over a
//! Lambda SQS event in-process, with no network, through the same decoder,
//! engine and settling rules as Lambda mode.
//!
//! ```
//! use sqsrt::prelude::*;
//! use sqsrt::testing::{self, EventBuilder};
//!
//! let handler = handler_fn(|m: Message, _ctx: Context| async move {
//!     match m.body() {
//!         "bad" => Err(HandlerError::permanent("bad body")),
//!         _ => Ok(()),
//!     }
//! });
//! let result = testing::run_event(handler, EventBuilder::new().record("1", "ok").record("2", "bad"))
//!     .expect("a valid event");
//! assert_eq!(result.failed_ids(), ["2"]);
//! assert_eq!(result.outcome("2").reason().as_deref(), Some("bad body"));
//! ```
//!
//! The SQS calls Lambda mode makes around the response (backoff visibility,
//! release, dead-letter copies) go nowhere here: each succeeds. With
//! [`Options::dlq`] a permanent failure counts as dead-lettered (not listed),
//! as with `--dlq-url`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsBatchResponse;
use base64::Engine as _;
use serde_json::{Map, Value, json};
use sqsrt_core::{AttributeValue, Context, Engine, EngineConfig, Handler, Message, Outcome};
use sqsrt_lambda::{LambdaConfig, SqsLambda, SqsRecords};
use sqsrt_sqs::{EntryFailure, OutgoingMessage, QueueArn, QueueClient, SqsError, VisibilityChange};
use tokio::time::Instant;

pub use sqsrt_lambda::{InvocationError, RecordResult};

/// The queue ARN of events built by [`EventBuilder`] unless told otherwise.
pub const DEFAULT_QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:sqsrt-test";

/// A context whose deadline is 20 seconds away (the default handler
/// timeout) and whose cancellation never fires.
#[must_use]
pub fn context() -> Context {
    context_with_timeout(Duration::from_secs(20))
}

/// A context whose deadline is `timeout` away.
#[must_use]
pub fn context_with_timeout(timeout: Duration) -> Context {
    Context::with_deadline(Instant::now() + timeout)
}

/// A message with `id` and `body`, received once; add a group, receive
/// count or attributes with [`Message`]'s `with_*` methods.
#[must_use]
pub fn message(id: &str, body: &str) -> Message {
    Message::new(id, body)
}

/// A Lambda SQS event as JSON bytes: from [`EventBuilder`], a string or a file.
#[derive(Debug, Clone)]
pub struct Event(Vec<u8>);

impl Event {
    /// An event from its JSON text.
    #[must_use]
    pub fn from_json(json: impl Into<Vec<u8>>) -> Self {
        Self(json.into())
    }

    /// An event from a JSON file (the fixtures `cargo lambda invoke --data-file` takes).
    ///
    /// # Errors
    ///
    /// When the file cannot be read.
    pub fn from_file(path: impl AsRef<Path>) -> std::io::Result<Self> {
        std::fs::read(path).map(Self)
    }

    /// The JSON bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<EventBuilder> for Event {
    fn from(builder: EventBuilder) -> Self {
        builder.build()
    }
}

impl From<&str> for Event {
    fn from(json: &str) -> Self {
        Self::from_json(json)
    }
}

/// Builds a Lambda SQS event the way the event source mapping shapes it
/// (every field a record carries; receipt handles, timestamps and sender are
/// made up).
#[derive(Debug, Clone)]
#[must_use]
pub struct EventBuilder {
    queue_arn: String,
    messages: Vec<Message>,
}

impl Default for EventBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBuilder {
    /// An empty event from [`DEFAULT_QUEUE_ARN`] (a standard queue).
    pub fn new() -> Self {
        Self {
            queue_arn: DEFAULT_QUEUE_ARN.to_owned(),
            messages: Vec::new(),
        }
    }

    /// The source queue's ARN; one ending in `.fifo` makes a FIFO event.
    pub fn queue_arn(mut self, arn: impl Into<String>) -> Self {
        self.queue_arn = arn.into();
        self
    }

    /// A record with `id` and `body`, received once.
    pub fn record(self, id: &str, body: &str) -> Self {
        self.message(Message::new(id, body))
    }

    /// A record carrying `message`: its group id, receive count, sent time
    /// and attributes.
    pub fn message(mut self, message: Message) -> Self {
        self.messages.push(message);
        self
    }

    /// The event's JSON.
    #[allow(clippy::missing_panics_doc)] // encoding a `serde_json::Value` cannot fail
    pub fn build(&self) -> Event {
        let region = self.queue_arn.split(':').nth(3).unwrap_or("us-east-1");
        let records: Vec<Value> = self
            .messages
            .iter()
            .map(|m| record_json(m, &self.queue_arn, region))
            .collect();
        let event = json!({ "Records": records });
        Event(serde_json::to_vec(&event).expect("a JSON value always encodes"))
    }
}

fn record_json(message: &Message, arn: &str, region: &str) -> Value {
    let sent_ms = message
        .sent_at()
        .unwrap_or_else(SystemTime::now)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut attributes = Map::new();
    attributes.insert(
        "ApproximateReceiveCount".into(),
        json!(message.receive_count().to_string()),
    );
    attributes.insert("SentTimestamp".into(), json!(sent_ms.to_string()));
    attributes.insert("SenderId".into(), json!("AIDAIENQZJOLO23YVJ4VO"));
    attributes.insert(
        "ApproximateFirstReceiveTimestamp".into(),
        json!(sent_ms.to_string()),
    );
    for (name, value) in message.attributes() {
        attributes.insert(name.into(), json!(value));
    }
    if let Some(group) = message.group_id() {
        attributes.insert("MessageGroupId".into(), json!(group));
    }
    let message_attributes: Map<String, Value> = message
        .message_attributes()
        .iter()
        .map(|(name, a)| {
            let (string, binary) = match &a.value {
                AttributeValue::String(s) => (json!(s), Value::Null),
                AttributeValue::Binary(b) => (
                    Value::Null,
                    json!(base64::engine::general_purpose::STANDARD.encode(b)),
                ),
            };
            let value = json!({
                "stringValue": string,
                "binaryValue": binary,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": a.data_type,
            });
            (name.to_owned(), value)
        })
        .collect();
    json!({
        "messageId": message.id(),
        "receiptHandle": format!("AQEB{}", message.id()),
        "body": message.body(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    })
}

/// How [`run_event_with`] runs the event.
#[derive(Debug, Clone)]
#[must_use]
pub struct Options {
    engine: EngineConfig,
    lambda: LambdaConfig,
    time_left: Duration,
}

impl Default for Options {
    /// The defaults of Lambda mode, no DLQ, 15 minutes before the deadline.
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            lambda: LambdaConfig::default(),
            time_left: Duration::from_secs(900),
        }
    }
}

impl Options {
    /// As with `--dlq-url`: permanent failures are dead-lettered (here: the
    /// send succeeds at once) and not listed.
    pub fn dlq(mut self) -> Self {
        self.lambda = self.lambda.dlq_url(Some(
            "https://sqs.us-east-1.amazonaws.com/123456789012/sqsrt-test-dlq".into(),
        ));
        self
    }

    /// Per-message timeout (`--handler-timeout-secs`).
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.engine = self.engine.handler_timeout(timeout);
        self
    }

    /// Time before the invocation deadline (default 15 minutes).
    pub fn time_left(mut self, time_left: Duration) -> Self {
        self.time_left = time_left;
        self
    }
}

/// What an invocation answered and what became of each record.
#[derive(Debug, Clone)]
pub struct BatchResult {
    /// The response Lambda would get.
    pub response: SqsBatchResponse,
    /// Each record, in event order.
    pub records: Vec<RecordResult>,
}

impl BatchResult {
    /// The ids in `batchItemFailures`, in order.
    #[must_use]
    pub fn failed_ids(&self) -> Vec<&str> {
        self.response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    /// The outcome of the record with `message_id`.
    ///
    /// # Panics
    ///
    /// When the event has no such record.
    #[must_use]
    pub fn outcome(&self, message_id: &str) -> &Outcome {
        &self
            .records
            .iter()
            .find(|r| r.message_id == message_id)
            .unwrap_or_else(|| panic!("no record {message_id:?} in the event"))
            .outcome
    }
}

/// Runs `handler` over `event` on a runtime of its own, as Lambda mode
/// would (defaults, no DLQ). Call it from a plain `#[test]`; inside an async
/// test use [`run_event_async`].
///
/// # Errors
///
/// [`InvocationError`] when the event is not an SQS event the runtime
/// accepts (the invocation would fail as a whole).
///
/// # Panics
///
/// When called inside an async runtime, or when no runtime can be built.
pub fn run_event<H: Handler>(
    handler: H,
    event: impl Into<Event>,
) -> Result<BatchResult, InvocationError> {
    run_event_with(handler, event, &Options::default())
}

/// [`run_event`] with [`Options`].
///
/// # Errors
///
/// As [`run_event`].
///
/// # Panics
///
/// As [`run_event`].
pub fn run_event_with<H: Handler>(
    handler: H,
    event: impl Into<Event>,
    options: &Options,
) -> Result<BatchResult, InvocationError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(run_event_async(handler, event, options))
}

/// [`run_event_with`] inside an async test.
///
/// # Errors
///
/// As [`run_event`].
pub async fn run_event_async<H: Handler>(
    handler: H,
    event: impl Into<Event>,
    options: &Options,
) -> Result<BatchResult, InvocationError> {
    let event = event.into();
    let lambda = SqsLambda::new(
        Engine::new(handler, options.engine),
        options.lambda.clone(),
        Arc::new(NoNetwork),
    );
    let records = SqsRecords::from_slice(event.as_bytes());
    let (response, records) = lambda
        .handle_detailed(records, Some(options.time_left))
        .await?;
    Ok(BatchResult { response, records })
}

/// A queue whose every call succeeds without leaving the process.
#[derive(Debug)]
struct NoNetwork;

impl QueueClient for NoNetwork {
    async fn queue_url(&self, arn: &QueueArn) -> Result<String, SqsError> {
        Ok(format!("https://sqs.invalid/{arn:?}"))
    }

    async fn change_visibility_batch(
        &self,
        _queue_url: &str,
        _entries: Vec<VisibilityChange>,
    ) -> Result<Vec<EntryFailure>, SqsError> {
        Ok(Vec::new())
    }

    async fn send_message(
        &self,
        _queue_url: &str,
        message: OutgoingMessage,
    ) -> Result<String, SqsError> {
        Ok(format!("dlq-copy-of-{}", message.body.len()))
    }
}

#[cfg(test)]
mod tests {
    use sqsrt_core::{HandlerError, ResultExt, handler_fn, json_fn};

    use super::*;

    fn scripted() -> impl Handler {
        handler_fn(|m: Message, _ctx: Context| async move {
            match m.body() {
                "retry" => Err(HandlerError::retry("later")),
                "perm" => Err(HandlerError::permanent("never")),
                "panic" => panic!("boom"),
                "parse" => {
                    m.body().parse::<u32>().permanent()?;
                    Ok(())
                }
                _ => Ok(()),
            }
        })
    }

    #[test]
    fn every_outcome_is_reported_with_the_response() {
        let event = EventBuilder::new()
            .record("a", "ok")
            .record("b", "retry")
            .record("c", "perm")
            .record("d", "panic")
            .record("e", "parse");
        let result = run_event(scripted(), event.clone()).unwrap();
        assert_eq!(result.failed_ids(), ["b", "c", "d", "e"]);
        assert!(result.outcome("a").is_success());
        assert!(result.outcome("b").is_retry());
        assert_eq!(result.outcome("c").reason().as_deref(), Some("never"));
        assert!(result.outcome("d").reason().unwrap().contains("boom"));
        assert_eq!(
            result.outcome("e").reason().as_deref(),
            Some("invalid digit found in string")
        );
        let with_dlq = run_event_with(scripted(), event, &Options::default().dlq()).unwrap();
        assert_eq!(
            with_dlq.failed_ids(),
            ["b", "d"],
            "permanent failures dead-lettered"
        );
        assert!(with_dlq.records[2].dead_lettered);
    }

    #[test]
    fn fifo_events_keep_group_order_and_attributes_reach_the_handler() {
        let handler = handler_fn(|m: Message, _ctx: Context| async move {
            assert_eq!(m.message_attributes()["tenant"].as_str(), Some("acme"));
            if m.body() == "fail" {
                return Err(HandlerError::retry("no"));
            }
            Ok(())
        });
        let msg = |id: &str, body: &str| {
            Message::new(id, body)
                .with_group("g")
                .with_message_attribute("tenant", sqsrt_core::MessageAttribute::string("acme"))
        };
        let event = EventBuilder::new()
            .queue_arn("arn:aws:sqs:eu-west-1:123456789012:orders.fifo")
            .message(msg("1", "ok"))
            .message(msg("2", "fail"))
            .message(msg("3", "ok"));
        let result = run_event(handler, event).unwrap();
        assert_eq!(result.failed_ids(), ["2", "3"]);
        assert!(matches!(result.outcome("3"), Outcome::Skipped { .. }));
    }

    #[test]
    fn typed_bodies_and_invalid_events() {
        #[derive(serde::Deserialize)]
        struct Order {
            qty: u32,
        }
        let handler = json_fn(|o: Order, _m: Message, _ctx: Context| async move {
            anyhow::ensure!(o.qty < 10, "too many");
            Ok(())
        });
        let event = EventBuilder::new()
            .record("1", r#"{"qty": 1}"#)
            .record("2", r#"{"qty": "x"}"#)
            .record("3", r#"{"qty": 11}"#);
        let result = run_event(handler, event).unwrap();
        assert_eq!(result.failed_ids(), ["2", "3"]);
        assert!(result.outcome("2").is_permanent());
        assert_eq!(result.outcome("3").reason().as_deref(), Some("too many"));
        let error = run_event(scripted(), r#"{"Records": [{"body": "x"}]}"#).unwrap_err();
        assert!(error.to_string().contains("no messageId"), "{error}");
    }

    #[test]
    fn envelopes_open_before_the_handler_and_s3_test_events_skip_it() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        #[derive(serde::Deserialize)]
        struct Order {
            qty: u32,
        }
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let sns = json_fn(|o: Order, _m: Message, _ctx: Context| async move {
            CALLS.fetch_add(1, Ordering::Relaxed);
            anyhow::ensure!(o.qty > 0, "empty");
            Ok(())
        })
        .envelope(crate::Sns);
        let note = |message: &str| {
            serde_json::json!({"Type": "Notification", "MessageId": "n", "Message": message})
                .to_string()
        };
        let event = EventBuilder::new()
            .record("1", &note(r#"{"qty": 1}"#))
            .record("2", &note(r#"{"qty": "one"}"#))
            .record("3", r#"{"qty": 1}"#);
        let result = run_event(sns, event).unwrap();
        assert_eq!(result.failed_ids(), ["2", "3"]);
        assert!(
            result
                .outcome("2")
                .reason()
                .unwrap()
                .starts_with("SNS Message does not decode at qty")
        );
        assert!(
            result
                .outcome("3")
                .reason()
                .unwrap()
                .contains("missing field `Type`")
        );
        assert_eq!(CALLS.load(Ordering::Relaxed), 1);

        let s3 = json_fn(
            |_records: serde_json::Value, _m: Message, _ctx: Context| async move {
                Err::<(), _>(HandlerError::permanent("the handler ran"))
            },
        )
        .envelope(crate::S3);
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#;
        let result = run_event(
            s3,
            EventBuilder::new()
                .record("t", test_event)
                .record("r", r#"{"Records":[]}"#),
        )
        .unwrap();
        assert_eq!(
            result.failed_ids(),
            ["r"],
            "the test event succeeds without the handler"
        );
    }

    #[tokio::test]
    async fn the_async_form_runs_inside_a_test_runtime() {
        let result = run_event_async(
            scripted(),
            EventBuilder::new().record("1", "ok"),
            &Options::default(),
        )
        .await
        .unwrap();
        assert!(result.failed_ids().is_empty());
        let ctx = context_with_timeout(Duration::from_secs(5));
        assert!(ctx.remaining() <= Duration::from_secs(5) && !ctx.cancellation().is_cancelled());
        assert_eq!(message("1", "b").receive_count(), 1);
    }
}
