//! Measures the release `sqsrt worker` against LocalStack and prints markdown
//! table rows: throughput with a handler whose time is random (exponential,
//! mean 100 ms) at `--max-in-flight 50` against the limit c/d = 500 msgs/s,
//! throughput with a no-op handler and the request rate LocalStack served,
//! worker CPU per message (user + sys from /proc), peak RSS, and SIGTERM to
//! exit at full load; and the same random-time drain through a hand-written
//! aws-sdk-sqs loop (`sdk-loop`), the baseline of the worker's CPU goal (at
//! most a third of its CPU per message, same run); and the `http` forwarder
//! to a local app answering 200 at once and the `kafka` forwarder to a
//! local tansu broker (`SQSRT_TANSU`), beside the no-op handler. Throughput is the steady
//! state (10 % to 90 % of each drain). Each throughput run is repeated:
//! medians with min-max.
//!
//! Needs `SQSRT_LOCALSTACK_ENDPOINT` (see `scripts/bench.sh`).
//! `worker-measure [--messages N] [--repeat R] [--rows]` (`--rows`: no header)

// Counts and times far below 2^52: the f64 display is exact enough.
#![allow(clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use sqsrt_e2e::worker_proc::{WorkerProc, read_lines};
use sqsrt_e2e::{ChildGuard, localstack};
use sqsrt_e2e::{cpu_time, number_flag, peak_rss_kib};

const MAX_IN_FLIGHT: usize = 50;
const MEAN_MS: f64 = 100.0;

struct Run {
    /// Messages per second in the steady state.
    rate: f64,
    /// Over the whole drain (sqsrt only: the loop has no metrics).
    requests_per_sec: f64,
    requests_per_msg: f64,
    cpu_us_per_msg: f64,
    rss_mib: f64,
}

/// What drains the queue: sqsrt's worker, or the hand-written loop.
enum Consumer {
    Sqsrt(WorkerProc),
    Loop {
        child: ChildGuard,
        lines: Arc<Mutex<Vec<String>>>,
    },
}

impl Consumer {
    /// `sdk-loop` (built beside this binary) on `queue_url`.
    fn sdk_loop(queue_url: &str) -> anyhow::Result<Self> {
        let program = std::env::current_exe()?.with_file_name("sdk-loop");
        let mut child = Command::new(&program)
            .args(["--queue-url", queue_url])
            .args(["--max-in-flight", &MAX_IN_FLIGHT.to_string()])
            .envs(localstack::aws_env()?)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let (lines, _reader) = read_lines(stdout);
        Ok(Self::Loop {
            child: ChildGuard::from_child("sdk-loop", child),
            lines,
        })
    }

    fn pid(&self) -> u32 {
        match self {
            Self::Sqsrt(worker) => worker.pid(),
            Self::Loop { child, .. } => child.id(),
        }
    }

    /// Messages processed so far (their outcome lines).
    fn successes(&self) -> usize {
        const SUCCESS: &str = r#""outcome":"success""#;
        match self {
            Self::Sqsrt(worker) => worker.lines_containing(SUCCESS),
            Self::Loop { lines, .. } => lines
                .lock()
                .expect("lock is never poisoned")
                .iter()
                .filter(|l| l.contains(SUCCESS))
                .count(),
        }
    }

    fn requests(&self) -> anyhow::Result<f64> {
        match self {
            Self::Sqsrt(worker) => worker.metric_sum("sqsrt_sqs_requests_total"),
            Self::Loop { .. } => Ok(f64::NAN),
        }
    }
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

/// sqsrt's worker with `extra` flags, on `queue_url`.
fn sqsrt_worker(extra: &[&str]) -> impl FnOnce(&str) -> anyhow::Result<Consumer> {
    move |queue_url| {
        let max_in_flight = MAX_IN_FLIGHT.to_string();
        let mut args = vec!["--max-in-flight", &max_in_flight, "--log-level", "info"];
        args.extend_from_slice(extra);
        Ok(Consumer::Sqsrt(WorkerProc::start(queue_url, &args)?))
    }
}

async fn drain_run(
    sqs: &aws_sdk_sqs::Client,
    bodies: &[String],
    start_consumer: impl FnOnce(&str) -> anyhow::Result<Consumer>,
) -> anyhow::Result<Run> {
    let n = bodies.len();
    let queues = localstack::create_queues(sqs, "measure", false, 30, 5).await?;
    localstack::send(sqs, &queues.url, bodies).await?;
    let worker = start_consumer(&queues.url)?;
    let cpu_before = cpu_time(worker.pid())?;
    let requests_before = worker.requests()?;
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
        let done = worker.successes();
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
    while worker.successes() < n {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(300),
            "drain took too long"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = start.elapsed().as_secs_f64();
    let cpu = cpu_time(worker.pid())?.saturating_sub(cpu_before);
    let requests = worker.requests()? - requests_before;
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

/// Every drain of one run, by consumer.
struct Runs {
    random: Vec<Run>,
    noop: Vec<Run>,
    one_thread: Vec<Run>,
    hand_written: Vec<Run>,
    forwarded: Vec<Run>,
    kafka: Vec<Run>,
}

/// The table rows of `runs` (`n` messages, `repeat` times each).
fn print_rows(runs: &Runs, n: usize, repeat: usize) {
    let limit = MAX_IN_FLIGHT as f64 / (MEAN_MS / 1000.0);
    let of = |runs: &[Run], f: &dyn Fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    println!(
        "| worker, exp. handler (mean {MEAN_MS} ms), --max-in-flight {MAX_IN_FLIGHT}, {n} msgs x {repeat}, steady state | {} msgs/s = {} % of c/d {limit:.0}; {} SQS requests/msg | >= 90 % |",
        spread(of(&runs.random, &|r| r.rate), 0),
        spread(of(&runs.random, &|r| r.rate * 100.0 / limit), 0),
        spread(of(&runs.random, &|r| r.requests_per_msg), 2),
    );
    println!(
        "| worker, no-op handler (LocalStack is the limit), steady state | {} msgs/s; LocalStack served {} requests/s ({} per msg) | |",
        spread(of(&runs.noop, &|r| r.rate), 0),
        spread(of(&runs.noop, &|r| r.requests_per_sec), 0),
        spread(of(&runs.noop, &|r| r.requests_per_msg), 2),
    );
    println!(
        "| worker, `http` forwarder to a local app answering 200 at once, steady state | {} msgs/s; CPU {} us per message (no-op: {} us, same run) | |",
        spread(of(&runs.forwarded, &|r| r.rate), 0),
        spread(of(&runs.forwarded, &|r| r.cpu_us_per_msg), 0),
        spread(of(&runs.noop, &|r| r.cpu_us_per_msg), 0),
    );
    println!(
        "| worker, `kafka` forwarder to a local tansu broker (idempotent, acks=all, 3 partitions), steady state | {} msgs/s; CPU {} us per message (no-op: {} us, same run) | |",
        spread(of(&runs.kafka, &|r| r.rate), 0),
        spread(of(&runs.kafka, &|r| r.cpu_us_per_msg), 0),
        spread(of(&runs.noop, &|r| r.cpu_us_per_msg), 0),
    );
    println!(
        "| worker CPU per message, exp. handler / no-op | {} us / {} us | exp.: <= 1/3 of the hand-written loop's (below) |",
        spread(of(&runs.random, &|r| r.cpu_us_per_msg), 0),
        spread(of(&runs.noop, &|r| r.cpu_us_per_msg), 0),
    );
    let ratio: Vec<f64> = runs
        .random
        .iter()
        .zip(&runs.hand_written)
        .map(|(s, h)| s.cpu_us_per_msg / h.cpu_us_per_msg)
        .collect();
    println!(
        "| hand-written aws-sdk-sqs loop (`sdk-loop`), the same exp. drain: throughput; CPU per message; sqsrt's CPU as a share of it | {} msgs/s = {} % of c/d; {} us; {} | sqsrt >= 90 % of c/d and <= 0.33 |",
        spread(of(&runs.hand_written, &|r| r.rate), 0),
        spread(of(&runs.hand_written, &|r| r.rate * 100.0 / limit), 0),
        spread(of(&runs.hand_written, &|r| r.cpu_us_per_msg), 0),
        spread(ratio, 2),
    );
    println!(
        "| worker, exp. handler, `--threads 1` (the default under a 1-CPU limit) | {} msgs/s = {} % of c/d; CPU {} us per message | >= 90 % |",
        spread(of(&runs.one_thread, &|r| r.rate), 0),
        spread(of(&runs.one_thread, &|r| r.rate * 100.0 / limit), 0),
        spread(of(&runs.one_thread, &|r| r.cpu_us_per_msg), 0),
    );
    println!(
        "| worker peak RSS | {} MiB | |",
        spread(
            of(&runs.random, &|r| r.rss_mib)
                .into_iter()
                .chain(of(&runs.noop, &|r| r.rss_mib))
                .collect(),
            1
        ),
    );
}

/// SIGTERM at full load: `MAX_IN_FLIGHT` handlers of 1 s running; the exit
/// status and how long the worker took to exit.
async fn sigterm_at_full_load(
    sqs: &aws_sdk_sqs::Client,
) -> anyhow::Result<(std::process::ExitStatus, Duration)> {
    let queues = localstack::create_queues(sqs, "measure-term", false, 30, 5).await?;
    let bodies = vec![r#"{"action":"sleep","ms":1000}"#.to_owned(); MAX_IN_FLIGHT * 4];
    localstack::send(sqs, &queues.url, &bodies).await?;
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
    worker.wait_exit(Duration::from_secs(40))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n = number_flag(&args, "--messages", 3000)?;
    let repeat = number_flag(&args, "--repeat", 3)?.max(1);
    let sqs = localstack::client().await?;

    let mut random = Vec::new();
    let mut noop = Vec::new();
    let mut one_thread = Vec::new();
    let mut hand_written = Vec::new();
    let mut forwarded = Vec::new();
    let mut kafka = Vec::new();
    let app = sqsrt_e2e::http_app::answer_ok().await?;
    let broker = sqsrt_e2e::kafka::Broker::start().await?;
    broker.create_topic("bench", 3).await?;
    for round in 0..repeat {
        random.push(
            drain_run(
                &sqs,
                &exponential_bodies(n, round as u64),
                sqsrt_worker(&[]),
            )
            .await?,
        );
        noop.push(
            drain_run(
                &sqs,
                &vec![r#"{"action":"ok"}"#.to_owned(); n],
                sqsrt_worker(&["--handler", "noop"]),
            )
            .await?,
        );
        // The http forwarder to a local app that answers 200 at once: the
        // forwarder's own cost beside the no-op's (the app's CPU is not
        // the worker's).
        forwarded.push(
            drain_run(
                &sqs,
                &vec![r#"{"order":7}"#.to_owned(); n],
                sqsrt_worker(&["--handler", "http", "--http-url", &app]),
            )
            .await?,
        );
        // The kafka forwarder to the local broker: the worker's own CPU
        // (the broker's is not the worker's).
        kafka.push(
            drain_run(
                &sqs,
                &vec![r#"{"order":7}"#.to_owned(); n],
                sqsrt_worker(&[
                    "--handler",
                    "kafka",
                    "--kafka-brokers",
                    &broker.addr,
                    "--kafka-topic",
                    "bench",
                ]),
            )
            .await?,
        );
        // What a pod limited to one CPU runs by default.
        one_thread.push(
            drain_run(
                &sqs,
                &exponential_bodies(n, round as u64),
                sqsrt_worker(&["--threads", "1"]),
            )
            .await?,
        );
        // The same drain through the hand-written loop.
        hand_written.push(
            drain_run(
                &sqs,
                &exponential_bodies(n, round as u64),
                Consumer::sdk_loop,
            )
            .await?,
        );
    }

    let (status, took) = sigterm_at_full_load(&sqs).await?;
    let runs = Runs {
        random,
        noop,
        one_thread,
        hand_written,
        forwarded,
        kafka,
    };
    if !args.iter().any(|a| a == "--rows") {
        println!("| measure | median (min-max) | target |");
        println!("|---|---|---|");
    }
    print_rows(&runs, n, repeat);
    println!(
        "| worker SIGTERM to exit, {MAX_IN_FLIGHT} handlers of 1 s running | {} ms ({status}) | |",
        took.as_millis()
    );
    Ok(())
}
