//! Reliability: three `sqsrt worker` processes under steady load, one of
//! them killed at a random moment every round (SIGTERM or SIGKILL, chosen at
//! random) and restarted. Accounting from the queue and every process's log:
//! each message sent succeeded at least once, the queue ends empty, nothing is
//! lost; duplicates are counted. The workers reach LocalStack through the
//! fault proxy, without faults, which records every delete: none may come
//! before the message's success line. `SQSRT_KILL_ROUNDS` sets the rounds (CI: 6;
//! `scripts/reliability.sh` runs 40), `SQSRT_KILL_SEED` the random seed.

use std::collections::HashSet;
use std::time::Duration;

use sqsrt_e2e::fault_proxy::FaultProxy;
use sqsrt_e2e::localstack::{self, Queues};
use sqsrt_e2e::summary;
use sqsrt_e2e::worker_proc::{Processed, WorkerProc, delete_accounting, successes};

const WORKERS: usize = 3;

fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    Ok(std::env::var(name)
        .ok()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(default))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_storm_loses_nothing() -> anyhow::Result<()> {
    let rounds = env_number("SQSRT_KILL_ROUNDS", 6)?;
    let seed = env_number("SQSRT_KILL_SEED", fastrand::u64(..))?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let sqs = localstack::client().await?;
    // Visibility 3 s: what a SIGKILL leaves behind comes back quickly.
    let Queues { url, dlq_url } = localstack::create_queues(&sqs, "storm", false, 3, 50).await?;
    let args = [
        "--max-in-flight",
        "10",
        "--shutdown-grace-secs",
        "5",
        "--handler-timeout-secs",
        "2",
    ];
    let proxy = FaultProxy::start(&localstack::endpoint()?).await?;
    let endpoint = proxy.endpoint();
    let mut running: Vec<WorkerProc> = (0..WORKERS)
        .map(|_| WorkerProc::start_via(&endpoint, &url, &args))
        .collect::<anyhow::Result<_>>()?;
    let mut finished: Vec<Processed> = Vec::new();
    let mut sent: HashSet<String> = HashSet::new();
    let (mut terms, mut kills, mut term_exits_ok) = (0_u64, 0_u64, 0_u64);

    for _ in 0..rounds {
        // Steady load: 30 messages of 50-300 ms per round.
        let bodies: Vec<String> = (0..30)
            .map(|_| format!(r#"{{"action":"sleep","ms":{}}}"#, rng.u64(50..=300)))
            .collect();
        sent.extend(localstack::send(&sqs, &url, &bodies).await?);
        tokio::time::sleep(Duration::from_millis(rng.u64(100..=800))).await;
        let victim = rng.usize(..WORKERS);
        let mut worker = running.swap_remove(victim);
        if rng.bool() {
            terms += 1;
            worker.signal("TERM")?;
            let (status, _) = worker.wait_exit(Duration::from_secs(30))?;
            // Handlers take at most 300 ms, far below the 5 s grace.
            if status.success() {
                term_exits_ok += 1;
            }
        } else {
            kills += 1;
            worker.signal("KILL")?;
            worker.wait_exit(Duration::from_secs(5))?;
        }
        finished.extend(worker.processed());
        running.push(WorkerProc::start_via(&endpoint, &url, &args)?);
    }

    localstack::wait_empty(&sqs, &url, Duration::from_secs(90)).await?;
    for worker in &mut running {
        worker.signal("TERM")?;
        worker.wait_exit(Duration::from_secs(30))?;
        finished.extend(worker.processed());
    }
    let (dead_lettered, _) = localstack::depth(&sqs, &dlq_url).await?;
    let succeeded = successes(&finished);
    let success_lines = finished.iter().filter(|p| p.outcome == "success").count();
    let lost: Vec<&String> = sent.difference(&succeeded).collect();
    let (early, unseen) = delete_accounting(proxy.observed(), &finished, &sent)?;
    summary::record(&summary::Row {
        suite: format!("kill storm, {WORKERS} workers (seed {seed})"),
        rounds,
        kills: terms + kills,
        faults: 0,
        sent: sent.len() as u64,
        succeeded: succeeded.len() as u64,
        dead_lettered,
        lost: lost.len() as u64,
        deleted_before_success: early.len() as u64,
        duplicates: (success_lines - succeeded.len()) as u64,
    })?;
    println!("kills: {terms} SIGTERM, {kills} SIGKILL");
    assert_eq!(term_exits_ok, terms, "every SIGTERM drained and exited 0");
    assert!(
        lost.is_empty(),
        "sent, gone from the queue, never succeeded: {lost:?}"
    );
    assert!(
        early.is_empty(),
        "deleted before a success was logged: {early:?}"
    );
    assert_eq!(
        unseen, 0,
        "messages whose delete the proxy never saw: the check above missed them"
    );
    assert_eq!(
        dead_lettered, 0,
        "no handler failed, nothing may be dead-lettered"
    );
    Ok(())
}
