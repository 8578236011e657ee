//! An emulator of Lambda's SQS event source mapping, so that Lambda mode can
//! be proven against real SQS behaviour (LocalStack over the SQS protocol):
//! it polls a queue as the mapping does, builds each event as the mapping
//! does, invokes the function through a Runtime API ([`RuntimeApi`]), and
//! deletes what the function did not list in `batchItemFailures`.
//!
//! What it follows of the mapping (AWS Lambda developer guide, "Using Lambda
//! with Amazon SQS"): receives of up to 10 with all system and message
//! attributes, gathered up to the batch size or until the batching window
//! closes; the queue's own visibility timeout (the mapping sets none); FIFO:
//! SQS hands out a group's messages in order and one batch of a group at a
//! time, and so does this one poller. Each record carries `messageId`,
//! `receiptHandle`, `body`, `attributes` (`ApproximateReceiveCount`,
//! `SentTimestamp`, `SenderId`, `ApproximateFirstReceiveTimestamp`, and on
//! FIFO `SequenceNumber`, `MessageGroupId`, `MessageDeduplicationId`;
//! `AWSTraceHeader` when present), `messageAttributes` (`stringValue`,
//! `binaryValue` in base64, empty list values, `dataType`), `md5OfBody`,
//! `md5OfMessageAttributes` when there are attributes, `eventSource`,
//! `eventSourceARN` and `awsRegion`. With `ReportBatchItemFailures`: records
//! not listed are deleted; an entry naming no record of the batch, an error
//! or no answer in time fails the whole batch, which returns after the
//! visibility timeout.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::runtime_api::{Reply, RuntimeApi};

/// The mapping's settings.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The source queue.
    pub queue_url: String,
    /// Records per invocation: 1-10,000 (1-10 on FIFO).
    pub batch_size: usize,
    /// How long to gather records before invoking (`MaximumBatchingWindowInSeconds`).
    pub batching_window: Duration,
    /// The function's timeout: each invocation's deadline.
    pub function_timeout: Duration,
}

/// What the emulator did, for the suites' tables.
#[derive(Debug, Default)]
pub struct Stats {
    /// Invocations made.
    pub invocations: AtomicUsize,
    /// Records handed to the function.
    pub records: AtomicUsize,
    /// Records deleted after an answer that did not list them.
    pub deleted: AtomicUsize,
    /// Whole batches returned (error, no answer in time, a bad entry).
    pub batches_failed: AtomicUsize,
}

/// A mapping polling in the background ([`EventSourceMapping::start`]).
pub struct Emulator {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// What it did so far.
    pub stats: Arc<Stats>,
}

impl Emulator {
    /// Stops polling after the receive or invocation in progress.
    ///
    /// # Errors
    ///
    /// What stopped the poller, if it failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await?
    }
}

/// One mapping: a queue, a function behind a Runtime API, and what it did.
pub struct EventSourceMapping {
    sqs: Client,
    api: Arc<RuntimeApi>,
    mapping: Mapping,
    arn: String,
    region: String,
    /// What it did so far.
    pub stats: Arc<Stats>,
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoked {
    /// Records in the invocation's event.
    pub records: usize,
    /// The ids the response listed (not deleted); `None`: the whole batch
    /// failed and returns after the visibility timeout.
    pub listed: Option<HashSet<String>>,
    /// The body the function posted to `/error`, when it failed the invocation.
    pub error: Option<String>,
}

impl EventSourceMapping {
    /// A mapping of `mapping.queue_url` to the function polling `api`.
    ///
    /// # Errors
    ///
    /// When the queue's ARN cannot be read.
    pub async fn new(sqs: Client, api: Arc<RuntimeApi>, mapping: Mapping) -> anyhow::Result<Self> {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&mapping.queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .unwrap_or_default();
        let arn = attrs
            .get(&QueueAttributeName::QueueArn)
            .cloned()
            .context("the queue has no QueueArn")?;
        let region = arn.split(':').nth(3).unwrap_or("us-east-1").to_owned();
        Ok(Self {
            sqs,
            api,
            mapping,
            arn,
            region,
            stats: Arc::new(Stats::default()),
        })
    }

    /// Gathers one batch and, if it is not empty, invokes the function with
    /// it and deletes what the answer does not list.
    ///
    /// # Errors
    ///
    /// When an SQS call of the emulator fails.
    pub async fn poll_once(&self) -> anyhow::Result<Option<Invoked>> {
        let batch = self.gather().await?;
        if batch.is_empty() {
            return Ok(None);
        }
        let records = batch.len();
        let (listed, error) = self.invoke(batch).await?;
        Ok(Some(Invoked {
            records,
            listed,
            error,
        }))
    }

    /// Polls in the background until [`Emulator::stop`].
    #[must_use]
    pub fn start(self) -> Emulator {
        let stop = CancellationToken::new();
        let stats = Arc::clone(&self.stats);
        let task = tokio::spawn(self.run(stop.clone()));
        Emulator { stop, task, stats }
    }

    /// Gathers and invokes until `stop`. A receive is never abandoned
    /// (SQS would still hand it messages): `stop` is seen between receives,
    /// which wait at most a second while nothing is gathered.
    async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        while !stop.is_cancelled() {
            self.poll_once().await?;
        }
        Ok(())
    }

    /// Receives up to the batch size or until the batching window closes;
    /// empty when a first receive brought nothing.
    async fn gather(&self) -> anyhow::Result<Vec<Message>> {
        let mut batch: Vec<Message> = Vec::new();
        let window_ends = Instant::now() + self.mapping.batching_window;
        loop {
            let room = (self.mapping.batch_size - batch.len()).min(10);
            let left = window_ends.saturating_duration_since(Instant::now());
            let wait = if batch.is_empty() {
                1
            } else {
                left.as_secs().clamp(1, 20)
            };
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.mapping.queue_url)
                .max_number_of_messages(i32::try_from(room)?)
                .wait_time_seconds(i32::try_from(wait)?)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await?;
            batch.extend(out.messages.unwrap_or_default());
            if batch.is_empty()
                || batch.len() >= self.mapping.batch_size
                || Instant::now() >= window_ends
            {
                return Ok(batch);
            }
        }
    }

    async fn invoke(
        &self,
        batch: Vec<Message>,
    ) -> anyhow::Result<(Option<HashSet<String>>, Option<String>)> {
        let event = event(&batch, &self.arn, &self.region);
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        self.stats.records.fetch_add(batch.len(), Ordering::Relaxed);
        let id = self
            .api
            .queue(event.to_string(), self.mapping.function_timeout);
        // A little past the deadline: the function's own answer, or none.
        let answer = self
            .api
            .answer(&id, self.mapping.function_timeout + Duration::from_secs(2))
            .await;
        let (listed, error) = match answer.map(|a| a.reply) {
            Ok(Reply::Response(text)) => (listed(&text, &batch), None),
            Ok(Reply::Error(error)) => (None, Some(error)),
            Err(_) => (None, None),
        };
        let Some(listed) = listed else {
            self.stats.batches_failed.fetch_add(1, Ordering::Relaxed);
            return Ok((None, error));
        };
        let done: Vec<(String, String)> = batch
            .iter()
            .filter_map(|m| Some((m.message_id.clone()?, m.receipt_handle.clone()?)))
            .filter(|(id, _)| !listed.contains(id))
            .collect();
        for chunk in done.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (_, receipt))| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .map_err(anyhow::Error::from)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let out = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.mapping.queue_url)
                .set_entries(Some(entries))
                .send()
                .await?;
            self.stats
                .deleted
                .fetch_add(out.successful.len(), Ordering::Relaxed);
        }
        Ok((Some(listed), None))
    }
}

/// The ids a response lists, or `None` when the whole batch fails: a body
/// that is not a batch response, or an entry naming no record of the batch
/// (what Lambda does with an empty, null or unknown `itemIdentifier`).
fn listed(text: &str, batch: &[Message]) -> Option<HashSet<String>> {
    let response: Value = serde_json::from_str(text).ok()?;
    let ids: HashSet<&str> = batch
        .iter()
        .filter_map(|m| m.message_id.as_deref())
        .collect();
    let mut listed = HashSet::new();
    match response.get("batchItemFailures") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let id = item.get("itemIdentifier")?.as_str()?;
                if !ids.contains(id) {
                    return None;
                }
                listed.insert(id.to_owned());
            }
        }
        Some(_) => return None,
    }
    Some(listed)
}

/// The event the mapping sends for `batch`.
#[must_use]
pub fn event(batch: &[Message], arn: &str, region: &str) -> Value {
    let records: Vec<Value> = batch.iter().map(|m| record(m, arn, region)).collect();
    json!({ "Records": records })
}

fn record(m: &Message, arn: &str, region: &str) -> Value {
    let mut attributes = Map::new();
    for (name, value) in m.attributes.iter().flatten() {
        attributes.insert(name.as_str().to_owned(), json!(value));
    }
    let mut message_attributes = Map::new();
    for (name, a) in m.message_attributes.iter().flatten() {
        let mut value = json!({
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": a.data_type,
        });
        if let Some(s) = &a.string_value {
            value["stringValue"] = json!(s);
        }
        if let Some(b) = &a.binary_value {
            value["binaryValue"] =
                json!(base64::engine::general_purpose::STANDARD.encode(b.as_ref()));
        }
        message_attributes.insert(name.clone(), value);
    }
    let mut record = json!({
        "messageId": m.message_id,
        "receiptHandle": m.receipt_handle,
        "body": m.body.as_deref().unwrap_or_default(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": m.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    });
    if let Some(md5) = &m.md5_of_message_attributes {
        record["md5OfMessageAttributes"] = json!(md5);
    }
    record
}
