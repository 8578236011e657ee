//! Measures the release `sqsrt worker` against LocalStack and prints a
//! markdown table: messages/s for a no-op and a 100 ms handler at
//! `--max-in-flight 100`, CPU time per 1,000 messages, peak RSS, and
//! SIGTERM-to-exit under load.
//!
//! Needs `SQSRT_LOCALSTACK_ENDPOINT` (see `scripts/measure-worker.sh`).
//! `cargo run --release -p sqsrt-e2e --bin worker-measure [-- --messages N]`

// Counts and times far below 2^52: the f64 display is exact enough.
#![allow(clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqsrt_e2e::localstack;
use sqsrt_e2e::peak_rss_kib;
use sqsrt_e2e::worker_proc::WorkerProc;

/// user + system CPU time of a process, from /proc.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat format")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // Linux reports CPU time in clock ticks of 1/100 s (USER_HZ).
    Ok(Duration::from_millis(ticks * 10))
}

fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    Ok(peak_rss_kib(pid)? as f64 / 1024.0)
}

struct Run {
    rate: f64,
    cpu_per_1000: Duration,
    rss_mib: f64,
}

async fn drain_run(sqs: &aws_sdk_sqs::Client, n: usize, body: &str) -> anyhow::Result<Run> {
    let queues = localstack::create_queues(sqs, "measure", false, 30, 5).await?;
    let bodies: Vec<String> = (0..n).map(|_| body.to_owned()).collect();
    localstack::send(sqs, &queues.url, &bodies).await?;
    let worker = WorkerProc::start(
        &queues.url,
        &["--max-in-flight", "100", "--log-level", "info"],
    )?;
    let cpu_before = cpu_time(worker.pid())?;
    let start = Instant::now();
    loop {
        let done = worker.metric(r#"sqsrt_messages_processed_total{outcome="success"}"#)?;
        if done >= i64::try_from(n)? {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(300),
            "drain took too long"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = start.elapsed();
    let cpu = cpu_time(worker.pid())?.saturating_sub(cpu_before);
    Ok(Run {
        rate: n as f64 / took.as_secs_f64(),
        cpu_per_1000: cpu.mul_f64(1000.0 / n as f64),
        rss_mib: peak_rss_mib(worker.pid())?,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--messages")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(3000), |s| s.parse())?;
    let sqs = localstack::client().await?;

    let noop = drain_run(&sqs, n, r#"{"action":"ok"}"#).await?;
    let slow = drain_run(&sqs, n, r#"{"action":"sleep","ms":100}"#).await?;

    // SIGTERM at full load: 100 handlers of 1 s running.
    let queues = localstack::create_queues(&sqs, "measure-term", false, 30, 5).await?;
    let bodies: Vec<String> = (0..400)
        .map(|_| r#"{"action":"sleep","ms":1000}"#.to_owned())
        .collect();
    localstack::send(&sqs, &queues.url, &bodies).await?;
    let mut worker = WorkerProc::start(&queues.url, &["--max-in-flight", "100"])?;
    let start = Instant::now();
    while worker.metric("sqsrt_messages_in_flight")? < 100 {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "never reached full load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.signal("TERM")?;
    let (status, took) = worker.wait_exit(Duration::from_secs(40))?;

    println!("| measure (LocalStack on this machine, --max-in-flight 100, {n} messages) | value |");
    println!("|---|---|");
    println!("| no-op handler | {:.0} msgs/s |", noop.rate);
    println!(
        "| 100 ms handler (limit: 100 / 0.1 s = 1,000 msgs/s) | {:.0} msgs/s |",
        slow.rate
    );
    println!(
        "| worker CPU per 1,000 messages, no-op | {} ms |",
        noop.cpu_per_1000.as_millis()
    );
    println!(
        "| worker CPU per 1,000 messages, 100 ms handler | {} ms |",
        slow.cpu_per_1000.as_millis()
    );
    println!("| peak RSS | {:.1} MiB |", noop.rss_mib.max(slow.rss_mib));
    println!(
        "| SIGTERM to exit with 100 handlers of 1 s running | {} ms ({status}) |",
        took.as_millis()
    );
    Ok(())
}
