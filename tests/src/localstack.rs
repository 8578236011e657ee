//! The real SQS-compatible server the worker suites run against: LocalStack,
//! started by `scripts/test.sh` on a loopback port (`SQSRT_LOCALSTACK_ENDPOINT`),
//! spoken to over the real SQS protocol with aws-sdk-sqs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};

/// The endpoint LocalStack serves on.
///
/// # Errors
///
/// When `SQSRT_LOCALSTACK_ENDPOINT` is not set: these suites never skip,
/// they say how to run them.
pub fn endpoint() -> anyhow::Result<String> {
    std::env::var("SQSRT_LOCALSTACK_ENDPOINT").context(
        "SQSRT_LOCALSTACK_ENDPOINT is not set: run scripts/test.sh, which installs and starts LocalStack on 127.0.0.1",
    )
}

/// Environment for a process talking to LocalStack.
///
/// # Errors
///
/// As [`endpoint`].
pub fn aws_env() -> anyhow::Result<Vec<(&'static str, String)>> {
    Ok(vec![
        ("AWS_ENDPOINT_URL", endpoint()?),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ])
}

/// An SQS client for LocalStack.
///
/// # Errors
///
/// As [`endpoint`].
pub async fn client() -> anyhow::Result<Client> {
    let config = sqsrt_sqs::config_loader()
        .endpoint_url(endpoint()?)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "sqsrt-e2e",
        ))
        .load()
        .await;
    Ok(Client::new(&config))
}

/// A source queue and its dead-letter queue, with unique names (LocalStack
/// has no reset).
#[derive(Debug, Clone)]
pub struct Queues {
    /// The source queue.
    pub url: String,
    /// Its dead-letter queue (redrive target).
    pub dlq_url: String,
}

/// Creates `<prefix>-<unique>` (FIFO when `fifo`) with `visibility_secs` and a
/// redrive policy to a fresh dead-letter queue after `max_receive` receives.
///
/// # Errors
///
/// When SQS refuses.
pub async fn create_queues(
    sqs: &Client,
    prefix: &str,
    fifo: bool,
    visibility_secs: u32,
    max_receive: u32,
) -> anyhow::Result<Queues> {
    static N: AtomicU32 = AtomicU32::new(0);
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() % 1_000_000_000;
    let base = format!(
        "{prefix}-{}-{stamp}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let suffix = if fifo { ".fifo" } else { "" };
    let mut attrs = HashMap::new();
    if fifo {
        attrs.insert(QueueAttributeName::FifoQueue, "true".to_owned());
    }
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{base}-dlq{suffix}"))
        .set_attributes(Some(attrs.clone()))
        .send()
        .await?
        .queue_url
        .context("no DLQ URL")?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("no DLQ ARN")?;
    attrs.insert(
        QueueAttributeName::VisibilityTimeout,
        visibility_secs.to_string(),
    );
    attrs.insert(
        QueueAttributeName::RedrivePolicy,
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive}"}}"#),
    );
    let url = sqs
        .create_queue()
        .queue_name(format!("{base}{suffix}"))
        .set_attributes(Some(attrs))
        .send()
        .await?
        .queue_url
        .context("no queue URL")?;
    Ok(Queues { url, dlq_url })
}

/// Sends `bodies` (groups: [`send_grouped`]) in batches of
/// ten; returns the message ids in order.
///
/// # Errors
///
/// When a send fails.
pub async fn send(sqs: &Client, url: &str, bodies: &[String]) -> anyhow::Result<Vec<String>> {
    let items: Vec<(Option<&str>, &str)> = bodies.iter().map(|b| (None, b.as_str())).collect();
    send_entries(sqs, url, &items, false).await
}

/// Sends `(group, body)` pairs in order: to a FIFO queue (`fifo`, each with
/// a deduplication id), or to a standard queue, where the group id is a
/// tenant (SQS fair queues).
///
/// # Errors
///
/// When a send fails.
pub async fn send_grouped(
    sqs: &Client,
    url: &str,
    items: &[(&str, String)],
    fifo: bool,
) -> anyhow::Result<Vec<String>> {
    let items: Vec<(Option<&str>, &str)> =
        items.iter().map(|(g, b)| (Some(*g), b.as_str())).collect();
    send_entries(sqs, url, &items, fifo).await
}

async fn send_entries(
    sqs: &Client,
    url: &str,
    items: &[(Option<&str>, &str)],
    fifo: bool,
) -> anyhow::Result<Vec<String>> {
    static DEDUP: AtomicU32 = AtomicU32::new(0);
    let mut ids = Vec::with_capacity(items.len());
    for chunk in items.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, (group, body))| {
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(*body)
                    .set_message_group_id(group.map(str::to_owned))
                    .set_message_deduplication_id(group.filter(|_| fifo).map(|_| {
                        format!(
                            "{}-{}",
                            std::process::id(),
                            DEDUP.fetch_add(1, Ordering::Relaxed)
                        )
                    }));
                entry.build().map_err(anyhow::Error::from)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let out = sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await?;
        if !out.failed.is_empty() {
            bail!("send failed: {:?}", out.failed);
        }
        let mut sent = out.successful;
        sent.sort_by_key(|s| s.id.parse::<usize>().unwrap_or(usize::MAX));
        ids.extend(sent.into_iter().map(|s| s.message_id));
    }
    Ok(ids)
}

/// `(visible, in flight)` from `GetQueueAttributes`.
///
/// # Errors
///
/// When SQS refuses.
pub async fn depth(sqs: &Client, url: &str) -> anyhow::Result<(u64, u64)> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let get = |k: &QueueAttributeName| attrs.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((
        get(&QueueAttributeName::ApproximateNumberOfMessages),
        get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}

/// Waits until the queue holds nothing, visible or in flight.
///
/// # Errors
///
/// When it does not empty within `timeout`.
pub async fn wait_empty(sqs: &Client, url: &str, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let (visible, in_flight) = depth(sqs, url).await?;
        if visible == 0 && in_flight == 0 {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!(
                "{url} still holds {visible} visible and {in_flight} in-flight messages after {timeout:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A message read back from a queue.
#[derive(Debug, Clone)]
pub struct Drained {
    /// Body.
    pub body: String,
    /// String message attributes.
    pub attributes: HashMap<String, String>,
    /// `ApproximateReceiveCount`.
    pub receive_count: u32,
}

/// Receives and deletes everything in `url` until `expect` messages were read
/// or `timeout` passes.
///
/// # Errors
///
/// When SQS refuses.
pub async fn drain(
    sqs: &Client,
    url: &str,
    expect: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Drained>> {
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < expect && start.elapsed() < timeout {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?;
        for m in received.messages.unwrap_or_default() {
            if let Some(receipt) = &m.receipt_handle {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(receipt)
                    .send()
                    .await?;
            }
            out.push(Drained {
                body: m.body.unwrap_or_default(),
                attributes: m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| v.string_value.map(|s| (k, s)))
                    .collect(),
                receive_count: m
                    .attributes
                    .and_then(|a| {
                        a.get(&MessageSystemAttributeName::ApproximateReceiveCount)
                            .cloned()
                    })
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
            });
        }
    }
    Ok(out)
}

/// The messages in `url` as `(body, sqsrt.reason)` (empty when absent), each
/// once, sorted; read by ten receives with a visibility timeout of 0, so
/// they stay (a queue of up to ~100 messages in LocalStack).
///
/// # Errors
///
/// When a receive fails.
pub async fn peek_with_reasons(sqs: &Client, url: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut found = std::collections::HashMap::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_attribute_names("All")
            .send()
            .await?;
        for m in out.messages.unwrap_or_default() {
            let reason = m
                .message_attributes
                .as_ref()
                .and_then(|a| a.get("sqsrt.reason"))
                .and_then(|a| a.string_value.clone())
                .unwrap_or_default();
            found.insert(
                m.message_id.unwrap_or_default(),
                (m.body.unwrap_or_default(), reason),
            );
        }
    }
    let mut all: Vec<(String, String)> = found.into_values().collect();
    all.sort();
    Ok(all)
}
