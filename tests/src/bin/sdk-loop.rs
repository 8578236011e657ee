//! A hand-written aws-sdk-sqs consumer, as a team writes one without a
//! runtime: the baseline of the worker's CPU goal (at most a third of this
//! loop's CPU per message and at least 90 % of c/d, in the same run;
//! `worker-measure` runs both). One receive loop (up to 10 messages, 1 s
//! long poll, every message attribute), each message in a task of its own
//! under a semaphore of `--max-in-flight`, deleted one by one after its
//! handler. The handler is the `scripted` one's sleep
//! (`{"action":"sleep","ms":N}`, decoded with `serde_json`). One JSON line per
//! processed message on stdout (`{"outcome":"success","message_id":...}`),
//! as sqsrt's outcome lines, for the bench to count.
//!
//! `sdk-loop --queue-url URL [--max-in-flight N]` (AWS settings and
//! `AWS_ENDPOINT_URL` from the environment)

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use sqsrt_e2e::{flag_value, number_flag};
use tokio::sync::Semaphore;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let queue_url = flag_value(&args, "--queue-url").context("--queue-url URL")?;
    let max_in_flight = number_flag(&args, "--max-in-flight", 50)?;
    // The SDK's config loader with the HTTP client sqsrt builds (rustls on
    // ring): the comparison is of the loops, not of TLS stacks.
    let config = sqsrt_sqs::config_loader().load().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let permits = Arc::new(Semaphore::new(max_in_flight));
    loop {
        let received = match sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
        {
            Ok(received) => received,
            Err(error) => {
                eprintln!("receive failed: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        for message in received.messages.unwrap_or_default() {
            let permit = Arc::clone(&permits).acquire_owned().await?;
            let (sqs, queue_url) = (sqs.clone(), queue_url.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let body: serde_json::Value =
                    serde_json::from_str(message.body().unwrap_or("{}")).unwrap_or_default();
                if let Some(ms) = body["ms"].as_u64() {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                let deleted = sqs
                    .delete_message()
                    .queue_url(&queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await;
                if deleted.is_ok() {
                    let line = serde_json::json!({
                        "outcome": "success",
                        "message_id": message.message_id(),
                    });
                    let _ = writeln!(std::io::stdout().lock(), "{line}");
                }
            });
        }
    }
}
