//! Lambda mode on real SQS behaviour: LocalStack queues, the event source
//! mapping emulator (`sqsrt_e2e::esm`) polling them and building events as
//! the mapping does, the release `sqsrt` serving the Runtime API stand-in
//! and making its own SQS calls (backoff, release, dead-letter copies) with
//! the real receipt handles. Every wait is bounded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
};
use sqsrt_e2e::esm::{EventSourceMapping, Mapping};
use sqsrt_e2e::function_proc::FunctionProc;
use sqsrt_e2e::localstack::{self, Queues};
use sqsrt_e2e::runtime_api::RuntimeApi;
use sqsrt_e2e::worker_proc::{Processed, bodies, until};

fn mapping(queue_url: &str, batch_size: usize, timeout_secs: u64) -> Mapping {
    Mapping {
        queue_url: queue_url.to_owned(),
        batch_size,
        batching_window: Duration::ZERO,
        function_timeout: Duration::from_secs(timeout_secs),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulated_event_has_every_field_of_the_mapping_and_sqsrt_takes_it() -> anyhow::Result<()>
{
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "esm-fields", false, 30, 5).await?;
    sqs.send_message()
        .queue_url(&url)
        .message_body(r#"{"action":"ok"}"#)
        .message_attributes(
            "s",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("text")
                .build()?,
        )
        .message_attributes(
            "n",
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value("7")
                .build()?,
        )
        .message_attributes(
            "b",
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(Blob::new(vec![0, 1, 2]))
                .build()?,
        )
        .message_system_attributes(
            MessageSystemAttributeNameForSends::AwsTraceHeader,
            MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
                .build()?,
        )
        .send()
        .await?;
    let out = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(5)
        .visibility_timeout(0)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await?;
    let batch = out.messages.unwrap_or_default();
    anyhow::ensure!(batch.len() == 1, "received {batch:?}");
    let arn = format!(
        "arn:aws:sqs:us-east-1:000000000000:{}",
        url.rsplit('/').next().unwrap_or("")
    );
    let event = sqsrt_e2e::esm::event(&batch, &arn, "us-east-1");
    let record = &event["Records"][0];
    for field in [
        "messageId",
        "receiptHandle",
        "body",
        "md5OfBody",
        "md5OfMessageAttributes",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    ] {
        assert!(record[field].is_string(), "{field} in {record}");
    }
    for attribute in [
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
        "AWSTraceHeader",
    ] {
        assert!(
            record["attributes"][attribute].is_string(),
            "{attribute} in {record}"
        );
    }
    assert_eq!(record["messageAttributes"]["s"]["stringValue"], "text");
    assert_eq!(record["messageAttributes"]["n"]["dataType"], "Number");
    assert_eq!(record["messageAttributes"]["b"]["binaryValue"], "AAEC");
    assert_eq!(
        record["messageAttributes"]["b"]["stringListValues"],
        serde_json::json!([])
    );

    // sqsrt answers it: not listed, so the mapping deletes it.
    let api = Arc::new(RuntimeApi::start().await?);
    let _function = FunctionProc::start(&api, &[])?;
    let esm = EventSourceMapping::new(sqs.clone(), Arc::clone(&api), mapping(&url, 10, 10)).await?;
    let invoked = esm.poll_once().await?.context("the message was received")?;
    assert_eq!(invoked.listed.map(|l| l.len()), Some(0));
    localstack::wait_empty(&sqs, &url, Duration::from_secs(10)).await?;
    Ok(())
}

/// Backoff with real receipt handles (a failed record returns after its
/// 1 s backoff, not the queue's 30 s), dead-letter copies with reasons, and
/// SQS's own redrive after `maxReceiveCount` for a record that always fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_dead_letter_copies_and_redrive_on_real_sqs() -> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues {
        url,
        dlq_url: redrive,
    } = localstack::create_queues(&sqs, "esm-settle", false, 30, 3).await?;
    let Queues { url: sqsrt_dlq, .. } =
        localstack::create_queues(&sqs, "esm-copies", false, 30, 5).await?;
    let mut sent = localstack::send(&sqs, &url, &bodies(4, r#"{"action":"ok"}"#)).await?;
    let recover =
        localstack::send(&sqs, &url, &[r#"{"action":"fail","times":1}"#.to_owned()]).await?;
    let reject = localstack::send(
        &sqs,
        &url,
        &[r#"{"action":"reject","reason":"unknown SKU"}"#.to_owned()],
    )
    .await?;
    let forever = localstack::send(&sqs, &url, &[r#"{"action":"fail"}"#.to_owned()]).await?;
    sent.extend(recover.iter().cloned());

    let api = Arc::new(RuntimeApi::start().await?);
    let function = FunctionProc::start(
        &api,
        &[
            ("SQSRT_DLQ_URL", sqsrt_dlq.as_str()),
            ("SQSRT_RETRY_BASE_SECS", "1"),
            ("SQSRT_RETRY_MAX_SECS", "1"),
        ],
    )?;
    let esm = EventSourceMapping::new(sqs.clone(), Arc::clone(&api), mapping(&url, 10, 10))
        .await?
        .start();
    let start = Instant::now();
    let succeeded = |p: &[Processed], id: &str| {
        p.iter()
            .any(|p| p.message_id == id && p.outcome == "success")
    };
    until(
        "the recovering record succeeded",
        Duration::from_secs(25),
        || Ok(succeeded(&function.processed(), &recover[0])),
    )
    .await?;
    let recovered_after = start.elapsed();
    until(
        "the queue emptied by redrive",
        Duration::from_secs(30),
        || {
            Ok(function
                .processed()
                .iter()
                .filter(|p| p.message_id == forever[0])
                .count()
                >= 3)
        },
    )
    .await?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(15)).await?;
    esm.stop().await?;

    let processed = function.processed();
    for id in &sent {
        assert!(succeeded(&processed, id), "{id} succeeded: {processed:?}");
    }
    assert!(
        recovered_after < Duration::from_secs(30),
        "the failed record came back after its backoff ({recovered_after:?}), before the queue's 30 s visibility"
    );
    let copies = localstack::peek_with_reasons(&sqs, &sqsrt_dlq).await?;
    assert_eq!(
        copies,
        [(
            r#"{"action":"reject","reason":"unknown SKU"}"#.to_owned(),
            "unknown SKU".to_owned()
        )],
        "the rejected record's copy, with its reason"
    );
    assert!(
        !processed
            .iter()
            .any(|p| p.message_id == reject[0] && p.outcome != "permanent")
    );
    let redriven = localstack::peek_with_reasons(&sqs, &redrive).await?;
    assert_eq!(
        redriven,
        [(r#"{"action":"fail"}"#.to_owned(), String::new())],
        "SQS moved the always-failing record after 3 receives"
    );
    println!("recovered after {recovered_after:?}; DLQ copy {copies:?}; redriven {redriven:?}");
    Ok(())
}

/// Records not started before the deadline are listed and released at once
/// (visibility 0 with real receipt handles): visible again right after the
/// invocation, though the queue's visibility timeout is 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstarted_records_are_released_at_the_deadline_on_real_sqs() -> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "esm-deadline", false, 30, 5).await?;
    localstack::send(&sqs, &url, &bodies(10, r#"{"action":"sleep","ms":1000}"#)).await?;
    let api = Arc::new(RuntimeApi::start().await?);
    let function = FunctionProc::start(&api, &[("SQSRT_MAX_IN_FLIGHT", "1")])?;
    let mut settings = mapping(&url, 10, 3);
    settings.batching_window = Duration::from_secs(2);
    let esm = EventSourceMapping::new(sqs.clone(), Arc::clone(&api), settings).await?;
    let invoked = esm.poll_once().await?.context("a batch")?;
    let listed = invoked.listed.context("the function answered")?;
    let (visible, in_flight) = localstack::depth(&sqs, &url).await?;
    until("an outcome line per record", Duration::from_secs(5), || {
        Ok(function.processed().len() == 10)
    })
    .await?;
    let processed = function.processed();
    let count = |outcome: &str| processed.iter().filter(|p| p.outcome == outcome).count();
    println!(
        "{} records: {} succeeded, {} abandoned at the deadline (retry), {} not started; then {visible} visible, {in_flight} in flight",
        invoked.records,
        count("success"),
        count("retry"),
        count("skipped")
    );
    assert_eq!(invoked.records, 10);
    assert!(
        count("skipped") >= 6,
        "one at a time for 2.5 s of 1 s records: most never started: {processed:?}"
    );
    assert_eq!(listed.len(), 10 - count("success"));
    assert_eq!(
        visible,
        count("skipped") as u64,
        "the records never started are visible again at once"
    );
    assert_eq!(
        in_flight,
        count("retry") as u64,
        "the abandoned one waits out its backoff"
    );
    Ok(())
}

/// FIFO order across invocations: a group's records succeed in the order
/// sent, though one fails once and the rest of its group returns with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_order_holds_across_invocations_on_real_sqs() -> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "esm-fifo", true, 30, 5).await?;
    let mut items: Vec<(&str, String)> = Vec::new();
    for i in 0..5 {
        for group in ["a", "b", "c"] {
            let body = if group == "a" && i == 1 {
                r#"{"action":"fail","times":1,"retry_after_secs":1}"#.to_owned()
            } else {
                format!(r#"{{"action":"ok","n":{i}}}"#)
            };
            items.push((group, body));
        }
    }
    let ids = localstack::send_grouped(&sqs, &url, &items, true).await?;
    let groups: HashMap<String, &str> = ids
        .iter()
        .cloned()
        .zip(items.iter().map(|(g, _)| *g))
        .collect();
    let api = Arc::new(RuntimeApi::start().await?);
    let function = FunctionProc::start(&api, &[("SQSRT_RETRY_BASE_SECS", "1")])?;
    let esm = EventSourceMapping::new(sqs.clone(), Arc::clone(&api), mapping(&url, 10, 10))
        .await?
        .start();
    until("every record succeeded", Duration::from_secs(40), || {
        Ok(function
            .processed()
            .iter()
            .filter(|p| p.outcome == "success")
            .count()
            >= ids.len())
    })
    .await?;
    let stats = (
        esm.stats
            .invocations
            .load(std::sync::atomic::Ordering::Relaxed),
        esm.stats.records.load(std::sync::atomic::Ordering::Relaxed),
    );
    esm.stop().await?;
    let processed = function.processed();
    for group in ["a", "b", "c"] {
        let want: Vec<&String> = ids.iter().filter(|id| groups[*id] == group).collect();
        let got: Vec<&String> = processed
            .iter()
            .filter(|p| p.outcome == "success" && groups.get(&p.message_id) == Some(&group))
            .map(|p| &p.message_id)
            .collect();
        assert_eq!(got, want, "group {group} in order: {processed:?}");
    }
    let skipped = processed.iter().filter(|p| p.outcome == "skipped").count();
    println!(
        "{} invocations, {} records, {skipped} held back behind the failure",
        stats.0, stats.1
    );
    if stats.0 < 2 {
        bail!("the failed record's retry needs a second invocation");
    }
    Ok(())
}

/// An invocation that fails as a whole (here every record failed and
/// `--fail-invocation-when-all-fail` is on) deletes nothing: the whole batch
/// returns after the queue's visibility timeout, and the next invocation
/// gets it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_invocation_returns_the_whole_batch_on_real_sqs() -> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "esm-whole", false, 2, 5).await?;
    let ids = localstack::send(&sqs, &url, &bodies(3, r#"{"action":"fail","times":1}"#)).await?;
    let api = Arc::new(RuntimeApi::start().await?);
    let function = FunctionProc::start(&api, &[("SQSRT_FAIL_INVOCATION_WHEN_ALL_FAIL", "true")])?;
    let mut settings = mapping(&url, 10, 10);
    settings.batching_window = Duration::from_secs(1);
    let esm = EventSourceMapping::new(sqs.clone(), Arc::clone(&api), settings).await?;
    let first = esm.poll_once().await?.context("a batch")?;
    assert_eq!(
        (first.records, first.listed),
        (3, None),
        "the whole batch failed"
    );
    let (visible, in_flight) = localstack::depth(&sqs, &url).await?;
    assert_eq!(
        (visible, in_flight),
        (0, 3),
        "nothing deleted; back after the visibility timeout"
    );
    let esm = esm.start();
    localstack::wait_empty(&sqs, &url, Duration::from_secs(20)).await?;
    esm.stop().await?;
    let processed = function.stop()?;
    for id in &ids {
        assert!(
            processed
                .iter()
                .any(|p| &p.message_id == id && p.outcome == "success" && p.receive_count == 2),
            "{id} succeeded on its second receive: {processed:?}"
        );
    }
    Ok(())
}
