//! CPU per Lambda invocation, side by side in one run (issue 18;
//! docs/performance.md, "CPU per invocation"): the release `sqsrt` at the
//! deploy defaults (256 MB: one runtime thread; log level info, outcome lines
//! on) and at 2,048 MB (two threads), the stock Rust pattern, `lambda_runtime`
//! alone and the floor (`benches/lambda-peers`), each a process of its own under the Runtime API
//! stand-in, and Powertools for AWS Lambda (Python) in-process
//! (`benches/powertools_sqs.py`). Events of 10, 100, 1,000, 5,000 and
//! 10,000 copies of `tests/fixtures/bench-record.json`.
//!
//! CPU is the function process's, from `/proc/PID/task/*/schedstat`
//! (nanoseconds), over a window of invocations after warm-ups; each run is a
//! fresh process, and the cell is the median of the runs with their min-max.
//! The cold-start row is the CPU from exec to the first `/next`.
//!
//! `lambda-cpu --peers DIR [--python PYTHON] [--runs N] [--budget RECORDS] [--warm-up N] [--sizes N,..] [--only TEXT]`
//! (`DIR`: where `lambda-stock` and `lambda-floor` were built;
//! `PYTHON`: an interpreter with `aws-lambda-powertools`, else that column
//! says it was not measured; `--budget`: records per measured window, at
//! least 20 invocations; `--sizes` and `--only` (the columns whose label
//! contains TEXT, or the one named TEXT exactly) narrow the run, for
//! profiling (`scripts/instructions.sh`): `--only` prints no table.)

// Counts and durations here are far below 2^52: f64 is exact enough.
#![allow(clippy::cast_precision_loss)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use sqsrt_e2e::runtime_api::RuntimeApi;
use sqsrt_e2e::{
    ChildGuard, CpuSnapshot, bench_event, fixture, flag_value, number_flag, offline_aws_env,
    sqsrt_bin,
};

const SIZES: [usize; 5] = [10, 100, 1_000, 5_000, 10_000];

/// One function under test: a program and its environment.
struct Subject {
    label: &'static str,
    program: PathBuf,
    env: Vec<(&'static str, String)>,
}

/// What one run of one subject on one size gave.
struct Run {
    cpu: Duration,
    wall: Duration,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let peers = PathBuf::from(flag_value(&args, "--peers").context(
        "--peers DIR: where lambda-stock and lambda-floor are built (scripts/bench.sh builds them)",
    )?);
    let python = flag_value(&args, "--python");
    let runs = number_flag(&args, "--runs", 3)?;
    let budget = number_flag(&args, "--budget", 50_000)?;
    let warm_up = number_flag(&args, "--warm-up", 3)?;
    let sizes = match flag_value(&args, "--sizes") {
        Some(list) => list
            .split(',')
            .map(|n| {
                n.parse()
                    .with_context(|| format!("--sizes: {n} is not a number"))
            })
            .collect::<Result<Vec<usize>, _>>()?,
        None => SIZES.to_vec(),
    };
    let only = flag_value(&args, "--only");
    let settings = Settings {
        runs,
        budget,
        warm_up,
    };

    let tokio = tokio::runtime::Runtime::new()?;
    // The `http` forwarder's app, answering 200 at once; its CPU is the
    // bench's, not the function's.
    let app = tokio.block_on(sqsrt_e2e::http_app::answer_ok())?;
    // The `kafka` forwarder's broker (tansu, `SQSRT_TANSU`); its CPU is not
    // the function's either. Started only when that column runs, so that
    // profiling the others (`scripts/instructions.sh`) needs no broker.
    let unstarted = subjects(&peers, &app, "")?;
    let broker = if chosen(&unstarted, only.as_deref(), KAFKA_COLUMN) {
        let broker = tokio.block_on(sqsrt_e2e::kafka::Broker::start())?;
        tokio.block_on(broker.create_topic("bench", 1))?;
        Some(broker)
    } else {
        None
    };
    let subjects = match &broker {
        Some(broker) => subjects(&peers, &app, &broker.addr)?,
        None => unstarted,
    };
    for s in &subjects {
        if !s.program.exists() {
            bail!(
                "{} not found: build benches/lambda-peers (scripts/bench.sh does)",
                s.program.display()
            );
        }
    }

    let events: Vec<String> = sizes
        .iter()
        .map(|&n| bench_event(n, |_| None))
        .collect::<Result<_, _>>()?;
    if let Some(only) = only {
        // Profiling: the chosen columns' runs, one line each, no table.
        for subject in subjects
            .iter()
            .filter(|s| chosen(&subjects, Some(&only), s.label))
        {
            for (&n, body) in sizes.iter().zip(&events) {
                for _ in 0..settings.runs {
                    let (run, _) = tokio.block_on(measure(subject, n, body, &settings))?;
                    println!(
                        "{}, {n} records: {} CPU, {} wall per invocation",
                        subject.label,
                        time(run.cpu),
                        time(run.wall)
                    );
                }
            }
        }
        return Ok(());
    }
    if sizes != SIZES {
        bail!("--sizes needs --only: the table has every size");
    }
    // results[subject][size] = runs; cold[subject] = CPU to the first poll.
    // Interleaved (each run, each size, each column in turn), so that the
    // machine's drift over the minutes of a run spreads over all columns.
    let mut results: Vec<Vec<Vec<Run>>> = subjects
        .iter()
        .map(|_| SIZES.iter().map(|_| Vec::new()).collect())
        .collect();
    let mut cold: Vec<Vec<Duration>> = subjects.iter().map(|_| Vec::new()).collect();
    for _ in 0..settings.runs {
        for (i, (&n, body)) in SIZES.iter().zip(&events).enumerate() {
            for (s, subject) in subjects.iter().enumerate() {
                let (run, start) = tokio.block_on(measure(subject, n, body, &settings))?;
                results[s][i].push(run);
                cold[s].push(start);
            }
        }
    }
    let powertools = match &python {
        Some(python) => Some(powertools(python, &settings)?),
        None => None,
    };

    print_table(&subjects, &results, &cold, powertools.as_deref());
    Ok(())
}

/// Whether `--only` chose the column `label` (every column without it): a
/// label given whole is that column alone; else every column whose label
/// contains the text.
fn chosen(subjects: &[Subject], only: Option<&str>, label: &str) -> bool {
    let Some(only) = only else { return true };
    let exact = subjects.iter().any(|s| s.label == only);
    label == only || (!exact && label.contains(only))
}

/// The `kafka` forwarder's column, the only one needing a broker.
const KAFKA_COLUMN: &str = "sqsrt, 256 MB, `kafka` forwarder";

/// The columns: sqsrt at 256 MB and 2,048 MB (`scripted`, which decodes
/// every body as the stock pattern does), sqsrt's own cost (`noop`), the
/// `http` forwarder posting each record to a local app and the `kafka`
/// forwarder producing it to a local broker (issue 19's bench rows, beside
/// `noop`), the stock pattern, `lambda_runtime` alone (its layers' cost
/// over the floor) and the floor.
fn subjects(peers: &Path, app: &str, brokers: &str) -> anyhow::Result<Vec<Subject>> {
    let sqsrt = sqsrt_bin()?;
    let lambda_env = |memory: &str| {
        let mut env: Vec<(&'static str, String)> = offline_aws_env()
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect();
        env.extend([
            ("AWS_LAMBDA_FUNCTION_NAME", "bench".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.to_owned()),
        ]);
        env
    };
    let with = |mut env: Vec<(&'static str, String)>, extra: &[(&'static str, &str)]| {
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        env
    };
    Ok(vec![
        Subject {
            label: "sqsrt, 256 MB",
            program: sqsrt.clone(),
            env: with(lambda_env("256"), &[("SQSRT_HANDLER", "scripted")]),
        },
        Subject {
            label: "sqsrt, 2,048 MB",
            program: sqsrt.clone(),
            env: with(lambda_env("2048"), &[("SQSRT_HANDLER", "scripted")]),
        },
        Subject {
            label: "sqsrt, 256 MB, `noop`",
            program: sqsrt.clone(),
            env: with(lambda_env("256"), &[("SQSRT_HANDLER", "noop")]),
        },
        Subject {
            label: "sqsrt, 256 MB, `http` forwarder",
            program: sqsrt.clone(),
            env: with(
                lambda_env("256"),
                &[("SQSRT_HANDLER", "http"), ("SQSRT_HTTP_URL", app)],
            ),
        },
        Subject {
            label: KAFKA_COLUMN,
            program: sqsrt,
            env: with(
                lambda_env("256"),
                &[
                    ("SQSRT_HANDLER", "kafka"),
                    ("SQSRT_KAFKA_BROKERS", brokers),
                    ("SQSRT_KAFKA_TOPIC", "bench"),
                ],
            ),
        },
        Subject {
            label: "stock pattern",
            program: peers.join("lambda-stock"),
            env: lambda_env("256"),
        },
        Subject {
            label: "`lambda_runtime` alone",
            program: peers.join("lambda-runtime-alone"),
            env: lambda_env("256"),
        },
        Subject {
            label: "floor",
            program: peers.join("lambda-floor"),
            env: lambda_env("256"),
        },
    ])
}

struct Settings {
    runs: usize,
    budget: usize,
    warm_up: usize,
}

/// Invocations measured for an `n`-record event: `budget` records' worth,
/// at least 20.
fn invocations(settings: &Settings, n: usize) -> usize {
    (settings.budget / n).max(20)
}

/// One run: a fresh process, `warm_up` invocations, then the measured window.
/// Also the CPU it took from exec to its first `/next`.
async fn measure(
    subject: &Subject,
    n: usize,
    body: &str,
    settings: &Settings,
) -> anyhow::Result<(Run, Duration)> {
    let api = RuntimeApi::start().await?;
    let mut child = Command::new(&subject.program);
    child
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(subject.env.iter().map(|(k, v)| (k, v)))
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        // Lambda's stdout and stderr are pipes to its log service: pipes
        // here too, drained by a thread each.
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = child
        .spawn()
        .with_context(|| format!("cannot start {}", subject.program.display()))?;
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        std::thread::spawn(move || drain(pipe));
    }
    let pid = child.id();
    let _guard = ChildGuard::from_child(subject.label, child);
    api.first_poll(Duration::from_secs(10)).await?;
    let start = CpuSnapshot::of(pid)?.total();

    let wait = Duration::from_secs(60);
    for _ in 0..settings.warm_up {
        expect_no_failures(subject, &api.invoke_ok(body.to_owned(), wait).await?.0)?;
    }
    let count = invocations(settings, n);
    let before = CpuSnapshot::of(pid)?;
    let mut wall = Duration::ZERO;
    for _ in 0..count {
        let (text, elapsed) = api.invoke_ok(body.to_owned(), wait).await?;
        expect_no_failures(subject, &text)?;
        wall += elapsed;
    }
    let cpu = CpuSnapshot::of(pid)?.since(&before);
    let count = u32::try_from(count)?;
    Ok((
        Run {
            cpu: cpu / count,
            wall: wall / count,
        },
        start,
    ))
}

fn drain(mut pipe: Box<dyn Read + Send>) {
    let _ = std::io::copy(&mut pipe, &mut std::io::sink());
}

fn expect_no_failures(subject: &Subject, text: &str) -> anyhow::Result<()> {
    let answer: Value = serde_json::from_str(text)
        .with_context(|| format!("{}: the answer is not JSON: {text}", subject.label))?;
    if answer["batchItemFailures"]
        .as_array()
        .is_none_or(|f| !f.is_empty())
    {
        bail!("{}: unexpected answer {text}", subject.label);
    }
    Ok(())
}

/// Powertools' CPU per invocation for each size, one `Vec` of runs each.
fn powertools(python: &str, settings: &Settings) -> anyhow::Result<Vec<Vec<Duration>>> {
    let script = fixture("bench-record.json")
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .context("checkout root")?
        .join("benches/powertools_sqs.py");
    let sizes: Vec<String> = SIZES.iter().map(ToString::to_string).collect();
    let out = Command::new(python)
        .arg(&script)
        .arg("--fixture")
        .arg(fixture("bench-record.json"))
        .args(["--sizes", &sizes.join(",")])
        .args(["--runs", &settings.runs.to_string()])
        .args(["--budget", &settings.budget.to_string()])
        .args(["--warm-up", &settings.warm_up.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {python} {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed with {}", script.display(), out.status);
    }
    let mut rows = Vec::new();
    for line in String::from_utf8(out.stdout)?.lines() {
        let row: Value = serde_json::from_str(line)?;
        let runs = row["cpu_ns"]
            .as_array()
            .context("cpu_ns")?
            .iter()
            .map(|v| v.as_u64().map(Duration::from_nanos).context("cpu_ns value"))
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(runs);
    }
    if rows.len() != SIZES.len() {
        bail!(
            "{}: {} rows for {} sizes",
            script.display(),
            rows.len(),
            SIZES.len()
        );
    }
    Ok(rows)
}

/// Median, min and max.
fn spread(values: &[Duration]) -> (Duration, Duration, Duration) {
    let mut v = values.to_vec();
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn time(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} us")
    } else {
        format!("{:.2} ms", us / 1_000.0)
    }
}

fn cell(values: &[Duration]) -> String {
    let (mid, lo, hi) = spread(values);
    if values.len() == 1 {
        time(mid)
    } else {
        format!("{} ({}-{})", time(mid), time(lo), time(hi))
    }
}

fn print_table(
    subjects: &[Subject],
    results: &[Vec<Vec<Run>>],
    cold: &[Vec<Duration>],
    powertools: Option<&[Vec<Duration>]>,
) {
    let cpu =
        |s: usize, i: usize| -> Vec<Duration> { results[s][i].iter().map(|r| r.cpu).collect() };
    let median = |v: Vec<Duration>| spread(&v).0.as_secs_f64();
    let at = |label: &str| {
        subjects
            .iter()
            .position(|s| s.label == label)
            .expect("every ratio's column is a subject")
    };
    let (sqsrt, stock, floor) = (at("sqsrt, 256 MB"), at("stock pattern"), at("floor"));
    let row = |cells: Vec<String>| println!("| {} |", cells.join(" | "));

    let mut header = vec!["records".to_owned()];
    header.extend(subjects.iter().map(|s| s.label.to_owned()));
    header.extend([
        "Powertools Python (in-process)".to_owned(),
        "stock / sqsrt 256 MB".to_owned(),
        "sqsrt 256 MB / floor".to_owned(),
    ]);
    let columns = header.len();
    row(header);
    row(vec!["---".to_owned(); columns]);
    for (i, n) in SIZES.iter().enumerate() {
        let mut cells = vec![n.to_string()];
        cells.extend((0..subjects.len()).map(|s| cell(&cpu(s, i))));
        cells.push(
            powertools.map_or_else(|| "not measured (no --python)".to_owned(), |p| cell(&p[i])),
        );
        cells.push(format!(
            "{:.2}x",
            median(cpu(stock, i)) / median(cpu(sqsrt, i))
        ));
        cells.push(format!(
            "{:.2}x",
            median(cpu(sqsrt, i)) / median(cpu(floor, i))
        ));
        row(cells);
    }
    let mut cells = vec!["cold start: CPU from exec to the first `/next`".to_owned()];
    cells.extend(cold.iter().map(|starts| cell(starts)));
    cells.resize(columns, String::new());
    row(cells);

    let last = SIZES.len() - 1;
    let walls: Vec<Duration> = results[at("sqsrt, 2,048 MB")][last]
        .iter()
        .map(|r| r.wall)
        .collect();
    println!(
        "\nWall per {}-record invocation, sqsrt at 2,048 MB: {} (target < 20 ms). CPU from /proc/PID/task/*/schedstat of the function process; {} run(s) of a fresh process per cell, median (min-max); {} CPUs, {}.",
        SIZES[last],
        cell(&walls),
        results[0][0].len(),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        std::env::consts::ARCH,
    );
}
