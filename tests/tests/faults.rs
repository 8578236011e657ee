//! Reliability: the release `sqsrt worker` talks to LocalStack through a
//! fault-injecting proxy (`sqsrt_e2e::fault_proxy`) while messages keep
//! arriving: HTTP 500s, throttling, added latency, connection resets and a
//! full outage. The worker must stay up and ready, show the outage in
//! `sqsrt_sqs_up` and its error counters, and afterwards process every
//! message. `SQSRT_FAULT_OUTAGE_SECS` sets the outage (default 20 s).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sqsrt_e2e::fault_proxy::{Fault, FaultProxy};
use sqsrt_e2e::localstack::{self, Queues};
use sqsrt_e2e::summary;
use sqsrt_e2e::worker_proc::{WorkerProc, bodies, delete_accounting, successes, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_rides_out_errors_throttling_latency_resets_and_an_outage() -> anyhow::Result<()> {
    let outage_secs: u64 = std::env::var("SQSRT_FAULT_OUTAGE_SECS")
        .ok()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20);
    let sqs = localstack::client().await?;
    let Queues { url, dlq_url } = localstack::create_queues(&sqs, "faults", false, 10, 10).await?;
    let proxy = FaultProxy::start(&localstack::endpoint()?).await?;
    let worker = WorkerProc::start_via(
        &proxy.endpoint(),
        &url,
        &["--max-in-flight", "20", "--retry-base-secs", "1"],
    )?;
    let body = r#"{"action":"sleep","ms":20}"#;
    let mut sent: HashSet<String> = localstack::send(&sqs, &url, &bodies(40, body))
        .await?
        .into_iter()
        .collect();
    until("ready", Duration::from_secs(20), || {
        Ok(worker.get("/readyz")?.0 == 200)
    })
    .await?;

    let phases = [
        (Fault::ServerError, Duration::from_secs(3)),
        (Fault::Throttle, Duration::from_secs(3)),
        (
            Fault::Latency(Duration::from_millis(300)),
            Duration::from_secs(3),
        ),
        (Fault::Reset, Duration::from_secs(3)),
        (Fault::Outage, Duration::from_secs(outage_secs)),
    ];
    for &(fault, length) in &phases {
        // The producer is not behind the proxy: messages keep arriving.
        sent.extend(localstack::send(&sqs, &url, &bodies(40, body)).await?);
        let errors_before = worker.metric_sum("sqsrt_sqs_errors_total")?;
        proxy.set(fault);
        let start = Instant::now();
        let (mut not_ready, mut saw_down) = (0, false);
        while start.elapsed() < length {
            if worker.get("/readyz")?.0 != 200 {
                not_ready += 1;
            }
            saw_down |= worker.metric("sqsrt_sqs_up")? == 0;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        proxy.set(Fault::None);
        let errors = worker.metric_sum("sqsrt_sqs_errors_total")? - errors_before;
        println!(
            "{fault:?} for {length:?}: {errors} SQS errors counted, sqsrt_sqs_up went to 0: {saw_down}"
        );
        assert_eq!(not_ready, 0, "/readyz flipped during {fault:?}");
        if fault == Fault::Outage {
            assert!(saw_down, "sqsrt_sqs_up never showed the outage");
            assert!(errors > 0.0, "no SQS error counted during the outage");
        }
    }

    // Receive backoff after a long outage is at most 20 s.
    localstack::wait_empty(&sqs, &url, Duration::from_secs(120)).await?;
    until("sqsrt_sqs_up back to 1", Duration::from_secs(30), || {
        Ok(worker.metric("sqsrt_sqs_up")? == 1)
    })
    .await?;
    let processed = worker.processed();
    let succeeded = successes(&processed);
    let lost: Vec<&String> = sent.difference(&succeeded).collect();
    let success_lines = processed.iter().filter(|p| p.outcome == "success").count();
    let injected = proxy.injected();
    let (dead_lettered, _) = localstack::depth(&sqs, &dlq_url).await?;
    let (early, unseen) = delete_accounting(proxy.observed(), &processed, &sent)?;
    summary::record(&summary::Row {
        suite: format!("SQS faults via proxy ({outage_secs} s outage)"),
        rounds: phases.len() as u64,
        kills: 0,
        faults: injected.total(),
        sent: sent.len() as u64,
        succeeded: succeeded.len() as u64,
        dead_lettered,
        lost: lost.len() as u64,
        deleted_before_success: early.len() as u64,
        duplicates: (success_lines - succeeded.len()) as u64,
    })?;
    assert!(lost.is_empty(), "never succeeded: {lost:?}");
    assert!(
        early.is_empty(),
        "deleted before a success was logged: {early:?}"
    );
    // A delete answered during the outage is not seen; the rest are.
    assert!(
        unseen < sent.len() / 2,
        "the proxy saw few deletes ({unseen} of {} unseen): the check above proved little",
        sent.len()
    );
    assert_eq!(
        dead_lettered, 0,
        "no handler failed, nothing may be dead-lettered"
    );
    every_kind_injected(injected);
    Ok(())
}

/// Each fault kind reached the worker (a phase that injected nothing proved nothing).
fn every_kind_injected(injected: &sqsrt_e2e::fault_proxy::Injected) {
    println!(
        "injected: {} server errors, {} throttles, {} delayed, {} resets",
        injected.server_errors.load(Ordering::Relaxed),
        injected.throttles.load(Ordering::Relaxed),
        injected.delayed.load(Ordering::Relaxed),
        injected.resets.load(Ordering::Relaxed),
    );
    for (kind, count) in [
        ("server errors", &injected.server_errors),
        ("throttles", &injected.throttles),
        ("delayed", &injected.delayed),
        ("resets", &injected.resets),
    ] {
        assert!(
            count.load(Ordering::Relaxed) > 0,
            "no {kind} injected: the phase did not reach the worker"
        );
    }
}
