use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use tokio::task::Id;

use crate::handler::{Context, HandlerError, handler_fn};

/// Options for a batch from a FIFO queue.
fn fifo() -> BatchOptions {
    BatchOptions {
        fifo: true,
        ..BatchOptions::default()
    }
}

fn config(max_in_flight: usize) -> EngineConfig {
    EngineConfig::default()
        .max_in_flight(NonZeroUsize::new(max_in_flight).unwrap())
        .handler_timeout(Duration::from_secs(5))
}

/// A handler driven by the body: `ok`, `retry`, `perm`, `panic`,
/// `sleep:<ms>`; it records the order in which bodies started.
fn scripted(log: Arc<Mutex<Vec<String>>>) -> impl Handler {
    handler_fn(move |m: Message, _ctx: Context| {
        let log = Arc::clone(&log);
        async move {
            log.lock().unwrap().push(m.id().to_owned());
            let body = m.body();
            if let Some(ms) = body.strip_prefix("sleep:") {
                tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
                return Ok(());
            }
            match body {
                "retry" => Err(HandlerError::retry_after(
                    "asked to retry",
                    Duration::from_secs(7),
                )),
                "perm" => Err(HandlerError::permanent("asked to reject")),
                "panic" => panic!("boom in {}", m.id()),
                _ => Ok(()),
            }
        }
    })
}

/// How many handlers run at once, and the most seen.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let current = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(current, Ordering::SeqCst);
    }

    fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

fn msgs(bodies: &[(&str, Option<&str>, &str)]) -> Vec<Message> {
    bodies
        .iter()
        .map(|(id, group, body)| {
            let m = Message::new(*id, *body);
            match group {
                Some(g) => m.with_group(*g),
                None => m,
            }
        })
        .collect()
}

#[tokio::test]
async fn empty_batch_reports_nothing() {
    let engine = Engine::new(scripted(Arc::default()), config(4));
    assert!(
        engine
            .run_batch(Vec::new(), &BatchOptions::default())
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn each_handler_result_maps_to_its_outcome() {
    let engine = Engine::new(scripted(Arc::default()), config(4));
    let out = engine
        .run_batch(
            msgs(&[("a", None, "ok"), ("b", None, "retry"), ("c", None, "perm")]),
            &BatchOptions::default(),
        )
        .await;
    assert_eq!(out[0], Outcome::Success);
    assert_eq!(
        out[1],
        Outcome::Retry {
            reason: "asked to retry".into(),
            delay: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(
        out[2],
        Outcome::Permanent {
            reason: "asked to reject".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_a_retry_and_the_rest_of_the_batch_goes_on() {
    let engine = Engine::new(scripted(Arc::default()), config(2));
    let out = engine
        .run_batch(
            msgs(&[("a", None, "panic"), ("b", None, "ok"), ("c", None, "ok")]),
            &BatchOptions::default(),
        )
        .await;
    match &out[0] {
        Outcome::Retry {
            reason,
            delay: None,
        } => {
            assert!(reason.contains("handler panicked: boom in a"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(&out[1..], &[Outcome::Success, Outcome::Success]);
}

#[tokio::test(start_paused = true)]
async fn timeout_is_a_retry() {
    let engine = Engine::new(scripted(Arc::default()), config(2));
    let out = engine
        .run_batch(
            msgs(&[("slow", None, "sleep:6000"), ("fast", None, "sleep:10")]),
            &BatchOptions::default(),
        )
        .await;
    assert!(
        matches!(&out[0], Outcome::Retry { reason, .. } if reason.contains("timed out after 5s")),
        "{out:?}"
    );
    assert_eq!(out[1], Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_bound_is_never_exceeded_and_is_used() {
    let gauge = Arc::new(Gauge::default());
    let handler = {
        let gauge = Arc::clone(&gauge);
        handler_fn(move |_m: Message, _ctx: Context| {
            let gauge = Arc::clone(&gauge);
            async move {
                gauge.enter();
                tokio::time::sleep(Duration::from_millis(2)).await;
                gauge.exit();
                Ok::<_, HandlerError>(())
            }
        })
    };
    let engine = Engine::new(handler, config(7));
    let batch: Vec<Message> = (0..200).map(|i| Message::new(i.to_string(), "")).collect();
    // Two batches at once share the engine's bound.
    let options = BatchOptions::default();
    let (a, b) = tokio::join!(
        engine.run_batch(batch.clone(), &options),
        engine.run_batch(batch, &options)
    );
    assert!(a.iter().chain(&b).all(Outcome::is_success));
    assert_eq!(gauge.peak(), 7);
}

/// A handler that records the time each call's context has left, then
/// works (sleeps) for `work`.
fn remaining_recorder(work: Duration) -> (Arc<Mutex<Vec<Duration>>>, impl Handler) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = Arc::clone(&seen);
        handler_fn(move |_m: Message, ctx: Context| {
            seen.lock().unwrap().push(ctx.remaining());
            async move {
                if !work.is_zero() {
                    tokio::time::sleep(work).await;
                }
                Ok::<_, HandlerError>(())
            }
        })
    };
    (seen, handler)
}

/// Runs `batch` on a task of its own through a handler that, by body,
/// sleeps 1 ms (`wait`) or returns at once; gives that task's id and each
/// handler's body and task id.
async fn tasks_of_handlers(batch: Vec<Message>) -> (Id, Vec<(String, Option<Id>)>) {
    let tasks = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let tasks = Arc::clone(&tasks);
        handler_fn(move |m: Message, _ctx: Context| {
            let tasks = Arc::clone(&tasks);
            async move {
                if m.body() == "wait" {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                tasks
                    .lock()
                    .unwrap()
                    .push((m.into_body(), tokio::task::try_id()));
                Ok::<_, HandlerError>(())
            }
        })
    };
    let engine = Engine::new(handler, config(4));
    let batch_task = tokio::spawn(async move {
        let outcomes = engine.run_batch(batch, &BatchOptions::default()).await;
        assert!(outcomes.iter().all(Outcome::is_success));
    });
    let batch_id = batch_task.id();
    batch_task.await.unwrap();
    let tasks = std::mem::take(&mut *tasks.lock().unwrap());
    (batch_id, tasks)
}

// Paused time: a first poll takes no time on the test's clock, however busy
// the machine (the slow-poll rule is `inline_polls_stop_after_a_streak_of_slow_first_polls`).
#[tokio::test(start_paused = true)]
async fn quick_handlers_finish_on_the_batch_task_and_waiting_ones_get_their_own() {
    let batch = msgs(&[
        ("a", None, "quick"),
        ("b", None, "wait"),
        ("c", None, "quick"),
    ]);
    let (batch_id, tasks) = tasks_of_handlers(batch).await;
    assert_eq!(tasks.len(), 3);
    for (body, task) in &tasks {
        if body == "quick" {
            assert_eq!(*task, Some(batch_id), "{body} ran on the batch's task");
        } else {
            assert!(
                task.is_some_and(|t| t != batch_id),
                "{body} got its own task"
            );
        }
    }
}

#[test]
fn inline_polls_stop_after_a_streak_of_slow_first_polls() {
    use super::task::InlinePolls;
    let slow = Duration::from_millis(2);
    let quick = Duration::from_micros(5);
    let mut inline = InlinePolls::default();
    // A single slow first poll (a handler spinning, or on a busy machine the
    // OS pausing the thread) does not send the quick handlers after it to
    // tasks of their own; the streak starts again after a quick one.
    for _ in 0..10 {
        inline.record(slow);
        inline.record(slow);
        assert!(inline.enabled());
        inline.record(quick);
    }
    // Three slow ones in a row (CPU-heavy handlers) do.
    for _ in 0..3 {
        assert!(inline.enabled());
        inline.record(slow);
    }
    assert!(!inline.enabled());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_heavy_synchronous_handlers_still_run_in_parallel() {
    // Each handler spins without awaiting until it has seen another one
    // running at the same time (bounded: 300 ms). Run one after another on
    // the batch's task, none would ever see another.
    let gauge = Arc::new(Gauge::default());
    let handler = {
        let gauge = Arc::clone(&gauge);
        handler_fn(move |_m: Message, _ctx: Context| {
            let gauge = Arc::clone(&gauge);
            async move {
                gauge.enter();
                let spin_until = std::time::Instant::now() + Duration::from_millis(300);
                while gauge.peak() < 2 && std::time::Instant::now() < spin_until {
                    std::hint::spin_loop();
                }
                gauge.exit();
                Ok::<_, HandlerError>(())
            }
        })
    };
    let engine = Engine::new(handler, config(8));
    let batch: Vec<Message> = (0..8).map(|i| Message::new(i.to_string(), "")).collect();
    let outcomes = engine.run_batch(batch, &BatchOptions::default()).await;
    assert!(outcomes.iter().all(Outcome::is_success));
    assert!(gauge.peak() >= 2, "handlers never overlapped");
}

#[tokio::test]
async fn quick_synchronous_handlers_still_stop_when_the_batch_is_stopped() {
    // 10,000 handlers finishing on their first poll, the 100th of which stops
    // the batch. Stop and start deadline are checked before every start (one
    // check, `Batch::check_stop`), so exactly 100 run, whatever the machine's
    // speed; checked only between waits, all would.
    let stop = CancellationToken::new();
    let started = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (stop, started) = (stop.clone(), Arc::clone(&started));
        handler_fn(move |_m: Message, _ctx: Context| {
            if started.fetch_add(1, Ordering::Relaxed) + 1 == 100 {
                stop.cancel();
            }
            async { Ok::<_, HandlerError>(()) }
        })
    };
    let engine = Engine::new(handler, config(4));
    let batch: Vec<Message> = (0..10_000)
        .map(|i| Message::new(i.to_string(), ""))
        .collect();
    let options = BatchOptions {
        stop,
        ..BatchOptions::default()
    };
    let outcomes = engine.run_batch(batch, &options).await;
    assert_eq!(started.load(Ordering::Relaxed), 100);
    assert!(outcomes[..100].iter().all(Outcome::is_success));
    assert!(outcomes[100..].iter().all(|o| matches!(
        o,
        Outcome::Skipped {
            reason: SkipReason::Shutdown
        }
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_group_runs_one_at_a_time_in_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let engine = Engine::new(scripted(Arc::clone(&log)), config(8));
    let batch = msgs(&[
        ("g1-1", Some("g1"), "sleep:20"),
        ("g2-1", Some("g2"), "sleep:5"),
        ("g1-2", Some("g1"), "sleep:1"),
        ("g2-2", Some("g2"), "sleep:1"),
        ("g1-3", Some("g1"), "ok"),
    ]);
    let out = engine.run_batch(batch, &fifo()).await;
    assert!(out.iter().all(Outcome::is_success));
    let log = log.lock().unwrap().clone();
    let order = |g: &str| {
        log.iter()
            .filter(|id| id.starts_with(g))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(order("g1"), ["g1-1", "g1-2", "g1-3"]);
    assert_eq!(order("g2"), ["g2-1", "g2-2"]);
    // g2 did not wait for g1: its second message started before g1's second.
    let pos = |id: &str| log.iter().position(|x| x == id).unwrap();
    assert!(pos("g2-2") < pos("g1-2"), "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn on_a_standard_queue_a_group_is_a_tenant_and_orders_nothing() {
    // SQS fair queues: the group id is a tenant key. Messages of one tenant
    // run side by side, and a failure holds nothing back.
    let log = Arc::new(Mutex::new(Vec::new()));
    let engine = Engine::new(scripted(Arc::clone(&log)), config(8));
    let batch = msgs(&[
        ("t1", Some("tenant"), "retry"),
        ("t2", Some("tenant"), "sleep:50"),
        ("t3", Some("tenant"), "sleep:50"),
        ("t4", Some("tenant"), "ok"),
    ]);
    let started = Instant::now();
    let out = engine.run_batch(batch, &BatchOptions::default()).await;
    assert!(matches!(out[0], Outcome::Retry { .. }));
    assert!(out[1..].iter().all(Outcome::is_success), "{out:?}");
    assert_eq!(log.lock().unwrap().len(), 4, "every message ran");
    // Side by side (paused clock): two 50 ms handlers took 50 ms, not 100.
    assert_eq!(started.elapsed(), Duration::from_millis(50));
}

#[tokio::test]
async fn fifo_failure_skips_rest_of_group_only() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let engine = Engine::new(scripted(Arc::clone(&log)), config(8));
    let batch = msgs(&[
        ("a1", Some("a"), "ok"),
        ("a2", Some("a"), "retry"),
        ("b1", Some("b"), "ok"),
        ("a3", Some("a"), "ok"),
        ("b2", Some("b"), "ok"),
        ("a4", Some("a"), "ok"),
    ]);
    let out = engine.run_batch(batch, &fifo()).await;
    let skipped = Outcome::Skipped {
        reason: SkipReason::GroupFailed {
            failed_message_id: "a2".into(),
        },
    };
    assert_eq!(out[0], Outcome::Success);
    assert!(matches!(out[1], Outcome::Retry { .. }));
    assert_eq!(out[2], Outcome::Success);
    assert_eq!(out[3], skipped);
    assert_eq!(out[4], Outcome::Success);
    assert_eq!(out[5], skipped);
    assert!(
        !log.lock()
            .unwrap()
            .iter()
            .any(|id| id == "a3" || id == "a4")
    );
}

#[tokio::test(start_paused = true)]
async fn a_message_that_waited_for_a_slot_gets_its_full_time_from_its_own_start() {
    // One slot shared by two batches, 100 ms handlers, 250 ms handler
    // timeout: the second batch's message waits for the slot, and its
    // context's deadline and reported duration count from its own start,
    // not from a clock read before the wait.
    let (remaining, handler) = remaining_recorder(Duration::from_millis(100));
    let engine = Engine::new(
        handler,
        config(1).handler_timeout(Duration::from_millis(250)),
    );
    let options = BatchOptions {
        start_deadline: Some(Instant::now() + Duration::from_secs(10)),
        ..BatchOptions::default()
    };
    let (mut first, mut second) = (Vec::new(), Vec::new());
    tokio::join!(
        engine.run_batch_with(vec![Message::new("a", "")], &options, |r| first
            .push(r.elapsed)),
        engine.run_batch_with(vec![Message::new("b", "")], &options, |r| second
            .push(r.elapsed)),
    );
    assert_eq!(*remaining.lock().unwrap(), [Duration::from_millis(250); 2]);
    for elapsed in first.iter().chain(&second) {
        assert_eq!(*elapsed, Some(Duration::from_millis(100)));
    }
}

#[tokio::test(start_paused = true)]
async fn nothing_starts_after_the_start_deadline() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let engine = Engine::new(scripted(Arc::clone(&log)), config(1));
    let options = BatchOptions {
        start_deadline: Some(Instant::now() + Duration::from_millis(250)),
        ..BatchOptions::default()
    };
    let batch = (0..10)
        .map(|i| Message::new(i.to_string(), "sleep:100"))
        .collect();
    let out = engine.run_batch(batch, &options).await;
    // One at a time, 100 ms each: messages 0, 1 and 2 start before 250 ms.
    assert_eq!(out.iter().filter(|o| o.is_success()).count(), 3, "{out:?}");
    assert!(out[3..].iter().all(|o| *o
        == Outcome::Skipped {
            reason: SkipReason::Deadline
        }));
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn running_messages_are_abandoned_as_retries_at_the_abandon_deadline() {
    let engine = Engine::new(scripted(Arc::default()), config(2));
    let start = Instant::now();
    let options = BatchOptions {
        start_deadline: Some(start + Duration::from_millis(100)),
        abandon_deadline: Some(start + Duration::from_millis(150)),
        ..fifo()
    };
    let batch = msgs(&[
        ("quick", None, "sleep:10"),
        ("long", Some("g"), "sleep:4000"),
        ("after-long", Some("g"), "ok"),
        ("queued", None, "ok"),
    ]);
    let out = engine.run_batch(batch, &options).await;
    assert!(
        Instant::now() - start < Duration::from_millis(200),
        "did not wait for the handler"
    );
    assert_eq!(out[0], Outcome::Success);
    assert!(
        matches!(&out[1], Outcome::Retry { reason, .. } if reason.contains("invocation deadline"))
    );
    assert_eq!(
        out[2],
        Outcome::Skipped {
            reason: SkipReason::GroupFailed {
                failed_message_id: "long".into()
            }
        }
    );
    // "queued" started once "quick" freed its slot.
    assert_eq!(out[3], Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn stop_skips_unstarted_as_shutdown_and_drains_running() {
    let engine = Engine::new(scripted(Arc::default()), config(2));
    let options = fifo();
    let stop = options.stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.cancel();
    });
    let batch = msgs(&[
        ("a", None, "sleep:1000"),
        ("b", Some("g"), "sleep:1000"),
        ("c", Some("g"), "ok"),
        ("d", None, "ok"),
    ]);
    let out = engine.run_batch(batch, &options).await;
    let shutdown = Outcome::Skipped {
        reason: SkipReason::Shutdown,
    };
    assert_eq!(
        out,
        vec![
            Outcome::Success,
            Outcome::Success,
            shutdown.clone(),
            shutdown
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn abandon_signal_cancels_context_and_reports_running_as_retry() {
    let handler = handler_fn(|_m: Message, ctx: Context| async move {
        ctx.cancellation().cancelled().await;
        // A handler that stops early when told; the engine does not wait for it anyway.
        Ok::<_, HandlerError>(())
    });
    let engine = Engine::new(handler, config(1));
    let options = BatchOptions::default();
    let abandon = options.abandon.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        abandon.cancel();
    });
    let out = engine
        .run_batch(vec![Message::new("a", ""), Message::new("b", "")], &options)
        .await;
    assert!(matches!(&out[0], Outcome::Retry { reason, .. } if reason.contains("shutdown grace")));
    assert_eq!(
        out[1],
        Outcome::Skipped {
            reason: SkipReason::Shutdown
        }
    );
}

#[tokio::test(start_paused = true)]
async fn context_deadline_is_the_sooner_of_timeout_and_start_deadline() {
    let (seen, handler) = remaining_recorder(Duration::ZERO);
    let engine = Engine::new(handler, config(1));
    engine
        .run_batch(vec![Message::new("a", "")], &BatchOptions::default())
        .await;
    let options = BatchOptions {
        start_deadline: Some(Instant::now() + Duration::from_secs(1)),
        ..BatchOptions::default()
    };
    engine
        .run_batch(vec![Message::new("b", "")], &options)
        .await;
    assert_eq!(
        *seen.lock().unwrap(),
        [Duration::from_secs(5), Duration::from_secs(1)]
    );
}

#[tokio::test]
async fn reports_arrive_once_per_message_with_elapsed_only_when_run() {
    let engine = Engine::new(scripted(Arc::default()), config(4));
    let mut reports = Vec::new();
    engine
        .run_batch_with(
            msgs(&[
                ("a", Some("g"), "perm"),
                ("b", Some("g"), "ok"),
                ("c", None, "ok"),
            ]),
            &fifo(),
            |r| reports.push(r),
        )
        .await;
    reports.sort_by_key(|r| r.index);
    assert_eq!(
        reports.iter().map(|r| r.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(reports[0].elapsed.is_some());
    assert!(reports[1].elapsed.is_none());
    assert!(reports[2].elapsed.is_some());
}

/// Concurrent batches (Lambda Managed Instances: one per invocation) share
/// the engine's in-flight bound, and each handler sees its own batch's
/// invocation ids; a batch without one gives `None`.
#[tokio::test(start_paused = true)]
async fn concurrent_batches_share_the_bound_and_keep_their_invocation() {
    let gauge = Arc::new(Gauge::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let (gauge, seen) = (Arc::clone(&gauge), Arc::clone(&seen));
        handler_fn(move |m: Message, ctx: Context| {
            let (gauge, seen) = (Arc::clone(&gauge), Arc::clone(&seen));
            async move {
                gauge.enter();
                seen.lock().unwrap().push((
                    m.body().to_owned(),
                    ctx.request_id().map(str::to_owned),
                    ctx.trace_id().map(str::to_owned),
                ));
                tokio::time::sleep(Duration::from_millis(100)).await;
                gauge.exit();
                Ok::<(), HandlerError>(())
            }
        })
    };
    let engine = Engine::new(handler, config(3));
    let batch = |n: usize, invocation: Invocation| {
        let engine = engine.clone();
        let messages: Vec<Message> = (0..4)
            .map(|i| Message::new(format!("m{n}-{i}"), format!("b{n}")))
            .collect();
        let options = BatchOptions {
            invocation,
            ..BatchOptions::default()
        };
        async move { engine.run_batch(messages, &options).await }
    };
    let with_ids = |n: usize| Invocation::new(Some(format!("req-{n}")), Some(format!("Root=t{n}")));
    let (a, b, c) = tokio::join!(
        batch(1, with_ids(1)),
        batch(2, with_ids(2)),
        batch(3, Invocation::default())
    );
    for outcomes in [a, b, c] {
        assert!(outcomes.iter().all(|o| *o == Outcome::Success));
    }
    assert_eq!(gauge.peak(), 3, "one bound for all batches");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 12);
    for (body, request_id, trace_id) in seen.iter() {
        let want = match body.as_str() {
            "b1" => (Some("req-1"), Some("Root=t1")),
            "b2" => (Some("req-2"), Some("Root=t2")),
            _ => (None, None),
        };
        assert_eq!((request_id.as_deref(), trace_id.as_deref()), want, "{body}");
    }
}

/// Most handlers seen at once, by tenant: `(now, peak)`.
type Gauges = Arc<Mutex<HashMap<String, (usize, usize)>>>;
/// When each message started, from the engine's creation.
type Starts = Arc<Mutex<Vec<(String, Duration)>>>;

/// An engine of 10 slots with a per-tenant cap of `cap`, whose handler
/// sleeps the ms its body gives, tracking how many run at once per tenant
/// (group id) and when each message started.
fn capped_engine(cap: usize) -> (Engine<impl Handler>, Gauges, Starts) {
    let gauges: Gauges = Arc::default();
    let starts: Starts = Arc::default();
    let origin = Instant::now();
    let handler = {
        let (gauges, starts) = (Arc::clone(&gauges), Arc::clone(&starts));
        handler_fn(move |m: Message, _ctx: Context| {
            let (gauges, starts) = (Arc::clone(&gauges), Arc::clone(&starts));
            async move {
                let tenant = m.group_id().unwrap_or("-").to_owned();
                starts
                    .lock()
                    .unwrap()
                    .push((m.id().to_owned(), origin.elapsed()));
                {
                    let mut g = gauges.lock().unwrap();
                    let e = g.entry(tenant.clone()).or_default();
                    e.0 += 1;
                    e.1 = e.1.max(e.0);
                }
                let ms = m.body().parse().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                gauges.lock().unwrap().get_mut(&tenant).unwrap().0 -= 1;
                Ok::<(), HandlerError>(())
            }
        })
    };
    let engine = Engine::new(
        handler,
        config(10).max_in_flight_per_group(NonZeroUsize::new(cap)),
    );
    (engine, gauges, starts)
}

fn tenant_msgs(prefix: &str, tenant: Option<&str>, n: usize, ms: u64) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let m = Message::new(format!("{prefix}{i}"), ms.to_string());
            match tenant {
                Some(t) => m.with_group(t),
                None => m,
            }
        })
        .collect()
}

/// The per-tenant cap holds across batches; other tenants' messages (and
/// those without a group) start at once, not behind the capped tenant.
#[tokio::test(start_paused = true)]
async fn a_tenant_at_its_cap_waits_without_holding_back_others() {
    let (engine, gauges, starts) = capped_engine(2);
    let options = BatchOptions::default();
    let mut first = tenant_msgs("a", Some("A"), 4, 100);
    first.extend(tenant_msgs("b", Some("B"), 2, 100));
    let mut second = tenant_msgs("x", Some("A"), 2, 100);
    second.extend(tenant_msgs("n", None, 2, 100));
    let (one, two) = tokio::join!(
        engine.run_batch(first, &options),
        engine.run_batch(second, &options)
    );
    assert!(one.iter().chain(&two).all(|o| *o == Outcome::Success));
    let gauges = gauges.lock().unwrap();
    assert_eq!(
        gauges["A"].1, 2,
        "tenant A never above its cap, across batches"
    );
    assert_eq!(gauges["B"].1, 2);
    let starts = starts.lock().unwrap();
    for (id, at) in starts.iter() {
        if id.starts_with('b') || id.starts_with('n') {
            assert_eq!(*at, Duration::ZERO, "{id} started at once");
        }
    }
    let last_a = starts
        .iter()
        .filter(|(id, _)| id.starts_with('a') || id.starts_with('x'))
        .map(|(_, at)| *at)
        .max()
        .unwrap();
    assert_eq!(
        last_a,
        Duration::from_millis(200),
        "six of A in three waves of two"
    );
}

/// With a bound on the wait (worker mode), a message still waiting for its
/// tenant when it runs out is skipped as `GroupBusy` with that delay.
#[tokio::test(start_paused = true)]
async fn a_message_waiting_past_the_bound_goes_back_with_a_delay() {
    let (engine, _, _) = capped_engine(1);
    let options = BatchOptions {
        group_wait: Some(Duration::from_millis(150)),
        ..BatchOptions::default()
    };
    let mut messages = tenant_msgs("a", Some("A"), 3, 100);
    messages.extend(tenant_msgs("b", Some("B"), 1, 400));
    let outcomes = engine.run_batch(messages, &options).await;
    assert_eq!(
        outcomes,
        [
            Outcome::Success,
            Outcome::Success,
            Outcome::Skipped {
                reason: SkipReason::GroupBusy {
                    delay: Duration::from_millis(150)
                }
            },
            Outcome::Success,
        ],
        "a0 at 0, a1 at 100 ms, a2 still waiting at 150 ms; b (its own tenant) unaffected"
    );
}

/// FIFO batches are not capped by tenant: a group runs one at a time there
/// already, and other groups are not held.
#[tokio::test(start_paused = true)]
async fn the_tenant_cap_leaves_fifo_batches_alone() {
    let (engine, _, _) = capped_engine(1);
    let options = BatchOptions {
        group_wait: Some(Duration::from_millis(10)),
        ..fifo()
    };
    let outcomes = engine
        .run_batch(tenant_msgs("a", Some("A"), 3, 100), &options)
        .await;
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Success),
        "{outcomes:?}"
    );
}
