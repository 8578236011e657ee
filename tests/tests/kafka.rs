//! The `kafka` forwarder end to end: the release `sqsrt` (built with the
//! feature) moves messages from LocalStack into a real Kafka-compatible
//! broker (tansu, `sqsrt_e2e::kafka`), read back with a consumer. Each
//! message lands once per success, FIFO groups keep their order per key,
//! and a broker that stops answering mid-run opens the breaker: nothing is
//! dead-lettered, and the queue drains once it answers again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use sqsrt_e2e::esm::{EventSourceMapping, Mapping};
use sqsrt_e2e::function_proc::FunctionProc;
use sqsrt_e2e::kafka::{Broker, by_message_id, header};
use sqsrt_e2e::localstack::{self, Queues};
use sqsrt_e2e::runtime_api::RuntimeApi;
use sqsrt_e2e::worker_proc::{WorkerProc, until};

fn kafka_args<'a>(broker: &'a Broker, topic: &'a str, dlq_url: &'a str) -> Vec<&'a str> {
    vec![
        "--handler",
        "kafka",
        "--kafka-brokers",
        &broker.addr,
        "--kafka-topic",
        topic,
        "--kafka-key-attribute",
        "Customer",
        "--kafka-timeout-secs",
        "2",
        "--handler-timeout-secs",
        "5",
        "--heartbeat-secs",
        "1",
        "--dlq-url",
        dlq_url,
        "--retry-base-secs",
        "1",
        "--retry-max-secs",
        "1",
    ]
}

/// Duplicates: records beyond the first for one message id.
fn duplicates(by_id: &HashMap<String, Vec<&krafka::consumer::ConsumerRecord>>) -> usize {
    by_id.values().map(|records| records.len() - 1).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_produces_each_message_once_with_key_and_headers() -> anyhow::Result<()> {
    let broker = Broker::start().await?;
    broker.create_topic("orders", 3).await?;
    let sqs = localstack::client().await?;
    let Queues { url, dlq_url } = localstack::create_queues(&sqs, "kafka-fwd", false, 5, 4).await?;
    let mut ids = Vec::new();
    for i in 0..12 {
        let sent = sqs
            .send_message()
            .queue_url(&url)
            .message_body(format!(r#"{{"order":{i}}}"#))
            .message_attributes(
                "Customer",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(format!("customer-{}", i % 4))
                    .build()?,
            )
            .message_attributes(
                "Blob",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(aws_sdk_sqs::primitives::Blob::new(vec![1]))
                    .build()?,
            )
            .send()
            .await?;
        ids.push((i, sent.message_id.unwrap_or_default()));
    }
    let worker = WorkerProc::start(&url, &kafka_args(&broker, "orders", &dlq_url))?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(40)).await?;
    let records = broker
        .read_all("orders", 12, Duration::from_secs(20))
        .await?;
    let by_id = by_message_id(&records);
    assert_eq!(
        duplicates(&by_id),
        0,
        "a clean run writes each message once"
    );
    for (i, id) in &ids {
        let record = by_id.get(id).and_then(|r| r.first()).expect("in the topic");
        assert_eq!(
            record.value.as_deref(),
            Some(format!(r#"{{"order":{i}}}"#).as_bytes())
        );
        let customer = format!("customer-{}", i % 4);
        assert_eq!(record.key.as_deref(), Some(customer.as_bytes()), "keyed");
        assert_eq!(header(record, "Customer"), Some(customer.as_str()));
        assert_eq!(header(record, "Blob"), None, "binary: skipped");
    }
    let processed = worker.processed();
    assert_eq!(processed.len(), 12, "{processed:?}");
    assert!(processed.iter().all(|p| p.outcome == "success"));
    assert_eq!(worker.metric("sqsrt_kafka_attributes_skipped_total")?, 12);
    assert_eq!(worker.metric("sqsrt_sink_up")?, 1);
    assert_eq!(localstack::depth(&sqs, &dlq_url).await?, (0, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_groups_keep_their_order_per_key() -> anyhow::Result<()> {
    let broker = Broker::start().await?;
    broker.create_topic("ledger", 4).await?;
    let sqs = localstack::client().await?;
    let Queues { url, dlq_url } = localstack::create_queues(&sqs, "kafka-fifo", true, 5, 4).await?;
    let items: Vec<(&str, String)> = (0..10)
        .flat_map(|n| ["acct-a", "acct-b", "acct-c"].map(|g| (g, format!("{g} entry {n}"))))
        .collect();
    localstack::send_grouped(&sqs, &url, &items, true).await?;
    let _worker = WorkerProc::start(&url, &kafka_args(&broker, "ledger", &dlq_url))?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(60)).await?;
    let records = broker
        .read_all("ledger", 30, Duration::from_secs(20))
        .await?;
    assert_eq!(records.len(), 30);
    for group in ["acct-a", "acct-b", "acct-c"] {
        let mut mine: Vec<_> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(group.as_bytes()))
            .collect();
        assert!(
            mine.iter().all(|r| r.partition == mine[0].partition),
            "one key, one partition"
        );
        mine.sort_by_key(|r| r.offset);
        let bodies: Vec<String> = mine
            .iter()
            .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
            .collect();
        let expected: Vec<String> = (0..10).map(|n| format!("{group} entry {n}")).collect();
        assert_eq!(bodies, expected, "{group} in order");
    }
    Ok(())
}

/// The broker stops answering (paused) with messages in hand: the breaker
/// opens, the messages are held (receive counts unspent: maxReceiveCount 2
/// would redrive them), nothing is dead-lettered; resumed, a probe gets
/// through and every message lands, once: the records written to the
/// paused broker were awaited again, not written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stops_answering_opens_the_breaker_and_loses_nothing() -> anyhow::Result<()> {
    let broker = Broker::start().await?;
    broker.create_topic("events", 2).await?;
    let sqs = localstack::client().await?;
    let Queues { url, dlq_url } =
        localstack::create_queues(&sqs, "kafka-down", false, 3, 2).await?;
    let first: Vec<String> = (0..5).map(|i| format!("before {i}")).collect();
    let mut ids = localstack::send(&sqs, &url, &first).await?;
    let worker = WorkerProc::start(&url, &kafka_args(&broker, "events", &dlq_url))?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(30)).await?;

    broker.pause()?;
    let during: Vec<String> = (0..10).map(|i| format!("during {i}")).collect();
    ids.extend(localstack::send(&sqs, &url, &during).await?);
    until("the breaker to open", Duration::from_secs(30), || {
        Ok(worker.lines_containing("circuit open") == 1)
    })
    .await?;
    assert_eq!(worker.metric("sqsrt_sink_up")?, 0);
    // Longer than the visibility timeout (3 s) and a probe period (5 s).
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(localstack::depth(&sqs, &dlq_url).await?, (0, 0));
    broker.resume()?;

    localstack::wait_empty(&sqs, &url, Duration::from_secs(60)).await?;
    let records = broker
        .read_all("events", 15, Duration::from_secs(20))
        .await?;
    let by_id = by_message_id(&records);
    for id in &ids {
        assert!(by_id.contains_key(id), "{id} is not in the topic");
    }
    let dups = duplicates(&by_id);
    eprintln!(
        "paused broker: {} messages, {} records, {dups} duplicates, {} redelivered",
        ids.len(),
        records.len(),
        worker.metric("sqsrt_kafka_redelivered_total")?
    );
    assert_eq!(worker.lines_containing("The sink answers again"), 1);
    assert_eq!(worker.metric("sqsrt_sink_up")?, 1);
    // Five messages in a row without an acknowledgement in time opened it.
    assert!(worker.metric(r#"sqsrt_sink_errors_total{kind="timeout"}"#)? >= 5);
    // Each held message's later attempts awaited its first record.
    assert_eq!(
        dups, 0,
        "a late acknowledgement is awaited, not written again"
    );
    assert_eq!(worker.metric("sqsrt_dlq_sends_total")?, 0);
    assert_eq!(localstack::depth(&sqs, &dlq_url).await?, (0, 0));
    Ok(())
}

/// Lambda mode through the event source mapping emulator: each record lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_produces_each_record() -> anyhow::Result<()> {
    let broker = Broker::start().await?;
    broker.create_topic("lambda-orders", 1).await?;
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "kafka-l", false, 5, 4).await?;
    let bodies: Vec<String> = (0..6).map(|i| format!("order {i}")).collect();
    let ids = localstack::send(&sqs, &url, &bodies).await?;
    let api = Arc::new(RuntimeApi::start().await?);
    let _function = FunctionProc::start(
        &api,
        &[
            ("SQSRT_HANDLER", "kafka"),
            ("SQSRT_KAFKA_BROKERS", broker.addr.as_str()),
            ("SQSRT_KAFKA_TOPIC", "lambda-orders"),
            ("SQSRT_KAFKA_TIMEOUT_SECS", "2"),
        ],
    )?;
    let mapping = Mapping {
        queue_url: url.clone(),
        batch_size: 10,
        batching_window: Duration::from_secs(1),
        function_timeout: Duration::from_secs(10),
    };
    let esm = EventSourceMapping::new(sqs.clone(), Arc::clone(&api), mapping)
        .await?
        .start();
    localstack::wait_empty(&sqs, &url, Duration::from_secs(40)).await?;
    esm.stop().await?;
    let records = broker
        .read_all("lambda-orders", 6, Duration::from_secs(20))
        .await?;
    let by_id = by_message_id(&records);
    for id in &ids {
        assert_eq!(by_id.get(id).map(Vec::len), Some(1), "{id}");
    }
    Ok(())
}
