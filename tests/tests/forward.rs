//! The `http` forwarder end to end: the release `sqsrt worker --handler
//! http` against LocalStack and a local app (`sqsrt_e2e::http_app`) that
//! answers 2xx, 3xx, 4xx, 5xx once, 429 with `Retry-After` once, and slowly
//! once, in both modes (Lambda through the event source mapping emulator).
//! Every message ends as the answer mapping says, nothing is lost,
//! permanent failures reach the DLQ with the app's answer as the reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use sqsrt_e2e::esm::{EventSourceMapping, Invoked, Mapping};
use sqsrt_e2e::function_proc::FunctionProc;
use sqsrt_e2e::http_app::{HttpApp, Request, free_addr};
use sqsrt_e2e::localstack::{self, Queues};
use sqsrt_e2e::runtime_api::RuntimeApi;
use sqsrt_e2e::worker_proc::{Processed, WorkerProc, until};

/// `sqsrt worker --handler http` to `app_url` with a 1 s timeout, `dlq_url`
/// and 1 s backoffs, then `extra`.
fn worker_args<'a>(app_url: &'a str, dlq_url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--handler",
        "http",
        "--http-url",
        app_url,
        "--http-timeout-secs",
        "1",
        "--dlq-url",
        dlq_url,
        "--retry-base-secs",
        "1",
        "--retry-max-secs",
        "1",
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_forwards_each_message_and_the_answer_decides() -> anyhow::Result<()> {
    let app = HttpApp::start().await?;
    let sqs = localstack::client().await?;
    // maxReceiveCount 4: only sqsrt's own dead-lettering can empty the
    // source queue of the permanent ones within the test's time.
    let Queues { url, dlq_url } = localstack::create_queues(&sqs, "http-fwd", false, 3, 4).await?;
    let ids = send_words(&sqs, &url).await?;
    let worker = WorkerProc::start(
        &url,
        &worker_args(&app.url, &dlq_url, &["--handler-timeout-secs", "5"]),
    )?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(40)).await?;
    let dead = localstack::drain(&sqs, &dlq_url, 2, Duration::from_secs(10)).await?;
    let reasons = dead
        .iter()
        .map(|d| (d.body.clone(), d.attributes["sqsrt.reason"].clone()))
        .collect();
    check_forwarded(&app, &ids, &worker.processed(), &reasons)?;
    assert_eq!(worker.metric("sqsrt_dlq_sends_total")?, 2);
    // Each request left the Binary attribute out: 9 requests (three retried).
    assert_eq!(worker.metric("sqsrt_http_attributes_skipped_total")?, 9);
    assert_eq!(localstack::depth(&sqs, &dlq_url).await?, (0, 0));
    Ok(())
}

/// The same in Lambda mode: the event source mapping emulator polls the
/// queue and invokes `sqsrt` through the Runtime API stand-in; retried
/// records are listed and re-timed, permanent ones copied to sqsrt's DLQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_forwards_each_record_and_the_answer_decides() -> anyhow::Result<()> {
    let app = HttpApp::start().await?;
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "http-fwd-l", false, 3, 4).await?;
    let Queues { url: dlq_url, .. } =
        localstack::create_queues(&sqs, "http-fwd-l-dlq", false, 30, 5).await?;
    let ids = send_words(&sqs, &url).await?;
    let api = Arc::new(RuntimeApi::start().await?);
    let function = FunctionProc::start(
        &api,
        &[
            ("SQSRT_HANDLER", "http"),
            ("SQSRT_HTTP_URL", app.url.as_str()),
            ("SQSRT_HTTP_TIMEOUT_SECS", "1"),
            ("SQSRT_HANDLER_TIMEOUT_SECS", "5"),
            ("SQSRT_DLQ_URL", dlq_url.as_str()),
            ("SQSRT_RETRY_BASE_SECS", "1"),
            ("SQSRT_RETRY_MAX_SECS", "1"),
        ],
    )?;
    let mapping = Mapping {
        queue_url: url.clone(),
        batch_size: 10,
        batching_window: Duration::ZERO,
        function_timeout: Duration::from_secs(10),
    };
    let esm = EventSourceMapping::new(sqs.clone(), Arc::clone(&api), mapping)
        .await?
        .start();
    localstack::wait_empty(&sqs, &url, Duration::from_secs(40)).await?;
    esm.stop().await?;
    let reasons = localstack::peek_with_reasons(&sqs, &dlq_url)
        .await?
        .into_iter()
        .collect();
    check_forwarded(&app, &ids, &function.processed(), &reasons)
}

/// The app is down: the first refused connection opens the breaker. The
/// worker holds the messages it has (no receive count spent, nothing
/// dead-lettered), receives nothing new though it has room, and probes
/// every few seconds (a long poll already open when it opened may still
/// bring messages: held too); when the app comes back on its port a probe gets
/// through and the queue drains, each message delivered on its first
/// receive. One log line opens the streak, one closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_holds_messages_while_the_app_is_down() -> anyhow::Result<()> {
    let addr = free_addr()?;
    let app_url = format!("http://{addr}/messages");
    let sqs = localstack::client().await?;
    // Visibility 2 s, maxReceiveCount 2: a message retried through the
    // queue during the outage would be redriven to the DLQ.
    let Queues { url, dlq_url } = localstack::create_queues(&sqs, "http-down", false, 2, 2).await?;
    let early: Vec<String> = (0..2).map(|i| format!("ok early {i}")).collect();
    let mut ids = localstack::send(&sqs, &url, &early).await?;
    let worker = WorkerProc::start(
        &url,
        &worker_args(
            &app_url,
            &dlq_url,
            &[
                "--handler-timeout-secs",
                "3",
                "--heartbeat-secs",
                "1",
                "--max-in-flight",
                "10",
            ],
        ),
    )?;
    until("the breaker to open", Duration::from_secs(20), || {
        Ok(worker.lines_containing("circuit open") == 1)
    })
    .await?;
    assert_eq!(worker.metric("sqsrt_sink_up")?, 0);
    // A long poll open when the breaker opened may still bring messages
    // (they are held too); none starts after it, though there is room.
    let late: Vec<String> = (0..6).map(|i| format!("ok late {i}")).collect();
    ids.extend(localstack::send(&sqs, &url, &late).await?);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = worker.metric("sqsrt_messages_received_total")?;
    let later: Vec<String> = (0..2).map(|i| format!("ok later {i}")).collect();
    ids.extend(localstack::send(&sqs, &url, &later).await?);
    // Longer than the visibility timeout and than a probe period.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        worker.metric("sqsrt_messages_received_total")?,
        received,
        "nothing received while open"
    );
    assert!(worker.metric(r#"sqsrt_sink_errors_total{kind="unreachable"}"#)? >= 2);
    assert!(worker.processed().is_empty(), "held, not settled");

    let app = HttpApp::start_on(addr).await?;
    localstack::wait_empty(&sqs, &url, Duration::from_secs(30)).await?;
    for id in &ids {
        let got = app.requests_for(id);
        assert_eq!(got.len(), 1, "{id}: {got:?}");
        assert_eq!(got[0].header("sqsrt-receive-count"), Some("1"), "{id}");
    }
    let processed = worker.processed();
    assert_eq!(processed.len(), ids.len(), "{processed:?}");
    assert!(processed.iter().all(|p| p.outcome == "success"));
    assert_eq!(worker.metric("sqsrt_sink_up")?, 1);
    assert_eq!(worker.lines_containing("The sink answers again"), 1);
    assert_eq!(localstack::depth(&sqs, &dlq_url).await?, (0, 0));
    Ok(())
}

/// Lambda mode cannot stop the event source mapping: the invocation that
/// finds the app down lists its records (the refused connections opened
/// the breaker); one within the probe
/// period fails as a whole at once (`sqsrt.SinkDown`) without a request;
/// after the period one record probes, and with the app back the batch
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_fails_invocations_at_once_while_the_app_is_down() -> anyhow::Result<()> {
    let addr = free_addr()?;
    let app_url = format!("http://{addr}/messages");
    let sqs = localstack::client().await?;
    let Queues { url, .. } = localstack::create_queues(&sqs, "http-down-l", false, 1, 10).await?;
    let bodies: Vec<String> = (0..3).map(|i| format!("ok order {i}")).collect();
    let ids = localstack::send(&sqs, &url, &bodies).await?;
    let api = Arc::new(RuntimeApi::start().await?);
    let function = FunctionProc::start(
        &api,
        &[
            ("SQSRT_HANDLER", "http"),
            ("SQSRT_HTTP_URL", app_url.as_str()),
            ("SQSRT_HTTP_TIMEOUT_SECS", "1"),
            ("SQSRT_RETRY_BASE_SECS", "1"),
            ("SQSRT_RETRY_MAX_SECS", "1"),
        ],
    )?;
    let mapping = Mapping {
        queue_url: url.clone(),
        batch_size: 10,
        batching_window: Duration::from_secs(1),
        function_timeout: Duration::from_secs(10),
    };
    let esm = EventSourceMapping::new(sqs.clone(), Arc::clone(&api), mapping).await?;
    let opened = std::time::Instant::now();
    let first = esm.poll_once().await?.expect("a batch");
    assert_eq!(first.records, 3, "{first:?}");
    assert_eq!(first.listed.map(|l| l.len()), Some(3));
    let outcomes = function.processed();
    assert!(
        outcomes.iter().all(|p| p.outcome == "retry"),
        "{outcomes:?}"
    );

    // The records return after their retry delay (1 s).
    let second = loop {
        if let Some(invoked) = esm.poll_once().await? {
            break invoked;
        }
        assert!(opened.elapsed() < sqsrt_core::PROBE_EVERY, "no records");
    };
    let error = second.error.unwrap_or_default();
    assert!(
        second.listed.is_none() && error.contains("sqsrt.SinkDown"),
        "{error}"
    );
    assert!(
        opened.elapsed() < sqsrt_core::PROBE_EVERY,
        "within the period"
    );

    let app = HttpApp::start_on(addr).await?;
    let mut delivered = 0;
    while delivered < 3 {
        assert!(opened.elapsed() < Duration::from_secs(30), "not drained");
        if let Some(Invoked {
            records, listed, ..
        }) = esm.poll_once().await?
        {
            delivered += records - listed.map_or(records, |l| l.len());
        }
    }
    for id in &ids {
        assert_eq!(app.requests_for(id).len(), 1, "{id}");
    }
    Ok(())
}

/// Every message ended as the answer mapping says: the app saw each as often
/// as its answers make it retried, the permanent ones are in the DLQ with
/// the app's answer as the reason (`reasons`: body to `sqsrt.reason`), and
/// the outcome lines say so.
fn check_forwarded(
    app: &HttpApp,
    ids: &HashMap<&str, String>,
    processed: &[Processed],
    reasons: &HashMap<String, String>,
) -> anyhow::Result<()> {
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(
        reasons["redirect order 7"],
        format!("HTTP 302 from {}: moved", app.url)
    );
    assert_eq!(
        reasons["bad order 7"],
        format!("HTTP 422 from {}: unknown sku", app.url)
    );
    // Once when the first answer settled it, twice when it was retryable.
    let tries = |word: &str| app.requests_for(&ids[word]);
    for (word, expected) in [
        ("ok", 1),
        ("redirect", 1),
        ("bad", 1),
        ("flaky", 2),
        ("busy", 2),
        ("slow", 2),
    ] {
        let got = tries(word);
        assert_eq!(got.len(), expected, "{word}: {got:?}");
        for (n, request) in got.iter().enumerate() {
            check_request(request, word, n + 1)?;
        }
    }
    // Retry-After: 1 was honoured (the message came back no sooner).
    let busy = tries("busy");
    let waited = busy[1].at.duration_since(busy[0].at);
    assert!(waited >= Duration::from_millis(900), "{waited:?}");

    let outcomes = |word: &str| {
        processed
            .iter()
            .filter(|p| p.message_id == ids[word])
            .map(|p| p.outcome.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(outcomes("ok"), ["success"]);
    assert_eq!(outcomes("redirect"), ["permanent"]);
    assert_eq!(outcomes("bad"), ["permanent"]);
    assert_eq!(outcomes("flaky"), ["retry", "success"]);
    assert_eq!(outcomes("busy"), ["retry", "success"]);
    assert_eq!(outcomes("slow"), ["retry", "success"]);
    let slow_reason = processed
        .iter()
        .find(|p| p.message_id == ids["slow"] && p.outcome == "retry")
        .and_then(|p| p.reason.clone())
        .unwrap_or_default();
    assert!(slow_reason.contains("no answer"), "{slow_reason}");
    Ok(())
}

#[test]
fn a_missing_url_is_refused_at_start_naming_the_flag() -> anyhow::Result<()> {
    let out = std::process::Command::new(sqsrt_e2e::sqsrt_bin()?)
        .args([
            "worker",
            "--handler",
            "http",
            "--queue-url",
            "http://127.0.0.1:1/q",
        ])
        .env_remove("SQSRT_HTTP_URL")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--http-url") && stderr.contains("SQSRT_HTTP_URL"),
        "{stderr}"
    );
    Ok(())
}

/// One message per word of the app, `"<word> order 7"`, with a `String`
/// and a `Binary` attribute; their ids by word.
async fn send_words(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> anyhow::Result<HashMap<&'static str, String>> {
    let mut ids = HashMap::new();
    for word in ["ok", "redirect", "bad", "flaky", "busy", "slow"] {
        let sent = sqs
            .send_message()
            .queue_url(url)
            .message_body(format!("{word} order 7"))
            .message_attributes(
                "Tenant",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("acme")
                    .build()?,
            )
            .message_attributes(
                "Blob",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(aws_sdk_sqs::primitives::Blob::new(vec![1, 2]))
                    .build()?,
            )
            .send()
            .await?;
        ids.insert(word, sent.message_id.unwrap_or_default());
    }
    Ok(ids)
}

/// What the app must have seen of the `receive`-th delivery of `word`'s message.
fn check_request(request: &Request, word: &str, receive: usize) -> anyhow::Result<()> {
    assert_eq!(
        request.body,
        format!("{word} order 7"),
        "the body unchanged"
    );
    assert_eq!(
        request.header("sqsrt-receive-count"),
        Some(receive.to_string().as_str()),
        "{word}"
    );
    assert_eq!(request.header("sqsrt-attr-tenant"), Some("acme"));
    assert_eq!(request.header("sqsrt-attr-blob"), None, "binary: skipped");
    assert_eq!(
        request.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let sent_at: u64 = request.header("sqsrt-sent-at").unwrap_or("").parse()?;
    assert!(sent_at > 1_700_000_000_000, "epoch milliseconds: {sent_at}");
    Ok(())
}
