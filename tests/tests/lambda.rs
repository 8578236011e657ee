//! Lambda mode end to end: the release `sqsrt` binary serving the real
//! Runtime API of `cargo lambda watch`, invoked with `cargo lambda invoke`,
//! and under this crate's Runtime API stand-in for the deadline rule.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use sqsrt_e2e::runtime_api::{Reply, RuntimeApi};
use sqsrt_e2e::{
    BlackHole, ChildGuard, cargo, fixture, offline_aws_env, spawn_on_free_port, sqsrt_bin,
};

/// `cargo lambda watch --only-lambda-apis` on a free port, and `sqsrt`
/// polling it with the scripted handler.
struct Emulator {
    port: u16,
    _watch: ChildGuard,
    function: ChildGuard,
}

impl Emulator {
    fn start(extra_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let (watch, port) = spawn_on_free_port(
            "cargo lambda watch",
            |port| {
                let mut watch = cargo();
                watch
                    .args([
                        "lambda",
                        "watch",
                        "--only-lambda-apis",
                        "-A",
                        "127.0.0.1",
                        "-P",
                    ])
                    .arg(port.to_string())
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                watch
            },
            Duration::from_secs(30),
        )?;
        let mut function = Command::new(sqsrt_bin()?);
        function
            .envs(offline_aws_env())
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("SQSRT_HANDLER", "scripted")
            .env("SQSRT_LOG_LEVEL", "warn")
            .stdout(Stdio::null());
        for (k, v) in extra_env {
            function.env(k, v);
        }
        let function = ChildGuard::spawn("sqsrt", &mut function)?;
        Ok(Self {
            port,
            _watch: watch,
            function,
        })
    }

    /// `cargo lambda invoke --data-file`; the response JSON, or the error text.
    fn invoke(&mut self, data_file: &std::path::Path) -> anyhow::Result<Result<Value, String>> {
        self.function.check_running()?;
        let out = cargo()
            .args(["lambda", "invoke", "-A", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .arg("--data-file")
            .arg(data_file)
            .args(["--output-format", "json"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .context("cannot run cargo lambda invoke")?;
        if out.status.success() {
            let body: Value = serde_json::from_slice(&out.stdout).with_context(|| {
                format!(
                    "response is not JSON: {}",
                    String::from_utf8_lossy(&out.stdout)
                )
            })?;
            Ok(Ok(body))
        } else {
            Ok(Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }
}

/// `sqsrt` with the scripted handler, polling the Runtime API stand-in.
fn stand_in_function(api: &RuntimeApi) -> anyhow::Result<Command> {
    let mut function = Command::new(sqsrt_bin()?);
    function
        .envs(offline_aws_env())
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "sqsrt")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("SQSRT_HANDLER", "scripted");
    Ok(function)
}

fn failures(response: &Value) -> anyhow::Result<Vec<String>> {
    let Some(items) = response.get("batchItemFailures").and_then(Value::as_array) else {
        bail!("no batchItemFailures in {response}");
    };
    Ok(items
        .iter()
        .map(|i| {
            i["itemIdentifier"]
                .as_str()
                .unwrap_or("<not a string>")
                .to_owned()
        })
        .collect())
}

#[test]
fn cargo_lambda_invoke_returns_exact_partial_failures_for_every_fixture() -> anyhow::Result<()> {
    let expected: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&std::fs::read_to_string(fixture("expected.json"))?)?;
    assert!(expected.len() >= 4, "expected.json lists the fixtures");
    let mut emulator = Emulator::start(&[])?;
    for (name, want) in &expected {
        let response = emulator
            .invoke(&fixture(name))?
            .map_err(|e| anyhow::anyhow!("{name}: invocation failed: {e}"))?;
        assert_eq!(&failures(&response)?, want, "{name}");
    }

    let missing = emulator.invoke(&fixture("missing-message-id.json"))?;
    let error = missing.expect_err("an event with a record without messageId must fail as a whole");
    assert!(error.contains("sqsrt.InvalidEvent"), "{error}");
    assert!(error.contains("record 1 of 2 has no messageId"), "{error}");

    // The function survives a bad event and keeps serving.
    let again = emulator
        .invoke(&fixture("standard.json"))?
        .map_err(anyhow::Error::msg)?;
    assert_eq!(failures(&again)?, expected["standard.json"]);
    Ok(())
}

#[test]
fn all_failed_batch_is_an_error_only_when_asked() -> anyhow::Result<()> {
    let mut emulator = Emulator::start(&[("SQSRT_FAIL_INVOCATION_WHEN_ALL_FAIL", "true")])?;
    let error = emulator
        .invoke(&fixture("all-fail.json"))?
        .expect_err("all records failed and the flag is on");
    assert!(
        error.contains("sqsrt.AllRecordsFailed") && error.contains("all 4 records failed"),
        "{error}"
    );
    // A batch with one success is still a partial response.
    let response = emulator
        .invoke(&fixture("standard.json"))?
        .map_err(anyhow::Error::msg)?;
    assert_eq!(failures(&response)?.len(), 4);
    Ok(())
}

#[test]
fn ten_thousand_record_batch_lists_exactly_the_failures() -> anyhow::Result<()> {
    let records: Vec<Value> = (0..10_000)
        .map(|i| {
            let body = if i % 100 == 7 {
                r#"{"action":"fail"}"#
            } else {
                r#"{"action":"ok"}"#
            };
            json!({
                "messageId": format!("m-{i:05}"),
                "receiptHandle": format!("rh-{i}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:big",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("sqsrt-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("ten-thousand.json");
    std::fs::write(&file, serde_json::to_vec(&json!({ "Records": records }))?)?;

    let mut emulator = Emulator::start(&[("SQSRT_MAX_IN_FLIGHT", "256")])?;
    let response = emulator.invoke(&file)?.map_err(anyhow::Error::msg)?;
    let want: Vec<String> = (0..10_000)
        .filter(|i| i % 100 == 7)
        .map(|i| format!("m-{i:05}"))
        .collect();
    assert_eq!(failures(&response)?, want, "failures in record order");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_returns_a_response_listing_unstarted_and_abandoned_records() -> anyhow::Result<()>
{
    let api = RuntimeApi::start().await?;
    let mut function = stand_in_function(&api)?;
    function
        .env("SQSRT_MAX_IN_FLIGHT", "2")
        .env("SQSRT_DEADLINE_MARGIN_MS", "1000")
        .env("SQSRT_LOG_LEVEL", "warn")
        .stdout(Stdio::null());
    let _function = ChildGuard::spawn("sqsrt", &mut function)?;

    // Two 100 ms records, then six of 5 s, two at a time, 1.5 s before the
    // deadline: records 3 and 4 start (before deadline - 1 s) and are
    // abandoned at deadline - 0.5 s; 5 to 8 never start.
    let event = std::fs::read_to_string(fixture("deadline.json"))?;
    let deadline = Duration::from_millis(1500);
    let answer = api.invoke(event, deadline, Duration::from_secs(30)).await?;
    let Reply::Response(body) = answer.reply else {
        bail!("expected a response, got {:?}", answer.reply);
    };
    assert!(
        answer.elapsed < deadline,
        "response came {:?} after delivery, past the {deadline:?} deadline",
        answer.elapsed
    );
    let listed = failures(&serde_json::from_str(&body)?)?;
    let ids: Vec<String> = (3..=8)
        .map(|i| format!("d0000000-{i:04}-4000-8000-000000000000"))
        .collect();
    assert_eq!(listed, ids);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_fails_is_reported_to_the_init_error_route_and_exits_non_zero()
-> anyhow::Result<()> {
    let api = RuntimeApi::start().await?;
    let mut function = stand_in_function(&api)?;
    function
        .env("SQSRT_MAX_IN_FLIGHT", "0")
        .env("SQSRT_DEADLINE_MARGIN_MS", "600001");
    let out = tokio::task::spawn_blocking(move || function.output()).await??;
    let stderr = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let errors = api.init_errors();
    assert_eq!(errors.len(), 1, "one init error: {errors:?}");
    let report: Value = serde_json::from_str(&errors[0])?;
    assert_eq!(report["errorType"], "sqsrt.InvalidConfiguration");
    let message = report["errorMessage"].as_str().unwrap_or_default();
    for name in ["SQSRT_MAX_IN_FLIGHT", "SQSRT_DEADLINE_MARGIN_MS"] {
        assert!(message.contains(name), "{name} missing from {message}");
        assert!(
            stderr.contains(name),
            "{name} missing from stderr: {stderr}"
        );
    }
    Ok(())
}

#[test]
fn help_documents_every_flag_with_its_variable_and_default() -> anyhow::Result<()> {
    let help = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new(sqsrt_bin()?).args(args).output()?;
        assert!(out.status.success(), "{args:?}");
        Ok(String::from_utf8(out.stdout)?)
    };
    let lambda = help(&["lambda", "--help"])?;
    let worker = help(&["worker", "--help"])?;
    let common = [
        ("--handler", "SQSRT_HANDLER", Some("log")),
        ("--dlq-url", "SQSRT_DLQ_URL", None),
        ("--max-in-flight", "SQSRT_MAX_IN_FLIGHT", Some("32")),
        (
            "--max-in-flight-per-group",
            "SQSRT_MAX_IN_FLIGHT_PER_GROUP",
            Some("0"),
        ),
        ("--threads", "SQSRT_THREADS", None),
        (
            "--handler-timeout-secs",
            "SQSRT_HANDLER_TIMEOUT_SECS",
            Some("20"),
        ),
        ("--retry-base-secs", "SQSRT_RETRY_BASE_SECS", Some("2")),
        ("--retry-max-secs", "SQSRT_RETRY_MAX_SECS", Some("900")),
        ("--log-level", "SQSRT_LOG_LEVEL", Some("info")),
    ];
    let lambda_only = [
        (
            "--deadline-margin-ms",
            "SQSRT_DEADLINE_MARGIN_MS",
            Some("500"),
        ),
        (
            "--fail-invocation-when-all-fail",
            "SQSRT_FAIL_INVOCATION_WHEN_ALL_FAIL",
            None,
        ),
    ];
    let worker_only = [
        ("--queue-url", "SQSRT_QUEUE_URL", None),
        (
            "--visibility-timeout-secs",
            "SQSRT_VISIBILITY_TIMEOUT_SECS",
            None,
        ),
        ("--heartbeat-secs", "SQSRT_HEARTBEAT_SECS", None),
        (
            "--shutdown-grace-secs",
            "SQSRT_SHUTDOWN_GRACE_SECS",
            Some("25"),
        ),
        ("--metrics-addr", "SQSRT_METRICS_ADDR", Some("0.0.0.0:9090")),
    ];
    let check = |text: &str, flags: &[(&str, &str, Option<&str>)]| {
        for (flag, var, default) in flags {
            let start = text
                .find(&format!("      {flag}"))
                .unwrap_or_else(|| panic!("{flag} missing"));
            let section = &text[start..];
            let end = section[2..]
                .find("\n      --")
                .map_or(section.len(), |e| e + 2);
            let section = &section[..end];
            assert!(
                section.contains(&format!("[env: {var}")),
                "{flag}: no {var} in {section}"
            );
            if let Some(default) = default {
                assert!(
                    section.contains(&format!("default: {default}")),
                    "{flag}: no default {default} in {section}"
                );
            }
        }
    };
    check(&lambda, &common);
    check(&lambda, &lambda_only);
    check(&worker, &common);
    check(&worker, &worker_only);

    let version = help(&["--version"])?;
    assert_eq!(
        version.trim(),
        format!("sqsrt {}", env!("CARGO_PKG_VERSION"))
    );

    for (env, name) in [
        ("SQSRT_MAX_IN_FLIGHT", "0"),
        ("SQSRT_HANDLER", "nope"),
        ("SQSRT_RETRY_MAX_SECS", "99999"),
    ] {
        let out = Command::new(sqsrt_bin()?)
            .arg("lambda")
            .env(env, name)
            .output()?;
        let stderr = String::from_utf8(out.stderr)?;
        assert_eq!(out.status.code(), Some(2), "{env}={name}: {stderr}");
        assert!(stderr.contains(env), "{env}={name}: {stderr}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_gets_exactly_one_outcome_line_carrying_the_request_id() -> anyhow::Result<()>
{
    let api = RuntimeApi::start().await?;
    let mut function = stand_in_function(&api)?;
    function.stdout(Stdio::piped());
    let mut child = function.spawn()?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let guard = ChildGuard::from_child("sqsrt", child);

    let event = std::fs::read_to_string(fixture("standard.json"))?;
    let answer = api
        .invoke(event, Duration::from_secs(30), Duration::from_secs(30))
        .await?;
    assert!(
        matches!(answer.reply, Reply::Response(_)),
        "{:?}",
        answer.reply
    );
    drop(guard); // killed: every finished line must already be out

    let text = std::io::read_to_string(stdout)?;
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not a JSON line: {l}")))
        .collect::<anyhow::Result<_>>()?;
    let outcomes: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("outcome").is_some())
        .collect();
    let mut ids: Vec<&str> = outcomes
        .iter()
        .filter_map(|l| l["message_id"].as_str())
        .collect();
    ids.sort_unstable();
    let want: Vec<String> = (1..=8)
        .map(|i| format!("a1b2c3d4-{i:04}-4000-8000-{i:012}"))
        .collect();
    assert_eq!(ids, want, "one outcome line per record");
    for line in &lines {
        if line.get("message_id").is_some() || line.get("panic").is_some() {
            assert_eq!(line["request_id"], "req-1", "{line}");
        }
    }
    let kinds: BTreeMap<&str, usize> = outcomes.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l["outcome"].as_str().unwrap_or("?")).or_default() += 1;
        m
    });
    assert_eq!(
        kinds,
        BTreeMap::from([("permanent", 2), ("retry", 2), ("success", 4)])
    );
    // The same fields as the worker's line (a panicked handler has no
    // duration: the engine times only handlers that returned).
    for line in &outcomes {
        assert!(
            line["receive_count"].as_u64().is_some_and(|c| c >= 1),
            "{line}"
        );
        if line["outcome"] == "success" {
            assert!(line["duration_ms"].as_u64().is_some(), "{line}");
        }
    }
    Ok(())
}

/// One SQS record for the bad-input suite.
fn bad_input_record(id: &str, body: &Value, attributes: &Value) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": format!("rh-{id}"),
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1732345200000"},
        "messageAttributes": attributes,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:orders",
        "awsRegion": "us-east-1"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_or_exact_partial_responses_and_the_runtime_survives()
-> anyhow::Result<()> {
    let api = RuntimeApi::start().await?;
    let mut function = stand_in_function(&api)?;
    function.env("SQSRT_HANDLER", "log").stdout(Stdio::null());
    let mut process = ChildGuard::spawn("sqsrt", &mut function)?;
    let invoke = |event: String| {
        let api = &api;
        async move {
            api.invoke(event, Duration::from_secs(30), Duration::from_secs(30))
                .await
                .map(|a| a.reply)
        }
    };

    // Invalid events: an error naming what is wrong, never a crash.
    let max_body = "x".repeat(1024 * 1024); // SQS's largest message, 1 MiB
    let invalid: [(&str, String, &str); 6] = [
        ("malformed JSON", "{\"Records\": [".to_owned(), "EOF"),
        ("not JSON at all", "hello".to_owned(), "expected"),
        ("an API Gateway event", r#"{"httpMethod":"GET","path":"/"}"#.to_owned(), "Records"),
        (
            "an S3 event",
            r#"{"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":"b"}}}]}"#.to_owned(),
            "messageId",
        ),
        (
            "a lone surrogate in a body (not valid UTF-8, SQS never sends it)",
            json!({"Records": [bad_input_record("a", &json!("x"), &json!({}))]})
                .to_string()
                .replace("\"body\":\"x\"", "\"body\":\"\\ud800\""),
            "Records[0].body",
        ),
        (
            "a binary attribute that is not base64",
            json!({"Records": [bad_input_record("a", &json!("x"), &json!({"k": {"dataType": "Binary", "binaryValue": "%%%"}}))]}).to_string(),
            "base64",
        ),
    ];
    for (what, event, named) in invalid {
        match invoke(event).await? {
            Reply::Error(error) => assert!(
                error.to_lowercase().contains(&named.to_lowercase()),
                "{what}: the error does not name {named:?}: {error}"
            ),
            Reply::Response(body) => bail!("{what}: accepted: {body}"),
        }
        process.check_running()?;
    }

    // Valid but unusual: every record succeeds, so nothing is listed.
    let unusual = json!({"Records": [
        bad_input_record("max-size", &json!(max_body), &json!({})),
        bad_input_record("controls-and-unicode", &json!("nul \u{0} tab \t quote \" emoji \u{1F980} e\u{301} \u{FFFD}"), &json!({})),
        bad_input_record("empty-body", &json!(""), &json!({})),
        bad_input_record("every-attribute-type", &json!("{}"), &json!({
            "s": {"dataType": "String", "stringValue": "v"},
            "n": {"dataType": "Number", "stringValue": "-1.5e3"},
            "b": {"dataType": "Binary", "binaryValue": "AAEC/w=="},
            "sc": {"dataType": "String.custom", "stringValue": "{\"json\":true}"},
            "nf": {"dataType": "Number.float", "stringValue": "3.14"},
            "bg": {"dataType": "Binary.gzip", "binaryValue": "H4sIAAAAAAAA/w=="},
            "lists": {"dataType": "String", "stringValue": "x", "stringListValues": [], "binaryListValues": []}
        })),
    ]});
    let event = unusual.to_string();
    assert!(
        event.len() > 1024 * 1024,
        "the event carries the 1 MiB body"
    );
    match invoke(event).await? {
        Reply::Response(body) => assert_eq!(
            failures(&serde_json::from_str(&body)?)?,
            Vec::<String>::new()
        ),
        Reply::Error(error) => bail!("valid records refused: {error}"),
    }

    // After all of it, the same process still serves a standard batch.
    let standard = std::fs::read_to_string(fixture("standard.json"))?;
    assert!(matches!(invoke(standard).await?, Reply::Response(_)));
    process.check_running()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emf_lines_report_each_invocation_by_outcome() -> anyhow::Result<()> {
    let api = RuntimeApi::start().await?;
    let mut function = stand_in_function(&api)?;
    function
        .env("SQSRT_EMF_NAMESPACE", "sqsrt/e2e")
        .stdout(Stdio::piped());
    let mut child = function.spawn()?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let guard = ChildGuard::from_child("sqsrt", child);
    let event = std::fs::read_to_string(fixture("standard.json"))?;
    api.invoke(event, Duration::from_secs(30), Duration::from_secs(30))
        .await?;
    drop(guard);

    let text = std::io::read_to_string(stdout)?;
    let docs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).with_context(|| format!("not a JSON line: {l}")))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .collect();
    let by_outcome: BTreeMap<&str, u64> = docs
        .iter()
        .map(|d| {
            (
                d["Outcome"].as_str().unwrap_or("?"),
                d["sqsrt_messages_processed"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        by_outcome,
        BTreeMap::from([("permanent", 2), ("retry", 2), ("success", 4)]),
        "{docs:?}"
    );
    for doc in &docs {
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "sqsrt/e2e"
        );
        assert_eq!(doc["FunctionName"], "sqsrt");
        assert!(doc["_aws"]["Timestamp"].as_u64().is_some());
    }
    let with_invocation: Vec<&Value> = docs
        .iter()
        .filter(|d| d.get("sqsrt_invocation_duration_seconds").is_some())
        .collect();
    assert_eq!(
        with_invocation.len(),
        1,
        "the invocation's own metrics once"
    );
    assert!(
        with_invocation[0]["sqsrt_handler_duration_seconds"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );
    Ok(())
}

/// An event of `records` records with `body`, each id naming its invocation.
fn event_of(invocation: usize, records: usize, body: &str) -> String {
    let records: Vec<Value> = (0..records)
        .map(|i| bad_input_record(&format!("inv{invocation}-rec{i}"), &json!(body), &json!({})))
        .collect();
    json!({ "Records": records }).to_string()
}

/// Queues `events` all at once; the answers in the same order.
async fn invoke_all(
    api: &RuntimeApi,
    events: Vec<String>,
) -> anyhow::Result<Vec<sqsrt_e2e::runtime_api::Answer>> {
    let ids: Vec<String> = events
        .into_iter()
        .map(|e| api.queue(e, Duration::from_secs(30)))
        .collect();
    let mut answers = Vec::with_capacity(ids.len());
    for id in &ids {
        answers.push(api.answer(id, Duration::from_secs(30)).await?);
    }
    Ok(answers)
}

/// Lambda Managed Instances: with `AWS_LAMBDA_MAX_CONCURRENCY=4` one process
/// takes four invocations at once; with `--max-in-flight 2` their records
/// share one bound (four invocations of two 300 ms records cannot finish in
/// under 1.2 s; with a bound per invocation they would in 0.3 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_instances_serve_concurrent_invocations_through_one_bound() -> anyhow::Result<()> {
    let body = r#"{"action":"sleep","ms":300}"#;
    for (max_in_flight, invocations) in [(16, 8), (2, 4)] {
        let api = RuntimeApi::start().await?;
        let mut function = stand_in_function(&api)?;
        function
            .env("AWS_LAMBDA_MAX_CONCURRENCY", "4")
            .env("SQSRT_MAX_IN_FLIGHT", max_in_flight.to_string())
            .env("SQSRT_LOG_LEVEL", "warn");
        let _guard = ChildGuard::spawn("sqsrt", &mut function)?;
        api.first_poll(Duration::from_secs(10)).await?;
        let start = std::time::Instant::now();
        let events = (0..invocations).map(|n| event_of(n, 2, body)).collect();
        let answers = invoke_all(&api, events).await?;
        let took = start.elapsed();
        for answer in &answers {
            let Reply::Response(text) = &answer.reply else {
                bail!("an invocation failed: {:?}", answer.reply);
            };
            assert!(failures(&serde_json::from_str(text)?)?.is_empty(), "{text}");
        }
        println!(
            "max-in-flight {max_in_flight}: {invocations} invocations of 2 x 300 ms in {took:?}, {} at once at most",
            api.peak_outstanding()
        );
        assert_eq!(
            api.peak_outstanding(),
            4,
            "AWS_LAMBDA_MAX_CONCURRENCY invocations at once, never more"
        );
        if max_in_flight == 2 {
            assert!(
                took >= Duration::from_millis(1_200),
                "8 records of 300 ms through one bound of 2 took {took:?}"
            );
        }
    }
    Ok(())
}

/// Each of several concurrent invocations keeps its own request id and trace
/// id: in its log lines (the span) and in the handler's `Context` (the
/// `context` example logs what it reads there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_keep_their_ids_in_log_lines_and_the_handler_context()
-> anyhow::Result<()> {
    let example = example_bin("context")?;
    let api = RuntimeApi::start().await?;
    let mut function = Command::new(example);
    function
        .envs(offline_aws_env())
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "context")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_MAX_CONCURRENCY", "3")
        .stdout(Stdio::piped());
    let mut child = function.spawn()?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let guard = ChildGuard::from_child("context example", child);
    api.first_poll(Duration::from_secs(10)).await?;
    let events = (0..6).map(|n| event_of(n, 3, r#"{"ms":200}"#)).collect();
    invoke_all(&api, events).await?;
    assert_eq!(api.peak_outstanding(), 3);
    drop(guard);

    let text = std::io::read_to_string(stdout)?;
    let handled: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "Handling.")
        .collect();
    assert_eq!(handled.len(), 18, "{text}");
    let mut requests = std::collections::BTreeSet::new();
    for line in &handled {
        let request_id = line["request_id"].as_str().context("no request_id")?;
        assert_eq!(line["invocation_request_id"], request_id, "{line}");
        assert_eq!(
            line["invocation_trace_id"],
            RuntimeApi::trace_id(request_id),
            "{line}"
        );
        assert_eq!(line["xray_trace_id"], RuntimeApi::trace_id(request_id));
        requests.insert(request_id.to_owned());
    }
    assert_eq!(requests.len(), 6, "six invocations, each its own ids");
    Ok(())
}

/// A `crates/sqsrt` example, built by `cargo test --workspace`; built here
/// when missing.
fn example_bin(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        std::path::PathBuf::from,
    );
    let path = target.join("debug/examples").join(name);
    if !path.is_file() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--locked", "-q", "-p", "sqsrt", "--example", name])
            .status()?;
        anyhow::ensure!(status.success(), "cannot build the {name} example");
    }
    Ok(path)
}

/// SQS unreachable, refused (port 9 of loopback) or hanging (a server that
/// never answers): the first invocation's calls are bounded and turn SQS
/// calls off with one warning; the next invocations make none (the hanging
/// server sees no new connection) and still list every failed record,
/// permanent ones included (not dead-lettered: retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_sqs_costs_one_bounded_invocation_then_no_calls() -> anyhow::Result<()> {
    let hole = BlackHole::start().await?;
    for endpoint in ["http://127.0.0.1:9".to_owned(), hole.endpoint()] {
        let api = RuntimeApi::start().await?;
        let mut function = stand_in_function(&api)?;
        function
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env(
                "SQSRT_DLQ_URL",
                format!("{endpoint}/000000000000/unreachable-dlq"),
            )
            .env("SQSRT_LOG_LEVEL", "warn")
            .stdout(Stdio::piped());
        let mut child = function.spawn()?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let guard = ChildGuard::from_child("sqsrt", child);
        let records: Vec<Value> = (0..200)
            .map(|i| {
                let body = if i % 4 == 0 {
                    r#"{"action":"reject"}"#
                } else {
                    r#"{"action":"fail"}"#
                };
                bad_input_record(&format!("m{i}"), &json!(body), &json!({}))
            })
            .collect();
        let event = json!({ "Records": records }).to_string();
        let mut took = Vec::new();
        let mut after_first = 0;
        for n in 0..4 {
            let (text, elapsed) = api
                .invoke_ok(event.clone(), Duration::from_secs(30))
                .await
                .with_context(|| format!("invocation {n}"))?;
            assert_eq!(
                failures(&serde_json::from_str(&text)?)?.len(),
                200,
                "all listed"
            );
            took.push(elapsed);
            if n == 0 {
                after_first = hole.accepted();
            }
        }
        drop(guard);
        let text = std::io::read_to_string(stdout)?;
        let warnings = text.matches("SQS cannot be reached").count();
        println!("{endpoint}: invocations took {took:?}; {warnings} warning(s)");
        assert_eq!(warnings, 1, "one warning for the outage: {text}");
        assert_eq!(
            hole.accepted(),
            after_first,
            "no call after the first invocation"
        );
    }
    assert!(hole.accepted() > 0, "the hanging server was called");
    Ok(())
}

/// The per-tenant cap in Lambda mode: on a standard queue, six records of
/// tenant A with `--max-in-flight-per-group 2` run two at a time (three
/// waves of 1 s: the invocation cannot end before 3 s; uncapped it takes
/// 1 s), while tenant B's four run at once beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_cap_waits_within_the_invocation() -> anyhow::Result<()> {
    let records: Vec<Value> = (0..10)
        .map(|i| {
            let mut record = bad_input_record(
                &format!("m{i}"),
                &json!(r#"{"action":"sleep","ms":1000}"#),
                &json!({}),
            );
            record["attributes"]["MessageGroupId"] = json!(if i < 6 { "A" } else { "B" });
            record
        })
        .collect();
    let event = json!({ "Records": records }).to_string();
    let mut took = Vec::new();
    for cap in ["0", "2"] {
        let api = RuntimeApi::start().await?;
        let mut function = stand_in_function(&api)?;
        function
            .env("SQSRT_MAX_IN_FLIGHT_PER_GROUP", cap)
            .env("SQSRT_LOG_LEVEL", "warn");
        let _guard = ChildGuard::spawn("sqsrt", &mut function)?;
        let (text, elapsed) = api
            .invoke_ok(event.clone(), Duration::from_secs(30))
            .await?;
        assert!(
            failures(&serde_json::from_str(&text)?)?.is_empty(),
            "{text}"
        );
        took.push(elapsed);
    }
    println!(
        "six of tenant A and four of B, 1 s each: uncapped {:?}, cap 2 {:?}",
        took[0], took[1]
    );
    assert!(
        took[1] >= Duration::from_millis(3_000),
        "tenant A two at a time: three waves, {:?}",
        took[1]
    );
    Ok(())
}

/// A label, the function's environment, and the threads it must start.
type ThreadCase<'a> = (&'a str, &'a [(&'a str, &'a str)], usize);

/// Runtime threads on Lambda follow the memory size (one below 1,769 MB,
/// whatever the VM shows; one per 1,769 MB above, up to the CPUs shown),
/// except under Managed Instances and with `--threads`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_threads_follow_the_memory_size() -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism()?.get();
    let cases: [ThreadCase<'_>; 5] = [
        ("256 MB", &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")], 1),
        (
            "1,769 MB",
            &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")],
            1,
        ),
        (
            "2,048 MB",
            &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")],
            cpus.min(2),
        ),
        (
            "Managed Instances",
            &[
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
                ("AWS_LAMBDA_MAX_CONCURRENCY", "4"),
            ],
            cpus,
        ),
        (
            "--threads 3",
            &[
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
                ("SQSRT_THREADS", "3"),
            ],
            3,
        ),
    ];
    for (label, env, want) in cases {
        let api = RuntimeApi::start().await?;
        let mut function = stand_in_function(&api)?;
        function.envs(env.iter().copied()).stdout(Stdio::piped());
        let mut child = function.spawn()?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let guard = ChildGuard::from_child("sqsrt", child);
        api.first_poll(Duration::from_secs(10)).await?;
        drop(guard);
        let text = std::io::read_to_string(stdout)?;
        let started = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "sqsrt started.")
            .with_context(|| format!("{label}: no start line in {text}"))?;
        assert_eq!(started["threads"], want, "{label}: {started}");
    }
    Ok(())
}
