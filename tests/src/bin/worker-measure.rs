//! Measures the release `sqsrt worker` against LocalStack and prints markdown
//! table rows: throughput with a handler whose time is random (exponential,
//! mean 100 ms) at `--max-in-flight 50` against the limit c/d = 500 msgs/s,
//! throughput with a no-op handler and the request rate LocalStack served,
//! worker CPU per message (user + sys from /proc), peak RSS, and SIGTERM to
//! exit at full load. Throughput is the steady state (10 % to 90 % of each
//! drain). Each throughput run is repeated: medians with min-max.
//!
//! Needs `SQSRT_LOCALSTACK_ENDPOINT` (see `scripts/bench.sh`).
//! `worker-measure [--messages N] [--repeat R] [--rows]` (`--rows`: no header)

// Counts and times far below 2^52: the f64 display is exact enough.
#![allow(clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqsrt_e2e::localstack;
use sqsrt_e2e::worker_proc::WorkerProc;
use sqsrt_e2e::{cpu_time, peak_rss_kib};

const MAX_IN_FLIGHT: usize = 50;
const MEAN_MS: f64 = 100.0;

struct Run {
    /// Messages per second in the steady state.
    rate: f64,
    /// Over the whole drain.
    requests_per_sec: f64,
    requests_per_msg: f64,
    cpu_us_per_msg: f64,
    rss_mib: f64,
}

/// Bodies for the scripted handler: sleep an exponentially distributed time.
fn exponential_bodies(n: usize, seed: u64) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|_| {
            let ms = -MEAN_MS * (1.0 - rng.f64()).ln();
            format!(r#"{{"action":"sleep","ms":{}}}"#, ms.round())
        })
        .collect()
}

async fn drain_run(
    sqs: &aws_sdk_sqs::Client,
    bodies: &[String],
    extra: &[&str],
) -> anyhow::Result<Run> {
    let n = bodies.len();
    let queues = localstack::create_queues(sqs, "measure", false, 30, 5).await?;
    localstack::send(sqs, &queues.url, bodies).await?;
    let max_in_flight = MAX_IN_FLIGHT.to_string();
    let mut args = vec!["--max-in-flight", &max_in_flight, "--log-level", "info"];
    args.extend_from_slice(extra);
    let worker = WorkerProc::start(&queues.url, &args)?;
    let cpu_before = cpu_time(worker.pid())?;
    let requests_before = worker.metric_sum("sqsrt_sqs_requests_total")?;
    let start = Instant::now();
    // Throughput is the steady state: completions from 10 % to 90 % of the
    // drain, without the start (first receive) and the tail (the last
    // handlers finishing while the queue is empty), which a limit c/d does
    // not model. CPU and requests are counted over the whole drain.
    let (low, high) = (n / 10, n - n / 10);
    let mut low_at = None;
    let high_at = loop {
        // Watched in its log lines: scraping /metrics this often would add
        // the scrapes to the worker's CPU per message.
        let done = worker.lines_containing(r#""outcome":"success""#);
        if done >= low && low_at.is_none() {
            low_at = Some(Instant::now());
        }
        if done >= high {
            break Instant::now();
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(300),
            "drain took too long"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let steady = (high - low) as f64 / (high_at - low_at.unwrap_or(start)).as_secs_f64();
    while worker.lines_containing(r#""outcome":"success""#) < n {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(300),
            "drain took too long"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = start.elapsed().as_secs_f64();
    let cpu = cpu_time(worker.pid())?.saturating_sub(cpu_before);
    let requests = worker.metric_sum("sqsrt_sqs_requests_total")? - requests_before;
    Ok(Run {
        rate: steady,
        requests_per_sec: requests / took,
        requests_per_msg: requests / n as f64,
        cpu_us_per_msg: cpu.as_secs_f64() * 1e6 / n as f64,
        rss_mib: peak_rss_kib(worker.pid())? as f64 / 1024.0,
    })
}

/// "median (min-max)" of `values`, formatted with `digits` decimals.
fn spread(mut values: Vec<f64>, digits: usize) -> String {
    values.sort_by(f64::total_cmp);
    let mid = values[values.len() / 2];
    if values.len() == 1 {
        return format!("{mid:.digits$}");
    }
    format!(
        "{mid:.digits$} ({:.digits$}-{:.digits$})",
        values[0],
        values[values.len() - 1]
    )
}

fn arg(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(default), |s| {
            s.parse().with_context(|| format!("{name} {s}"))
        })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n = arg(&args, "--messages", 3000)?;
    let repeat = arg(&args, "--repeat", 3)?.max(1);
    let sqs = localstack::client().await?;

    let mut random = Vec::new();
    let mut noop = Vec::new();
    let mut one_thread = Vec::new();
    for round in 0..repeat {
        random.push(drain_run(&sqs, &exponential_bodies(n, round as u64), &[]).await?);
        noop.push(
            drain_run(
                &sqs,
                &vec![r#"{"action":"ok"}"#.to_owned(); n],
                &["--handler", "noop"],
            )
            .await?,
        );
        // What a pod limited to one CPU runs by default.
        one_thread.push(
            drain_run(
                &sqs,
                &exponential_bodies(n, round as u64),
                &["--threads", "1"],
            )
            .await?,
        );
    }

    // SIGTERM at full load: MAX_IN_FLIGHT handlers of 1 s running.
    let queues = localstack::create_queues(&sqs, "measure-term", false, 30, 5).await?;
    let bodies = vec![r#"{"action":"sleep","ms":1000}"#.to_owned(); MAX_IN_FLIGHT * 4];
    localstack::send(&sqs, &queues.url, &bodies).await?;
    let mut worker = WorkerProc::start(
        &queues.url,
        &["--max-in-flight", &MAX_IN_FLIGHT.to_string()],
    )?;
    let start = Instant::now();
    while worker.metric("sqsrt_messages_in_flight")? < i64::try_from(MAX_IN_FLIGHT)? {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "never reached full load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.signal("TERM")?;
    let (status, took) = worker.wait_exit(Duration::from_secs(40))?;

    let limit = MAX_IN_FLIGHT as f64 / (MEAN_MS / 1000.0);
    let of = |runs: &[Run], f: &dyn Fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    if !args.iter().any(|a| a == "--rows") {
        println!("| measure | median (min-max) | target |");
        println!("|---|---|---|");
    }
    println!(
        "| worker, exp. handler (mean {MEAN_MS} ms), --max-in-flight {MAX_IN_FLIGHT}, {n} msgs x {repeat}, steady state | {} msgs/s = {} % of c/d {limit:.0}; {} SQS requests/msg | >= 90 % |",
        spread(of(&random, &|r| r.rate), 0),
        spread(of(&random, &|r| r.rate * 100.0 / limit), 0),
        spread(of(&random, &|r| r.requests_per_msg), 2),
    );
    println!(
        "| worker, no-op handler (LocalStack is the limit), steady state | {} msgs/s; LocalStack served {} requests/s ({} per msg) | |",
        spread(of(&noop, &|r| r.rate), 0),
        spread(of(&noop, &|r| r.requests_per_sec), 0),
        spread(of(&noop, &|r| r.requests_per_msg), 2),
    );
    println!(
        "| worker CPU per message, exp. handler / no-op | {} us / {} us | <= 50 us |",
        spread(of(&random, &|r| r.cpu_us_per_msg), 0),
        spread(of(&noop, &|r| r.cpu_us_per_msg), 0),
    );
    println!(
        "| worker, exp. handler, `--threads 1` (the default under a 1-CPU limit) | {} msgs/s = {} % of c/d; CPU {} us per message | >= 90 %, <= 50 us |",
        spread(of(&one_thread, &|r| r.rate), 0),
        spread(of(&one_thread, &|r| r.rate * 100.0 / limit), 0),
        spread(of(&one_thread, &|r| r.cpu_us_per_msg), 0),
    );
    println!(
        "| worker peak RSS | {} MiB | |",
        spread(
            of(&random, &|r| r.rss_mib)
                .into_iter()
                .chain(of(&noop, &|r| r.rss_mib))
                .collect(),
            1
        ),
    );
    println!(
        "| worker SIGTERM to exit, {MAX_IN_FLIGHT} handlers of 1 s running | {} ms ({status}) | |",
        took.as_millis()
    );
    Ok(())
}
