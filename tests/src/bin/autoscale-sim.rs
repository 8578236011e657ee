//! Autoscaling from zero and back, as KEDA's `aws-sqs-queue` scaler and the
//! HPA would do it, with real `sqsrt worker` processes against LocalStack.
//!
//! Every interval the harness reads `ApproximateNumberOfMessages` +
//! `ApproximateNumberOfMessagesNotVisible` (what `scaleOnInFlight` counts);
//! above the activation threshold the desired replicas are
//! `ceil(total / queueLength)` between 1 and the maximum; scale-down waits a
//! stabilization window, and the last replica goes only after the cooldown
//! with nothing in the queue. Replicas are started, and stopped with SIGTERM
//! (they drain: a terminating pod no longer counts as a replica, and sampling
//! goes on while it exits). A producer sends bursts meanwhile. At the end the
//! backlog must be drained, replicas back to zero, every message succeeded,
//! and no delivery stranded (received by a stopping worker's long poll but
//! never handed to a worker); the timeline is written as CSV and PNG.
//!
//! `autoscale-sim [--short] [--out DIR]` (`--short`: CI timings)

// Times and counts are far below 2^52.
#![allow(clippy::cast_precision_loss)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use plotters::prelude::*;
use sqsrt_e2e::fault_proxy::FaultProxy;
use sqsrt_e2e::localstack::{self, Queues};
use sqsrt_e2e::summary;
use sqsrt_e2e::worker_proc::{
    Processed, WorkerProc, bodies, delete_accounting, successes, unseen_deliveries,
};

/// KEDA-like settings.
struct Scaling {
    interval: Duration,
    queue_length: u64,
    activation: u64,
    max_replicas: usize,
    /// HPA scale-down stabilization.
    stabilization: Duration,
    /// KEDA `cooldownPeriod` before scaling to zero.
    cooldown: Duration,
}

struct Sample {
    t: f64,
    visible: u64,
    in_flight: u64,
    replicas: usize,
}

// One loop, read top to bottom like the scaler it imitates.
#[allow(clippy::too_many_lines)]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let short = args.iter().any(|a| a == "--short");
    let out = sqsrt_e2e::flag_value(&args, "--out").map_or_else(
        || {
            PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
                .join("reliability")
        },
        PathBuf::from,
    );
    std::fs::create_dir_all(&out)?;
    let scaling = Scaling {
        interval: Duration::from_secs(1),
        queue_length: 20,
        activation: 0,
        max_replicas: 4,
        stabilization: Duration::from_secs(if short { 3 } else { 10 }),
        cooldown: Duration::from_secs(if short { 5 } else { 15 }),
    };
    // (at second, messages) bursts of 200 ms handlers.
    let bursts: &[(u64, usize)] = if short {
        &[(1, 120), (12, 60)]
    } else {
        &[(2, 300), (30, 150), (45, 600)]
    };
    let limit = Duration::from_secs(if short { 90 } else { 240 });

    let sqs = localstack::client().await?;
    let Queues { url, dlq_url } =
        localstack::create_queues(&sqs, "autoscale", false, 10, 5).await?;
    // The default shutdown grace (25 s): above the 20 s a long poll open at
    // SIGTERM may take, as a deployment keeps it.
    let worker_args = ["--max-in-flight", "10", "--handler-timeout-secs", "2"];
    let body = r#"{"action":"sleep","ms":200}"#;
    // Without faults: it records every delete, checked against the success lines.
    let proxy = FaultProxy::start(&localstack::endpoint()?).await?;

    let start = Instant::now();
    let mut replicas: Vec<WorkerProc> = Vec::new();
    // Signalled, not yet exited.
    let mut terminating: Vec<WorkerProc> = Vec::new();
    let mut done: Vec<Processed> = Vec::new();
    let mut sent: HashSet<String> = HashSet::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_burst = 0;
    let mut last_active = start;
    let mut above_since: Option<Instant> = None;
    let (mut max_seen, mut scale_events, mut scale_ins) = (0, 0, 0_u64);
    loop {
        let now = start.elapsed();
        let mut still = Vec::with_capacity(terminating.len());
        for mut worker in terminating {
            match worker.exited()? {
                Some(status) => {
                    ensure!(status.success(), "a scaled-in worker exited with {status}");
                    done.extend(worker.processed());
                }
                None => still.push(worker),
            }
        }
        terminating = still;
        while next_burst < bursts.len() && now >= Duration::from_secs(bursts[next_burst].0) {
            sent.extend(localstack::send(&sqs, &url, &bodies(bursts[next_burst].1, body)).await?);
            next_burst += 1;
        }
        let (visible, in_flight) = localstack::depth(&sqs, &url).await?;
        let total = visible + in_flight;
        let desired = if total > scaling.activation {
            last_active = Instant::now();
            usize::try_from(total.div_ceil(scaling.queue_length))?.clamp(1, scaling.max_replicas)
        } else if last_active.elapsed() >= scaling.cooldown {
            0
        } else {
            // Idle but within the cooldown: the HPA's floor of one replica.
            replicas.len().min(1)
        };
        match desired.cmp(&replicas.len()) {
            std::cmp::Ordering::Greater => {
                above_since = None;
                scale_events += 1;
                while replicas.len() < desired {
                    replicas.push(WorkerProc::start_via(
                        &proxy.endpoint(),
                        &url,
                        &worker_args,
                    )?);
                }
            }
            std::cmp::Ordering::Less => {
                // Down only after the stabilization window (to zero: the cooldown above).
                let since = *above_since.get_or_insert_with(Instant::now);
                if desired == 0 || since.elapsed() >= scaling.stabilization {
                    scale_events += 1;
                    while replicas.len() > desired {
                        let worker = replicas.pop().context("non-empty")?;
                        worker.signal("TERM")?;
                        scale_ins += 1;
                        terminating.push(worker);
                    }
                    above_since = None;
                }
            }
            std::cmp::Ordering::Equal => above_since = None,
        }
        max_seen = max_seen.max(replicas.len());
        samples.push(Sample {
            t: now.as_secs_f64(),
            visible,
            in_flight,
            replicas: replicas.len(),
        });
        if next_burst == bursts.len() && total == 0 && replicas.is_empty() && terminating.is_empty()
        {
            break;
        }
        if start.elapsed() > limit {
            bail!(
                "not back to zero within {limit:?}: {total} messages, {} replicas, {} terminating",
                replicas.len(),
                terminating.len()
            );
        }
        tokio::time::sleep(scaling.interval).await;
    }

    let succeeded = successes(&done);
    let lost = sent.difference(&succeeded).count();
    let (early, unseen) = delete_accounting(proxy.observed(), &done, &sent)?;
    let duplicates = done.iter().filter(|p| p.outcome == "success").count() - succeeded.len();
    let stranded = unseen_deliveries(&done);
    let mut csv = String::from("seconds,visible,in_flight,replicas\n");
    for s in &samples {
        writeln!(
            csv,
            "{:.1},{},{},{}",
            s.t, s.visible, s.in_flight, s.replicas
        )?;
    }
    std::fs::write(out.join("autoscale.csv"), csv)?;
    chart(&samples, &scaling, &out.join("autoscale.png"))?;
    let (dead_lettered, _) = localstack::depth(&sqs, &dlq_url).await?;
    summary::record(&summary::Row {
        suite: format!("autoscaling from zero (max {max_seen} replicas)"),
        rounds: bursts.len() as u64,
        kills: scale_ins,
        faults: 0,
        sent: sent.len() as u64,
        succeeded: succeeded.len() as u64,
        dead_lettered,
        lost: lost as u64,
        deleted_before_success: early.len() as u64,
        duplicates: duplicates as u64,
    })?;
    println!(
        "max replicas {max_seen}, {scale_events} scale events, back to zero after {:.0} s, {stranded} deliveries stranded",
        samples.last().map_or(0.0, |s| s.t)
    );
    println!("(timeline: {})", out.join("autoscale.csv").display());
    ensure!(lost == 0, "{lost} messages never succeeded");
    ensure!(
        early.is_empty(),
        "deleted before a success was logged: {early:?}"
    );
    ensure!(
        unseen == 0,
        "{unseen} messages whose delete the proxy never saw: the check above missed them"
    );
    ensure!(dead_lettered == 0, "{dead_lettered} messages dead-lettered");
    ensure!(
        stranded == 0,
        "{stranded} deliveries reached no worker: received by a long poll of a stopping worker and left invisible"
    );
    ensure!(max_seen > 1, "the backlog never scaled out");
    Ok(())
}

fn chart(samples: &[Sample], scaling: &Scaling, path: &std::path::Path) -> anyhow::Result<()> {
    let font = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .context("no font: install fonts-dejavu-core")?;
    // plotters keeps registered fonts for the life of the process.
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("the font cannot be read"))?;
    let end = samples.last().map_or(1.0, |s| s.t).max(1.0);
    let top = samples
        .iter()
        .map(|s| s.visible + s.in_flight)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let root = BitMapBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "sqsrt workers scaled like KEDA aws-sqs-queue (queueLength {}, max {}, cooldown {} s)",
                scaling.queue_length,
                scaling.max_replicas,
                scaling.cooldown.as_secs()
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .right_y_label_area_size(44)
        .build_cartesian_2d(0.0..end, 0.0..top * 1.05)?
        .set_secondary_coord(0.0..end, 0.0..(scaling.max_replicas as f64 + 0.5));
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("messages (visible + in flight)")
        .draw()?;
    chart.configure_secondary_axes().y_desc("replicas").draw()?;
    chart
        .draw_series(LineSeries::new(
            samples
                .iter()
                .map(|s| (s.t, (s.visible + s.in_flight) as f64)),
            BLUE.stroke_width(2),
        ))?
        .label("queue depth")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
    chart
        .draw_secondary_series(LineSeries::new(
            samples.iter().map(|s| (s.t, s.replicas as f64)),
            RED.stroke_width(2),
        ))?
        .label("replicas")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
