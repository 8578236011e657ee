//! Parity: one message mix through the worker and through Lambda mode under
//! the event source mapping emulator, each on its own LocalStack queues with
//! the same settings, must end in the same state: the same messages
//! succeeded, the same dead-letter copies with the same reasons, the same
//! messages redriven by SQS, the same order of successes in each FIFO
//! group. Messages are named by a `key` in their body (message ids differ
//! between the runs). Prints the table.
//!
//! `SQSRT_PARITY_SCALE` repeats the mix (default 1: CI; the long run in
//! `scripts/reliability.sh`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use sqsrt_e2e::esm::{EventSourceMapping, Mapping};
use sqsrt_e2e::function_proc::FunctionProc;
use sqsrt_e2e::localstack::{self, Queues};
use sqsrt_e2e::runtime_api::RuntimeApi;
use sqsrt_e2e::worker_proc::{Processed, WorkerProc};

/// Receives before SQS redrives a message.
const MAX_RECEIVE: u32 = 3;

/// One message of the mix: its key, group (tenant or FIFO group) and body.
type Item = (String, Option<String>, String);

/// The mix: the standard queue's messages and the FIFO queue's; each body
/// carries its `key`.
fn mix(scale: usize) -> (Vec<Item>, Vec<Item>) {
    let mut standard = Vec::new();
    let mut fifo = Vec::new();
    for r in 0..scale {
        let kinds: [(&str, &str); 6] = [
            ("ok", r#""action":"ok""#),
            ("recover", r#""action":"fail","times":1"#),
            ("reject", r#""action":"reject","reason":"unknown SKU""#),
            ("panic", r#""action":"panic""#),
            ("slow", r#""action":"sleep","ms":300"#),
            ("tenant", r#""action":"ok""#),
        ];
        for (kind, script) in kinds {
            let key = format!("{kind}-{r}");
            let group = (kind == "tenant").then(|| format!("tenant-{}", r % 2));
            standard.push((key.clone(), group, format!(r#"{{{script},"key":"{key}"}}"#)));
        }
        // Not JSON: permanent in both modes, the reason names it.
        let key = format!("poison-{r}");
        standard.push((key.clone(), None, format!("poison {key}")));
        for group in ["g1", "g2"] {
            for i in 0..4 {
                let key = format!("{group}-{r}-{i}");
                let script = if group == "g1" && i == 1 {
                    r#""action":"fail","times":1"#
                } else {
                    r#""action":"ok""#
                };
                fifo.push((
                    key.clone(),
                    Some(group.to_owned()),
                    format!(r#"{{{script},"key":"{key}"}}"#),
                ));
            }
        }
    }
    (standard, fifo)
}

/// Where a run ends.
#[derive(Debug, Default, PartialEq, Eq)]
struct End {
    succeeded: BTreeSet<String>,
    /// Key (or poison body) and `sqsrt.reason` of each dead-letter copy.
    copies: BTreeSet<(String, String)>,
    redriven: BTreeSet<String>,
    /// Keys of each FIFO group in the order they succeeded.
    fifo_order: BTreeMap<String, Vec<String>>,
    duplicates: usize,
}

struct Run {
    standard: Queues,
    fifo: Queues,
    sqsrt_dlq: String,
    fifo_sqsrt_dlq: String,
    keys: BTreeMap<String, String>,
}

async fn setup(sqs: &Client, name: &str, scale: usize) -> anyhow::Result<Run> {
    let standard =
        localstack::create_queues(sqs, &format!("parity-{name}"), false, 30, MAX_RECEIVE).await?;
    let fifo =
        localstack::create_queues(sqs, &format!("parity-{name}-fifo"), true, 30, MAX_RECEIVE)
            .await?;
    let sqsrt_dlq = localstack::create_queues(sqs, &format!("parity-{name}-copies"), false, 30, 5)
        .await?
        .url;
    let fifo_sqsrt_dlq =
        localstack::create_queues(sqs, &format!("parity-{name}-fcopies"), true, 30, 5)
            .await?
            .url;
    let (standard_mix, fifo_mix) = mix(scale);
    let mut keys = BTreeMap::new();
    let items: Vec<(&str, String)> = standard_mix
        .iter()
        .map(|(_, g, b)| (g.as_deref().unwrap_or(""), b.clone()))
        .collect();
    // Tenants and plain messages in one send order.
    for ((key, _, _), id) in standard_mix
        .iter()
        .zip(send_mixed(sqs, &standard.url, &items).await?)
    {
        keys.insert(id, key.clone());
    }
    let fifo_items: Vec<(&str, String)> = fifo_mix
        .iter()
        .map(|(_, g, b)| (g.as_deref().unwrap_or_default(), b.clone()))
        .collect();
    for ((key, _, _), id) in fifo_mix
        .iter()
        .zip(localstack::send_grouped(sqs, &fifo.url, &fifo_items, true).await?)
    {
        keys.insert(id, key.clone());
    }
    Ok(Run {
        standard,
        fifo,
        sqsrt_dlq,
        fifo_sqsrt_dlq,
        keys,
    })
}

/// Sends in order: with a group id (a tenant) where given, without where empty.
async fn send_mixed(
    sqs: &Client,
    url: &str,
    items: &[(&str, String)],
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for (group, body) in items {
        if group.is_empty() {
            ids.extend(localstack::send(sqs, url, std::slice::from_ref(body)).await?);
        } else {
            ids.extend(localstack::send_grouped(sqs, url, &[(*group, body.clone())], false).await?);
        }
    }
    Ok(ids)
}

/// Keys of the messages in `url` with their `sqsrt.reason` (the key is read
/// from the body; a body without one is kept whole).
async fn queue_keys(sqs: &Client, url: &str) -> anyhow::Result<BTreeSet<(String, String)>> {
    Ok(localstack::peek_with_reasons(sqs, url)
        .await?
        .into_iter()
        .map(|(body, reason)| {
            let key = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["key"].as_str().map(str::to_owned))
                .unwrap_or(body);
            (key, reason)
        })
        .collect())
}

async fn end(sqs: &Client, run: &Run, processed: &[Processed]) -> anyhow::Result<End> {
    let mut end = End::default();
    let mut success_lines = 0;
    for p in processed.iter().filter(|p| p.outcome == "success") {
        let Some(key) = run.keys.get(&p.message_id) else {
            continue;
        };
        success_lines += 1;
        end.succeeded.insert(key.clone());
        if let Some(group) = key
            .strip_prefix("g1-")
            .map(|_| "g1")
            .or(key.strip_prefix("g2-").map(|_| "g2"))
        {
            end.fifo_order
                .entry(group.to_owned())
                .or_default()
                .push(key.clone());
        }
    }
    end.duplicates = success_lines - end.succeeded.len();
    end.copies = queue_keys(sqs, &run.sqsrt_dlq).await?;
    end.copies
        .extend(queue_keys(sqs, &run.fifo_sqsrt_dlq).await?);
    end.redriven = queue_keys(sqs, &run.standard.dlq_url)
        .await?
        .into_iter()
        .chain(queue_keys(sqs, &run.fifo.dlq_url).await?)
        .map(|(key, _)| key)
        .collect();
    Ok(end)
}

async fn drained(sqs: &Client, run: &Run, wait: Duration) -> anyhow::Result<()> {
    localstack::wait_empty(sqs, &run.standard.url, wait).await?;
    localstack::wait_empty(sqs, &run.fifo.url, wait).await
}

/// The same settings in both modes: flag, variable, value.
const SETTINGS: [(&str, &str, &str); 3] = [
    ("--retry-base-secs", "SQSRT_RETRY_BASE_SECS", "1"),
    ("--retry-max-secs", "SQSRT_RETRY_MAX_SECS", "1"),
    ("--handler-timeout-secs", "SQSRT_HANDLER_TIMEOUT_SECS", "5"),
];

async fn through_worker(sqs: &Client, scale: usize) -> anyhow::Result<End> {
    let run = setup(sqs, "worker", scale).await?;
    let start = |url: &str, dlq: &str| {
        let mut args: Vec<&str> = vec!["--dlq-url", dlq];
        for (flag, _, value) in SETTINGS {
            args.extend([flag, value]);
        }
        WorkerProc::start(url, &args)
    };
    let mut standard = start(&run.standard.url, &run.sqsrt_dlq)?;
    let mut fifo = start(&run.fifo.url, &run.fifo_sqsrt_dlq)?;
    drained(sqs, &run, Duration::from_secs(60 + 10 * scale as u64)).await?;
    // Both at once: an idle worker takes up to 20 s to finish its long polls.
    standard.signal("TERM")?;
    fifo.signal("TERM")?;
    let mut processed = Vec::new();
    for worker in [&mut standard, &mut fifo] {
        worker.wait_exit(Duration::from_secs(30))?;
        processed.extend(worker.processed());
    }
    end(sqs, &run, &processed).await
}

async fn through_lambda(sqs: &Client, scale: usize) -> anyhow::Result<End> {
    let run = setup(sqs, "lambda", scale).await?;
    let mut processed = Vec::new();
    for (url, dlq) in [
        (&run.standard.url, &run.sqsrt_dlq),
        (&run.fifo.url, &run.fifo_sqsrt_dlq),
    ] {
        let api = Arc::new(RuntimeApi::start().await?);
        let mut env: Vec<(&str, &str)> = SETTINGS
            .iter()
            .map(|(_, var, value)| (*var, *value))
            .collect();
        env.push(("SQSRT_DLQ_URL", dlq.as_str()));
        let function = FunctionProc::start(&api, &env)?;
        let mapping = Mapping {
            queue_url: url.clone(),
            batch_size: 10,
            batching_window: Duration::ZERO,
            function_timeout: Duration::from_secs(10),
        };
        let esm = EventSourceMapping::new(sqs.clone(), api, mapping)
            .await?
            .start();
        localstack::wait_empty(sqs, url, Duration::from_secs(60 + 10 * scale as u64)).await?;
        esm.stop().await?;
        processed.extend(function.stop()?);
    }
    end(sqs, &run, &processed).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_and_lambda_under_the_mapping_end_in_the_same_state() -> anyhow::Result<()> {
    let scale: usize = std::env::var("SQSRT_PARITY_SCALE")
        .ok()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1);
    let sqs = localstack::client().await?;
    let (worker, lambda) =
        tokio::try_join!(through_worker(&sqs, scale), through_lambda(&sqs, scale))?;
    let (standard, fifo) = mix(scale);
    let sent = standard.len() + fifo.len();
    let same = |a: bool| if a { "yes" } else { "NO" };
    println!("| parity (scale {scale}, {sent} messages) | worker | Lambda + mapping | same |");
    println!("|---|---|---|---|");
    println!(
        "| succeeded | {} | {} | {} |",
        worker.succeeded.len(),
        lambda.succeeded.len(),
        same(worker.succeeded == lambda.succeeded)
    );
    println!(
        "| dead-letter copies (key, reason) | {} | {} | {} |",
        worker.copies.len(),
        lambda.copies.len(),
        same(worker.copies == lambda.copies)
    );
    println!(
        "| redriven by SQS after {MAX_RECEIVE} receives | {} | {} | {} |",
        worker.redriven.len(),
        lambda.redriven.len(),
        same(worker.redriven == lambda.redriven)
    );
    println!(
        "| FIFO groups in order | {} | {} | {} |",
        worker.fifo_order.len(),
        lambda.fifo_order.len(),
        same(worker.fifo_order == lambda.fifo_order)
    );
    println!(
        "| duplicate successes | {} | {} | |",
        worker.duplicates, lambda.duplicates
    );
    // The expected end, not only the same one.
    let kinds =
        |set: &BTreeSet<String>, kind: &str| set.iter().filter(|k| k.starts_with(kind)).count();
    assert_eq!(
        kinds(&worker.succeeded, "ok-") + kinds(&worker.succeeded, "recover-"),
        2 * scale
    );
    assert_eq!(kinds(&worker.redriven, "panic-"), scale, "{worker:?}");
    assert_eq!(
        worker.copies.len(),
        2 * scale,
        "reject and poison: {worker:?}"
    );
    for (group, keys) in &worker.fifo_order {
        let sent: Vec<&String> = fifo
            .iter()
            .filter(|(_, g, _)| g.as_deref() == Some(group.as_str()))
            .map(|(k, _, _)| k)
            .collect();
        assert_eq!(
            keys.iter().collect::<Vec<_>>(),
            sent,
            "{group} in the order sent"
        );
    }
    assert_eq!(worker.succeeded, lambda.succeeded);
    assert_eq!(worker.copies, lambda.copies);
    assert_eq!(worker.redriven, lambda.redriven);
    assert_eq!(worker.fifo_order, lambda.fifo_order);
    Ok(())
}
