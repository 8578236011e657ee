//! Measures the release `sqsrt` in Lambda mode and prints a markdown table:
//! binary size, exec to first Runtime API poll (median of N starts), warm
//! invocation latency for 10- and 10,000-record events, peak RSS, and Lambda
//! Managed Instances: N = 1, 2, 4, 8 concurrent invocations
//! (`AWS_LAMBDA_MAX_CONCURRENCY=N`) of 10 records with a 100 ms handler,
//! wall time per round and CPU per invocation.
//!
//! `cargo run --release -p sqsrt-e2e --bin lambda-measure [-- --starts N] [--invocations N] [--rounds N] [--rows]`
//! (`--rows`: table rows without the header, for `scripts/bench.sh`)

// Sizes and RSS are far below 2^52: the f64 display is exact enough.
#![allow(clippy::cast_precision_loss)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sqsrt_e2e::runtime_api::{Reply, RuntimeApi};
use sqsrt_e2e::{
    ChildGuard, bench_event, cpu_time, number_flag, offline_aws_env, peak_rss_kib, sqsrt_bin,
};

fn event(n: usize) -> anyhow::Result<String> {
    bench_event(n, |_| None)
}

/// Invocations of each size run before the measured ones, not counted.
const WARM_UP: usize = 5;

fn spawn(api: &RuntimeApi, handler: &str) -> anyhow::Result<(ChildGuard, u32, Instant)> {
    spawn_with(api, handler, &[])
}

fn spawn_with(
    api: &RuntimeApi,
    handler: &str,
    env: &[(&str, String)],
) -> anyhow::Result<(ChildGuard, u32, Instant)> {
    let mut cmd = Command::new(sqsrt_bin()?);
    cmd.envs(offline_aws_env())
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "sqsrt")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("SQSRT_HANDLER", handler)
        .env(
            "SQSRT_LOG_LEVEL",
            std::env::var("MEASURE_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
        )
        // The caller's settings last: they win.
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null());
    let started = Instant::now();
    let child = cmd.spawn().context("cannot start sqsrt")?;
    let pid = child.id();
    Ok((ChildGuard::from_child("sqsrt", child), pid, started))
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let starts = number_flag(&args, "--starts", 20)?;
    let invocations = number_flag(&args, "--invocations", 10)?;
    let bin = sqsrt_bin()?;
    let size = std::fs::metadata(&bin)?.len();

    let mut cold = Vec::new();
    let mut idle_rss = 0;
    for _ in 0..starts {
        let api = RuntimeApi::start().await?;
        let (_child, pid, started) = spawn(&api, "noop")?;
        let first = api.first_poll(Duration::from_secs(10)).await?;
        cold.push(first - started);
        idle_rss = idle_rss.max(peak_rss_kib(pid)?);
    }

    // The no-op handler: sqsrt's own cost. Then the scripted handler, which
    // JSON-decodes every body, for scale.
    let mut rows = Vec::new();
    let mut busy_rss = 0;
    for (handler, sizes) in [("noop", &[10, 10_000][..]), ("scripted", &[10_000][..])] {
        let api = RuntimeApi::start().await?;
        let (_child, pid, _) = spawn(&api, handler)?;
        for &n in sizes {
            let body = event(n)?;
            let mut times = Vec::new();
            let measured = if n == 10 {
                invocations * 5
            } else {
                invocations
            };
            // The first invocations of a size grow the heap (page faults on
            // fresh memory): run and drop WARM_UP of them, as criterion warms
            // up, so the median is of warm invocations.
            for round in 0..WARM_UP.min(measured) + measured {
                let answer = api
                    .invoke(
                        body.clone(),
                        Duration::from_secs(60),
                        Duration::from_secs(60),
                    )
                    .await?;
                let Reply::Response(text) = &answer.reply else {
                    bail!("invocation failed: {:?}", answer.reply);
                };
                if !text.contains("\"batchItemFailures\":[]") {
                    bail!("unexpected failures: {text}");
                }
                if round >= WARM_UP.min(measured) {
                    times.push(answer.elapsed);
                }
            }
            rows.push((handler, n, body.len(), times.len(), median(times)));
        }
        busy_rss = busy_rss.max(peak_rss_kib(pid)?);
    }

    let rounds = number_flag(&args, "--rounds", 50)?;
    let concurrent = managed_instances_rows(rounds).await?;
    let unreachable = unreachable_rows(invocations).await?;

    if !args.iter().any(|a| a == "--rows") {
        println!("| measure | median (min-max) | target |");
        println!("|---|---|---|");
    }
    println!(
        "| Lambda: static binary ({}) | {:.1} MB | < 8 MB, + < 1.5 MB for the `kafka` forwarder |",
        bin.file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
        size as f64 / 1_000_000.0
    );
    let (lo, mid, hi) = median(cold);
    println!(
        "| Lambda: exec to first Runtime API poll, {starts} starts | {} ({}-{}) | < 10 ms |",
        ms(mid),
        ms(lo),
        ms(hi)
    );
    for (handler, n, bytes, count, (lo, mid, hi)) in rows {
        let target = if n == 10_000 && handler == "noop" {
            "< 20 ms"
        } else {
            ""
        };
        println!(
            "| Lambda: warm invocation, {n} records ({} KB event), `{handler}` handler, {count} invocations after {WARM_UP} unmeasured | {} ({}-{}) | {target} |",
            bytes / 1000,
            ms(mid),
            ms(lo),
            ms(hi)
        );
    }
    println!(
        "| Lambda: peak RSS idle (after first poll) | {:.1} MiB | < 20 MB |",
        idle_rss as f64 / 1024.0
    );
    println!(
        "| Lambda: peak RSS after 10,000-record batches | {:.1} MiB | |",
        busy_rss as f64 / 1024.0
    );
    for row in concurrent.iter().chain(&unreachable) {
        println!("{row}");
    }
    Ok(())
}

/// The Managed Instances rows: N = 1, 2, 4, 8 concurrent invocations.
async fn managed_instances_rows(rounds: usize) -> anyhow::Result<Vec<String>> {
    let mut concurrent = Vec::new();
    // --max-in-flight 80 leaves room for all 8 x 10 records; at the default
    // 32 the shared budget takes 8 invocations in three waves.
    for (n, max_in_flight) in [(1, 80), (2, 80), (4, 80), (8, 80), (8, 32)] {
        concurrent.push((
            n,
            max_in_flight,
            managed_instances(n, max_in_flight, rounds).await?,
        ));
    }

    let mut rows = Vec::new();
    for (n, max_in_flight, (wall, cpu)) in concurrent {
        let (lo, mid, hi) = wall;
        let target = if max_in_flight >= n * 10 {
            "~100 ms"
        } else {
            "~300 ms (3 waves)"
        };
        rows.push(format!(
            "| Lambda Managed Instances: {n} concurrent invocation(s) of 10 records, 100 ms handler, --max-in-flight {max_in_flight}, {rounds} rounds: wall per round; CPU per invocation {:.2} ms | {} ({}-{}) | {target} |",
            cpu.as_secs_f64() * 1000.0,
            ms(mid),
            ms(lo),
            ms(hi)
        ));
    }
    Ok(rows)
}

/// A 10,000-record invocation of which one record in seven fails (1,429
/// visibility changes: 143 calls), with SQS reachable (LocalStack, when
/// `SQSRT_LOCALSTACK_ENDPOINT` is set), refused (port 9 of loopback), and
/// hanging (a loopback server that accepts and never answers), and with no
/// failure at all (no SQS call: the floor). The first invocation, then the
/// median of `invocations` more.
async fn unreachable_rows(invocations: usize) -> anyhow::Result<Vec<String>> {
    let failing = bench_event(10_000, |i| {
        Some(if i % 7 == 0 {
            r#"{"action":"fail"}"#
        } else {
            r#"{"action":"ok"}"#
        })
    })?;
    let passing = bench_event(10_000, |_| Some(r#"{"action":"ok"}"#))?;
    let hole = sqsrt_e2e::BlackHole::start().await?;
    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    // Reachable: the records' queue exists in LocalStack, so every
    // visibility change is a real call (answered with an entry failure
    // each: the receipt handles are made up).
    let reachable;
    if let Ok(endpoint) = std::env::var("SQSRT_LOCALSTACK_ENDPOINT") {
        let sqs = sqsrt_e2e::localstack::client().await?;
        let queues = sqsrt_e2e::localstack::create_queues(&sqs, "measure", false, 30, 5).await?;
        let name = queues.url.rsplit('/').next().unwrap_or_default().to_owned();
        reachable = failing.replace(
            "arn:aws:sqs:us-east-2:123456789012:my-queue",
            &format!("arn:aws:sqs:us-east-1:000000000000:{name}"),
        );
        cases.push(("SQS reachable (LocalStack)", endpoint, reachable.as_str()));
    }
    cases.push((
        "SQS refused (closed port)",
        "http://127.0.0.1:9".into(),
        &failing,
    ));
    cases.push(("SQS hanging (never answers)", hole.endpoint(), &failing));
    cases.push((
        "no failures, no SQS call (floor)",
        "http://127.0.0.1:9".into(),
        &passing,
    ));
    let mut rows = Vec::new();
    for (label, endpoint, body) in cases {
        let api = RuntimeApi::start().await?;
        let (_child, _, _) = spawn_with(
            &api,
            "scripted",
            &[
                ("AWS_ENDPOINT_URL", endpoint),
                ("SQSRT_LOG_LEVEL", "warn".into()),
            ],
        )?;
        let mut times = Vec::new();
        for _ in 0..=invocations {
            let (_, elapsed) = api
                .invoke_ok(body.to_owned(), Duration::from_secs(60))
                .await?;
            times.push(elapsed);
        }
        let first = times.remove(0);
        let (lo, mid, hi) = median(times);
        rows.push(format!(
            "| Lambda: 10,000 records, 1 in 7 failing, {label}: first invocation {}; then | {} ({}-{}) | |",
            ms(first),
            ms(mid),
            ms(lo),
            ms(hi)
        ));
    }
    Ok(rows)
}

/// `AWS_LAMBDA_MAX_CONCURRENCY=n`: `rounds` rounds of `n` invocations queued
/// at once (10 records, `scripted` sleeping 100 ms); wall time per round
/// (min, median, max) and the process's CPU per invocation.
async fn managed_instances(
    n: usize,
    max_in_flight: usize,
    rounds: usize,
) -> anyhow::Result<((Duration, Duration, Duration), Duration)> {
    let api = RuntimeApi::start().await?;
    let (_child, pid, _) = spawn_with(
        &api,
        "scripted",
        &[
            ("AWS_LAMBDA_MAX_CONCURRENCY", n.to_string()),
            ("SQSRT_MAX_IN_FLIGHT", max_in_flight.to_string()),
        ],
    )?;
    let body = bench_event(10, |_| Some(r#"{"action":"sleep","ms":100}"#))?;
    for _ in 0..WARM_UP {
        round(&api, n, &body).await?;
    }
    let cpu_before = cpu_time(pid)?;
    let mut walls = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        round(&api, n, &body).await?;
        walls.push(start.elapsed());
    }
    let cpu = cpu_time(pid)?.saturating_sub(cpu_before);
    let per_invocation = cpu / u32::try_from(rounds * n)?;
    Ok((median(walls), per_invocation))
}

/// `n` invocations of `body` queued at once, all answered without failures.
async fn round(api: &RuntimeApi, n: usize, body: &str) -> anyhow::Result<()> {
    let ids: Vec<String> = (0..n)
        .map(|_| api.queue(body.to_owned(), Duration::from_secs(60)))
        .collect();
    for id in &ids {
        let answer = api.answer(id, Duration::from_secs(60)).await?;
        let Reply::Response(text) = &answer.reply else {
            bail!("invocation failed: {:?}", answer.reply);
        };
        if !text.contains("\"batchItemFailures\":[]") {
            bail!("unexpected failures: {text}");
        }
    }
    Ok(())
}
