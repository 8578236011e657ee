//! Worker mode end to end: the release `sqsrt worker` against LocalStack over
//! the real SQS protocol. Short visibility timeouts and backoffs keep it fast;
//! every wait is bounded and polls a condition.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use sqsrt_e2e::localstack::{self, Queues};
use sqsrt_e2e::worker_proc::{WorkerProc, bodies, successes, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_is_settled_as_designed() -> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues { url, dlq_url } = localstack::create_queues(&sqs, "outcomes", false, 2, 2).await?;
    let ids = localstack::send(
        &sqs,
        &url,
        &[
            r#"{"action":"ok"}"#.to_owned(),
            r#"{"action":"fail","times":1,"retry_after_secs":1}"#.to_owned(),
            r#"{"action":"reject","reason":"unknown sku"}"#.to_owned(),
            r#"{"action":"panic"}"#.to_owned(),
            "not json".to_owned(),
        ],
    )
    .await?;
    let worker = WorkerProc::start(
        &url,
        &[
            "--dlq-url",
            &dlq_url,
            "--retry-base-secs",
            "1",
            "--retry-max-secs",
            "1",
        ],
    )?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(40)).await?;

    // Permanent failures carry their reason; the panicking message reached the
    // DLQ through the queue's redrive policy after maxReceiveCount (2) receives.
    let dead = localstack::drain(&sqs, &dlq_url, 3, Duration::from_secs(10)).await?;
    let by_body: HashMap<&str, &localstack::Drained> =
        dead.iter().map(|d| (d.body.as_str(), d)).collect();
    assert_eq!(dead.len(), 3, "{dead:?}");
    let rejected = by_body[r#"{"action":"reject","reason":"unknown sku"}"#];
    assert_eq!(rejected.attributes["sqsrt.reason"], "unknown sku");
    assert_eq!(rejected.attributes["sqsrt.source_message_id"], ids[2]);
    assert_eq!(rejected.attributes["sqsrt.source_queue"], url);
    let not_json = by_body["not json"];
    assert_eq!(
        not_json.attributes["sqsrt.reason"],
        "scripted: body is not a JSON object"
    );
    let panicked = by_body[r#"{"action":"panic"}"#];
    assert!(
        !panicked.attributes.contains_key("sqsrt.reason"),
        "moved by the redrive policy, not by sqsrt"
    );

    let processed = worker.processed();
    let of = |id: &str| {
        processed
            .iter()
            .filter(|p| p.message_id == id)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(&ids[0])
            .iter()
            .map(|p| p.outcome.as_str())
            .collect::<Vec<_>>(),
        ["success"]
    );
    // The retry came back after its delay with a higher receive count, and succeeded.
    let retried = of(&ids[1]);
    assert_eq!(
        retried
            .iter()
            .map(|p| (p.outcome.as_str(), p.receive_count))
            .collect::<Vec<_>>(),
        [("retry", 1), ("success", 2)]
    );
    let panics = of(&ids[3]);
    assert_eq!(panics.len(), 2, "{panics:?}");
    assert!(panics.iter().all(|p| p.outcome == "retry" && p.reason.as_deref().unwrap_or("").contains("panicked")));

    assert_eq!(
        worker.metric(r#"sqsrt_messages_processed_total{outcome="success"}"#)?,
        2
    );
    assert_eq!(
        worker.metric(r#"sqsrt_messages_processed_total{outcome="permanent"}"#)?,
        2
    );
    assert_eq!(worker.metric("sqsrt_dlq_sends_total")?, 2);
    assert_eq!(worker.metric("sqsrt_messages_in_flight")?, 0);
    assert_eq!(worker.metric("sqsrt_sqs_up")?, 1);
    assert_eq!(worker.get("/readyz")?.0, 200);
    assert_eq!(worker.get("/healthz")?.0, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_groups_keep_their_order_across_failures_and_redeliveries() -> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "fifo", true, 2, 5).await?;
    let mut items = Vec::new();
    for i in 0..6 {
        // In group a, the second message fails twice before it succeeds.
        let a = if i == 1 {
            r#"{"action":"fail","times":2,"retry_after_secs":1}"#
        } else {
            r#"{"action":"ok"}"#
        };
        items.push(("a", a.to_owned()));
        items.push(("b", r#"{"action":"sleep","ms":20}"#.to_owned()));
    }
    let ids = localstack::send_grouped(&sqs, &url, &items, true).await?;
    let worker = WorkerProc::start(&url, &["--retry-base-secs", "1", "--retry-max-secs", "1"])?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(40)).await?;

    let processed = worker.processed();
    for (group, offset) in [("a", 0), ("b", 1)] {
        let group_ids: Vec<&String> = ids.iter().skip(offset).step_by(2).collect();
        let order: Vec<&String> = processed
            .iter()
            .filter(|p| p.outcome == "success" && group_ids.contains(&&p.message_id))
            .map(|p| &p.message_id)
            .collect();
        assert_eq!(order, group_ids, "group {group} succeeded out of order");
    }
    // Nothing of group a ran between its failed message and that message's success.
    let a1 = &ids[2];
    let positions: Vec<usize> = processed
        .iter()
        .enumerate()
        .filter(|(_, p)| p.message_id == *a1)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(positions.len(), 3, "two failures and a success");
    let a_later: Vec<&String> = ids.iter().step_by(2).skip(2).collect();
    for p in &processed[positions[0]..positions[2]] {
        assert!(
            !(a_later.contains(&&p.message_id) && p.outcome == "success"),
            "a later message of group a succeeded while {a1} was failing"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_standard_queue_a_group_id_is_a_tenant_and_holds_nothing_back() -> anyhow::Result<()> {
    // SQS fair queues: LocalStack accepts a MessageGroupId on a standard
    // queue and returns it. The tenant's first message fails once; the other
    // four must not be skipped behind it (each succeeds on its first receive).
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "tenants", false, 2, 5).await?;
    let mut items = vec![(
        "tenant-1",
        r#"{"action":"fail","times":1,"retry_after_secs":1}"#.to_owned(),
    )];
    items.extend((0..4).map(|_| ("tenant-1", r#"{"action":"sleep","ms":50}"#.to_owned())));
    let ids = localstack::send_grouped(&sqs, &url, &items, false).await?;
    let worker = WorkerProc::start(&url, &["--retry-base-secs", "1", "--retry-max-secs", "1"])?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(30)).await?;
    let processed = worker.processed();
    assert!(
        processed.iter().all(|p| p.outcome != "skipped"),
        "nothing is held back on a standard queue: {processed:?}"
    );
    for id in &ids[1..] {
        let first = processed.iter().find(|p| &p.message_id == id);
        assert!(
            first.is_some_and(|p| p.outcome == "success" && p.receive_count == 1),
            "{id} succeeded on its first receive: {first:?}"
        );
    }
    assert_eq!(successes(&processed), ids.iter().cloned().collect());
    Ok(())
}

/// The per-tenant cap in worker mode: tenant A's six 1 s messages run two
/// at a time (their completions span at least two more seconds; uncapped
/// they end together), tenant B's four run at once beside them and are all
/// done before A's last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_cap_waits_and_others_go_ahead() -> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "tenant-cap", false, 30, 5).await?;
    let body = r#"{"action":"sleep","ms":1000}"#.to_owned();
    let items: Vec<(&str, String)> = (0..10)
        .map(|i| (if i < 6 { "A" } else { "B" }, body.clone()))
        .collect();
    let ids = localstack::send_grouped(&sqs, &url, &items, false).await?;
    let tenant: HashMap<&String, &str> = ids.iter().zip(items.iter().map(|(g, _)| *g)).collect();
    let worker = WorkerProc::start(
        &url,
        &["--max-in-flight", "10", "--max-in-flight-per-group", "2"],
    )?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(30)).await?;
    until("ten success lines", Duration::from_secs(5), || {
        Ok(successes(&worker.processed()).len() == 10)
    })
    .await?;
    let ended = |t: &str| -> anyhow::Result<Vec<chrono::DateTime<chrono::FixedOffset>>> {
        let mut at: Vec<_> = worker
            .processed()
            .iter()
            .filter(|p| p.outcome == "success" && tenant.get(&p.message_id) == Some(&t))
            .map(|p| chrono::DateTime::parse_from_rfc3339(&p.timestamp))
            .collect::<Result<_, _>>()?;
        at.sort();
        Ok(at)
    };
    let (a, b) = (ended("A")?, ended("B")?);
    let a_span = (a[5] - a[0]).to_std()?;
    println!(
        "tenant A's completions span {a_span:?}; B's last {:?} before A's last",
        (a[5] - b[3]).to_std()?
    );
    assert!(
        a_span >= Duration::from_millis(1_900),
        "A two at a time: three waves of 1 s, {a_span:?}"
    );
    assert!(b[3] < a[5], "B did not wait behind A");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_keeps_a_long_handler_invisible() -> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "heartbeat", false, 2, 5).await?;
    let ids = localstack::send(&sqs, &url, &[r#"{"action":"sleep","ms":6500}"#.to_owned()]).await?;
    let worker = WorkerProc::start(
        &url,
        &[
            "--handler-timeout-secs",
            "20",
            "--shutdown-grace-secs",
            "25",
        ],
    )?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(30)).await?;
    let processed = worker.processed();
    assert_eq!(processed.len(), 1, "{processed:?}");
    assert_eq!(
        (
            processed[0].message_id.as_str(),
            processed[0].outcome.as_str()
        ),
        (ids[0].as_str(), "success")
    );
    assert_eq!(processed[0].receive_count, 1);
    assert_eq!(
        worker.metric("sqsrt_messages_received_total")?,
        1,
        "never redelivered meanwhile"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_loses_nothing() -> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "drain", false, 10, 10).await?;
    let ids = localstack::send(&sqs, &url, &bodies(400, r#"{"action":"sleep","ms":1500}"#)).await?;
    let grace = Duration::from_secs(8);
    let mut first = WorkerProc::start(
        &url,
        &[
            "--max-in-flight",
            "200",
            "--handler-timeout-secs",
            "5",
            "--shutdown-grace-secs",
            "8",
        ],
    )?;
    until("hundreds in flight", Duration::from_secs(20), || {
        Ok(first.metric("sqsrt_messages_in_flight")? >= 150)
    })
    .await?;
    first.signal("TERM")?;
    let (status, took) = first.wait_exit(grace + Duration::from_secs(5))?;
    assert!(status.success(), "exit {status} after SIGTERM");
    assert!(
        took <= grace,
        "drain took {took:?}, more than the {grace:?} grace"
    );
    let first_done = successes(&first.processed());
    assert!(!first_done.is_empty());
    let released = first
        .processed()
        .iter()
        .filter(|p| p.outcome == "skipped")
        .count();
    println!(
        "first run: {} succeeded, {released} released, exit after {took:?}",
        first_done.len()
    );

    let second = WorkerProc::start(&url, &["--max-in-flight", "200"])?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(60)).await?;
    let all: HashSet<String> = first_done
        .union(&successes(&second.processed()))
        .cloned()
        .collect();
    let want: HashSet<String> = ids.into_iter().collect();
    assert_eq!(
        all, want,
        "every message succeeded in one of the runs; the queue is empty, so none was lost"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetched_messages_wait_for_a_handler_and_are_released_at_shutdown() -> anyhow::Result<()>
{
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "prefetch", false, 30, 10).await?;
    let ids = localstack::send(&sqs, &url, &bodies(30, r#"{"action":"sleep","ms":5000}"#)).await?;
    let mut worker = WorkerProc::start(
        &url,
        &[
            "--max-in-flight",
            "2",
            "--prefetch",
            "10",
            "--shutdown-grace-secs",
            "25",
        ],
    )?;
    until(
        "two running and ten prefetched",
        Duration::from_secs(20),
        || Ok(worker.metric("sqsrt_messages_in_flight")? >= 12),
    )
    .await?;
    assert_eq!(
        worker.metric("sqsrt_messages_in_flight")?,
        12,
        "held = max-in-flight + prefetch, never more"
    );
    worker.signal("TERM")?;
    let (status, _) = worker.wait_exit(Duration::from_secs(30))?;
    assert!(status.success(), "exit {status} after SIGTERM");
    let processed = worker.processed();
    let count = |outcome: &str| processed.iter().filter(|p| p.outcome == outcome).count();
    // Had the prefetched ten run too, the drain would have let all twelve finish.
    assert_eq!(
        count("success"),
        2,
        "only --max-in-flight handlers ran: {processed:?}"
    );
    assert_eq!(
        count("skipped"),
        10,
        "the prefetched ten were released: {processed:?}"
    );

    let second = WorkerProc::start(&url, &["--max-in-flight", "30"])?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(60)).await?;
    let all: HashSet<String> = successes(&processed)
        .union(&successes(&second.processed()))
        .cloned()
        .collect();
    assert_eq!(all, ids.into_iter().collect::<HashSet<_>>(), "nothing lost");
    Ok(())
}

/// Scale-in of an idle worker: its long polls are open when SIGTERM comes,
/// and SQS hands them whatever arrives next. Abandoned, those messages would
/// stay invisible for the queue's visibility timeout (60 s here) after the
/// worker is gone; finished and released, they are visible again at exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_idle_strands_nothing_the_open_long_polls_receive() -> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "idle-term", false, 60, 10).await?;
    // 20 handler slots: two pollers, both in a long poll while idle.
    let mut worker = WorkerProc::start(&url, &["--max-in-flight", "20", "--prefetch", "0"])?;
    until("the queue checked", Duration::from_secs(20), || {
        Ok(worker.lines_containing("Queue checked.") == 1)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await; // the long polls are open
    let signalled = Instant::now();
    worker.signal("TERM")?;
    until("the shutdown begun", Duration::from_secs(5), || {
        Ok(worker.lines_containing("Shutdown began") == 1)
    })
    .await?;
    let ids = localstack::send(&sqs, &url, &bodies(20, r#"{"action":"ok"}"#)).await?;
    let (status, _) = worker.wait_exit(Duration::from_secs(30))?;
    let took = signalled.elapsed();
    assert!(status.success(), "exit {status} after SIGTERM");
    let processed = worker.processed();
    assert!(
        processed.iter().all(|p| p.outcome == "skipped"),
        "no handler ran after SIGTERM: {processed:?}"
    );
    let (visible, in_flight) = localstack::depth(&sqs, &url).await?;
    println!(
        "idle SIGTERM: exit after {took:?}; {} received after the signal and released; queue {visible} visible, {in_flight} in flight",
        processed.len()
    );
    assert_eq!(
        (visible, in_flight),
        (ids.len() as u64, 0),
        "every message sent after SIGTERM is visible once the worker is gone"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_nothing_after_restart() -> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "kill", false, 2, 10).await?;
    let ids = localstack::send(&sqs, &url, &bodies(200, r#"{"action":"sleep","ms":100}"#)).await?;
    let mut first = WorkerProc::start(&url, &["--max-in-flight", "20"])?;
    until("some progress", Duration::from_secs(20), || {
        Ok(first.metric(r#"sqsrt_messages_processed_total{outcome="success"}"#)? >= 30)
    })
    .await?;
    first.signal("KILL")?;
    first.wait_exit(Duration::from_secs(5))?;
    let first_done = successes(&first.processed());

    let second = WorkerProc::start(&url, &["--max-in-flight", "20"])?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(60)).await?;
    let second_done = successes(&second.processed());
    let all: HashSet<String> = first_done.union(&second_done).cloned().collect();
    assert_eq!(all, ids.into_iter().collect::<HashSet<_>>());
    println!(
        "killed after {} successes; {} redelivered and processed twice",
        first_done.len(),
        first_done.intersection(&second_done).count()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_drain_and_metrics_match() -> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "load", false, 30, 5).await?;
    let n = 2000;
    let ids = localstack::send(&sqs, &url, &bodies(n, r#"{"action":"ok"}"#)).await?;
    let start = Instant::now();
    let worker = WorkerProc::start(&url, &["--max-in-flight", "64"])?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(90)).await?;
    let took = start.elapsed();
    let processed = worker.processed();
    let done = successes(&processed);
    assert_eq!(done, ids.into_iter().collect::<HashSet<_>>());
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &processed {
        *outcomes.entry(p.outcome.as_str()).or_default() += 1;
    }
    let received = worker.metric("sqsrt_messages_received_total")?;
    let succeeded = worker.metric(r#"sqsrt_messages_processed_total{outcome="success"}"#)?;
    assert_eq!(succeeded, i64::try_from(outcomes["success"])?);
    assert_eq!(received, i64::try_from(processed.len())?);
    assert!(
        worker.metric(r#"sqsrt_sqs_requests_total{operation="DeleteMessageBatch"}"#)?
            >= i64::try_from(n / 10)?
    );
    println!(
        "{n} messages drained in {took:?} ({:.0} msgs/s)",
        f64::from(u32::try_from(n)?) / took.as_secs_f64()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_errors_are_logged_with_a_hint_counted_and_retried_without_dying() -> anyhow::Result<()>
{
    let missing = format!(
        "{}/000000000000/no-such-queue-{}",
        localstack::endpoint()?,
        std::process::id()
    );
    let worker = WorkerProc::start(&missing, &[])?;
    until("a few failed attempts", Duration::from_secs(20), || {
        Ok(worker.metric(r#"sqsrt_sqs_errors_total{operation="GetQueueAttributes"}"#)? >= 3)
    })
    .await?;
    let warnings: Vec<_> = worker
        .lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN" && l.get("hint").is_some())
        .collect();
    assert_eq!(warnings.len(), 1, "logged once per streak: {warnings:?}");
    assert!(
        warnings[0]["hint"]
            .as_str()
            .unwrap_or("")
            .contains("--queue-url"),
        "{}",
        warnings[0]
    );
    assert_eq!(worker.metric("sqsrt_sqs_up")?, 0);
    assert_eq!(worker.get("/healthz")?.0, 200, "alive: it keeps trying");
    assert_eq!(worker.get("/readyz")?.0, 503, "never received");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_not_below_the_queues_visibility_stops_start_up_with_status_2()
-> anyhow::Result<()> {
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "badhb", false, 2, 5).await?;
    let mut worker = WorkerProc::start(&url, &["--heartbeat-secs", "5"])?;
    let (status, _) = worker.wait_exit(Duration::from_secs(20))?;
    assert_eq!(status.code(), Some(2));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_messages_through_the_queue_are_all_handled() -> anyhow::Result<()> {
    use aws_sdk_sqs::primitives::Blob;
    use aws_sdk_sqs::types::MessageAttributeValue;

    let sqs = localstack::client().await?;
    let Queues { url, dlq_url } = localstack::create_queues(&sqs, "unusual", false, 10, 3).await?;
    let string = |t: &str, v: &str| {
        MessageAttributeValue::builder()
            .data_type(t)
            .string_value(v)
            .build()
    };
    let binary = |t: &str, v: &[u8]| {
        MessageAttributeValue::builder()
            .data_type(t)
            .binary_value(Blob::new(v))
            .build()
    };
    let bodies = [
        // SQS's largest message: under 1 MiB counting body and attributes
        // (the six below take 93 bytes), so this is the largest body they allow.
        "x".repeat(1024 * 1024 - 1 - 93),
        "tab \t newline \n cr \r emoji \u{1F980} e\u{301} \u{FFFD} \u{10FFFF} quote \" backslash \\".to_owned(),
        r#"{"action":"ok","nested":{"deep":[1,2,{"x":null}]}}"#.to_owned(),
    ];
    let mut ids = HashSet::new();
    for body in bodies {
        let sent = sqs
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .message_attributes("s", string("String", "v")?)
            .message_attributes("n", string("Number", "-1.5e3")?)
            .message_attributes("b", binary("Binary", &[0, 1, 2, 255])?)
            .message_attributes("sc", string("String.custom", "{\"json\":true}")?)
            .message_attributes("nf", string("Number.float", "3.14")?)
            .message_attributes("bg", binary("Binary.gzip", &[0x1f, 0x8b])?)
            .send()
            .await?;
        ids.insert(sent.message_id.unwrap_or_default());
    }
    let worker = WorkerProc::start(&url, &["--handler", "log"])?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(30)).await?;
    assert_eq!(
        successes(&worker.processed()),
        ids,
        "each succeeded once and was deleted"
    );
    assert_eq!(localstack::depth(&sqs, &dlq_url).await?, (0, 0));
    Ok(())
}

#[test]
fn check_config_validates_the_settings_without_running() -> anyhow::Result<()> {
    let check = |extra: &[&str]| -> anyhow::Result<std::process::Output> {
        Ok(std::process::Command::new(sqsrt_e2e::sqsrt_bin()?)
            .envs(sqsrt_e2e::offline_aws_env())
            .args([
                "worker",
                "--check-config",
                "--queue-url",
                "http://127.0.0.1:9/000000000000/q",
            ])
            .args(extra)
            .output()?)
    };
    let ok = check(&[])?;
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert_eq!(
        String::from_utf8(ok.stdout)?.trim(),
        "worker settings are valid"
    );
    let bad = check(&["--heartbeat-secs", "30", "--visibility-timeout-secs", "30"])?;
    let stderr = String::from_utf8(bad.stderr)?;
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("heartbeat (30s) must be below the visibility timeout (30s"),
        "{stderr}"
    );
    assert!(bad.stdout.is_empty(), "nothing ran");
    Ok(())
}
