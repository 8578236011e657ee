//! The receive loop: pollers that long-poll while there is room, batches run
//! through the engine, a settler, a heartbeat, and the drain on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqsrt_core::{BatchOptions, Engine, Handler, Message};
use sqsrt_sqs::{QueueAttributes, ReceiveRequest, Received, WorkerQueue};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{Exit, WorkerConfig, WorkerError};
use crate::errors::ErrorLog;
use crate::heartbeat::{Heartbeat, InFlight, check_heartbeat};
use crate::http::{self, Health};
use crate::metrics::Metrics;
use crate::settle::{Held, Settlement, Settler};

/// SQS's longest long poll.
const WAIT_SECS: u8 = 20;
/// SQS's largest receive.
const RECEIVE_MAX: usize = 10;
/// How long a poller holding some free slots waits for more before it
/// receives: one receive of ten instead of ten receives of one when slots
/// free one at a time. Short against handler times, and it saves the queue
/// endpoint (and the worker's CPU: signing and HTTP per request) most requests.
const FILL_WINDOW: Duration = Duration::from_millis(20);
/// Receive-error backoff bounds.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(20);

/// Everything the worker's tasks share.
struct Shared<H, Q> {
    engine: Engine<H>,
    queue: Arc<Q>,
    config: WorkerConfig,
    visibility: Duration,
    fifo: bool,
    slots: Arc<Semaphore>,
    /// Held by the one poller gathering slots for its next receive, so that
    /// freed slots go to one receive instead of round-robin to all pollers.
    filling: tokio::sync::Mutex<()>,
    in_flight: Arc<InFlight>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    errors: Arc<ErrorLog>,
    shutdown: CancellationToken,
    abandon: CancellationToken,
    tracker: TaskTracker,
    settle: UnboundedSender<Settlement>,
    next_key: AtomicU64,
}

/// Runs the worker until `shutdown` is cancelled, then drains: stops
/// receiving, releases unstarted messages, lets running handlers finish
/// within the shutdown grace, flushes deletes.
///
/// # Errors
///
/// [`WorkerError::Bind`] when the metrics address cannot be bound, and
/// [`WorkerError::Config`] when the queue's own settings conflict with the
/// configuration (checked at first contact).
pub async fn run<H: Handler, Q: WorkerQueue>(
    engine: Engine<H>,
    queue: Arc<Q>,
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> Result<Exit, WorkerError> {
    let mut metrics = Metrics::default();
    let handler = Arc::clone(engine.handler());
    metrics.add_handler_metrics(move || handler.metrics());
    let metrics = Arc::new(metrics);
    // Several poll periods without progress while not full means stuck.
    let health = Arc::new(Health::new(Duration::from_secs(u64::from(WAIT_SECS) * 4)));
    health.progress();
    let (listener, bound) =
        http::bind(config.metrics_addr)
            .await
            .map_err(|source| WorkerError::Bind {
                addr: config.metrics_addr,
                source,
            })?;
    info!(metrics_addr = %bound, queue_url = %config.queue_url, max_in_flight = engine.config().in_flight_limit(), prefetch = config.prefetch, "Worker started; serving /healthz, /readyz and /metrics.");
    let http_stop = CancellationToken::new();
    let server = tokio::spawn(http::serve(
        listener,
        Arc::clone(&health),
        Arc::clone(&metrics),
        http_stop.clone(),
    ));
    let errors = Arc::new(ErrorLog::default());

    let Some(attributes) =
        first_contact(&*queue, &config, &metrics, &health, &errors, &shutdown).await
    else {
        http_stop.cancel();
        let _ = server.await;
        return Ok(Exit::Drained);
    };
    let (visibility, heartbeat_period) =
        check_queue(&config, engine.config().timeout(), &attributes)?;

    let in_flight_limit = engine.config().in_flight_limit();
    let (settle_tx, settle_rx) = unbounded_channel();
    let settle_close = CancellationToken::new();
    let in_flight = Arc::new(InFlight::default());
    let abandon = CancellationToken::new();
    let settler = tokio::spawn(
        Settler {
            queue: Arc::clone(&queue),
            queue_url: config.queue_url.clone(),
            dlq_url: config.dlq_url.clone(),
            retry: config.retry,
            metrics: Arc::clone(&metrics),
            in_flight: Arc::clone(&in_flight),
            abandoned: abandon.clone(),
            errors: Arc::clone(&errors),
        }
        .run(settle_rx, settle_close.clone()),
    );
    let shared = Arc::new(Shared {
        engine,
        queue,
        // Receives fill handler slots and the prefetch; the engine's own
        // bound keeps the prefetched messages waiting until a handler is free.
        slots: Arc::new(Semaphore::new(in_flight_limit + config.prefetch)),
        filling: tokio::sync::Mutex::new(()),
        fifo: attributes.fifo,
        visibility,
        config,
        in_flight,
        metrics,
        health,
        errors,
        shutdown: shutdown.clone(),
        abandon: abandon.clone(),
        tracker: TaskTracker::new(),
        settle: settle_tx,
        next_key: AtomicU64::new(0),
    });

    let heartbeat_stop = CancellationToken::new();
    let heartbeat_task = tokio::spawn(
        Heartbeat {
            queue: Arc::clone(&shared.queue),
            queue_url: shared.config.queue_url.clone(),
            visibility: shared.visibility,
            in_flight: Arc::clone(&shared.in_flight),
            metrics: Arc::clone(&shared.metrics),
            errors: Arc::clone(&shared.errors),
        }
        .run(heartbeat_period, heartbeat_stop.clone()),
    );
    let pollers = (shared.engine.config().in_flight_limit() + shared.config.prefetch)
        .div_ceil(RECEIVE_MAX)
        .clamp(1, 16);
    let mut poller_tasks = Vec::with_capacity(pollers);
    for _ in 0..pollers {
        poller_tasks.push(tokio::spawn(poll(Arc::clone(&shared))));
    }

    shutdown.cancelled().await;
    let exit = drain(&shared, poller_tasks).await;
    // Every outcome is in the settler's channel now: let it finish.
    settle_close.cancel();
    if let Err(error) = settler.await {
        error!(%error, "The settler failed.");
    }
    heartbeat_stop.cancel();
    let _ = heartbeat_task.await;
    http_stop.cancel();
    let _ = server.await;
    info!(?exit, "Worker stopped.");
    Ok(exit)
}

/// The drain, one deadline from the signal: no receive starts; the long
/// polls in flight are finished and what they bring is released at once
/// (abandoned, SQS would still hand them messages, stranded for a visibility
/// timeout); unstarted messages are released by the engine, running ones
/// finish. When the shutdown grace runs out, receives still open are
/// dropped and running messages are abandoned and released.
async fn drain<H: Handler, Q: WorkerQueue>(
    shared: &Shared<H, Q>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
) -> Exit {
    let deadline = tokio::time::Instant::now() + shared.config.shutdown_grace;
    shared.health.set_ready(false);
    info!(
        held = shared.in_flight.len(),
        grace_secs = shared.config.shutdown_grace.as_secs(),
        "Shutdown began: no new receive; the long polls in flight finish and what they bring is released; unstarted messages are released, running ones finish."
    );
    let mut expired = false;
    for mut task in pollers {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            expired = true;
            task.abort();
            let _ = task.await;
        }
    }
    if expired {
        warn!(
            "Shutdown grace ran out with a receive still open; whatever SQS gives it returns after the visibility timeout."
        );
    }
    shared.tracker.close();
    // Polled before the deadline is checked: with no task left this is
    // `Drained` even after a receive was dropped (nothing lost; it is late).
    if tokio::time::timeout_at(deadline, shared.tracker.wait())
        .await
        .is_ok()
    {
        return Exit::Drained;
    }
    warn!(
        still_running = shared.in_flight.len(),
        "Shutdown grace ran out; releasing the messages still running."
    );
    shared.abandon.cancel();
    shared.tracker.wait().await;
    Exit::GraceExpired
}

/// Reads the queue's attributes, retrying with backoff until it works or
/// shutdown begins (`None`).
async fn first_contact<Q: WorkerQueue>(
    queue: &Q,
    config: &WorkerConfig,
    metrics: &Metrics,
    health: &Health,
    errors: &ErrorLog,
    shutdown: &CancellationToken,
) -> Option<QueueAttributes> {
    let mut backoff = BACKOFF_BASE;
    loop {
        let result = tokio::select! {
            r = queue.queue_attributes(&config.queue_url) => r,
            () = shutdown.cancelled() => return None,
        };
        metrics.sqs_call("GetQueueAttributes", result.is_ok());
        health.progress();
        match result {
            Ok(attributes) => {
                errors.ok();
                return Some(attributes);
            }
            Err(error) => errors.failed(&error),
        }
        tokio::select! {
            () = tokio::time::sleep(jitter(backoff)) => {}
            () = shutdown.cancelled() => return None,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// The visibility and heartbeat in force, with the warnings and checks that
/// need the queue's own settings.
fn check_queue(
    config: &WorkerConfig,
    handler_timeout: Duration,
    attributes: &QueueAttributes,
) -> Result<(Duration, Duration), WorkerError> {
    let visibility = config
        .visibility_timeout
        .unwrap_or(attributes.visibility_timeout);
    let heartbeat = config
        .heartbeat
        .unwrap_or_else(|| (visibility / 3).max(Duration::from_millis(200)));
    let from = if config.visibility_timeout.is_some() {
        "from --visibility-timeout-secs"
    } else {
        "the queue's"
    };
    check_heartbeat(heartbeat, visibility, from).map_err(|p| WorkerError::Config(vec![p]))?;
    if attributes.redrive_policy.is_none() {
        warn!(queue_url = %config.queue_url, "The queue has no redrive policy: a message that keeps failing is retried until it expires. Configure a dead-letter queue on it.");
    }
    if visibility < handler_timeout {
        warn!(
            visibility_secs = visibility.as_secs(),
            handler_timeout_secs = handler_timeout.as_secs(),
            "The visibility timeout is shorter than the handler timeout: the heartbeat keeps running messages invisible, but a worker that dies mid-message lets them return early."
        );
    }
    info!(
        visibility_secs = visibility.as_secs_f64(),
        heartbeat_secs = heartbeat.as_secs_f64(),
        fifo = attributes.fifo,
        "Queue checked."
    );
    Ok((visibility, heartbeat))
}

/// One poller: while there is room, long-poll for as many messages as fit,
/// and hand each receive to the engine.
async fn poll<H: Handler, Q: WorkerQueue>(shared: Arc<Shared<H, Q>>) {
    let mut backoff = BACKOFF_BASE;
    let mut attempt_id: Option<String> = None;
    loop {
        if shared.shutdown.is_cancelled() {
            return;
        }
        if shared.slots.available_permits() == 0 {
            shared.health.set_full(true);
        }
        // Biased to the shutdown: at SIGTERM released messages free slots,
        // and a poller must not take them for a receive.
        let filling = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => return,
            f = shared.filling.lock() => f,
        };
        let mut permit = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => return,
            p = Arc::clone(&shared.slots).acquire_owned() => p.expect("the slots semaphore is never closed"),
        };
        shared.health.set_full(false);
        let fill_until = tokio::time::Instant::now() + FILL_WINDOW;
        while permit.num_permits() < RECEIVE_MAX {
            if let Ok(more) = Arc::clone(&shared.slots).try_acquire_owned() {
                permit.merge(more);
                continue;
            }
            tokio::select! {
                biased;
                () = shared.shutdown.cancelled() => return,
                more = Arc::clone(&shared.slots).acquire_owned() => permit.merge(more.expect("the slots semaphore is never closed")),
                () = tokio::time::sleep_until(fill_until) => break,
            }
        }
        drop(filling);
        // No receive starts once shutdown began (only those already open finish).
        if shared.shutdown.is_cancelled() {
            return;
        }
        let Some(permit) = sink_gate(&shared, permit).await else {
            continue;
        };
        if shared.fifo && attempt_id.is_none() {
            attempt_id = Some(format!(
                "{:016x}{:016x}",
                fastrand::u64(..),
                fastrand::u64(..)
            ));
        }
        let request = ReceiveRequest {
            max_messages: u8::try_from(permit.num_permits()).expect("at most 10"),
            wait_secs: WAIT_SECS,
            visibility_timeout_secs: shared
                .config
                .visibility_timeout
                .map(|v| u32::try_from(v.as_secs()).unwrap_or(u32::MAX)),
            attempt_id: attempt_id.clone(),
        };
        // Not abandoned at shutdown: SQS still hands an abandoned long poll
        // messages, stranded for a visibility timeout. It ends within
        // WAIT_SECS; what it brings is dispatched with the stop set, so the
        // engine releases it at once. The drain drops it at the grace.
        let result = shared
            .queue
            .receive(&shared.config.queue_url, request)
            .await;
        shared.metrics.sqs_call("ReceiveMessage", result.is_ok());
        shared.health.progress();
        match result {
            Ok(output) => {
                shared.errors.ok();
                attempt_id = None;
                backoff = BACKOFF_BASE;
                if !shared.shutdown.is_cancelled() {
                    shared.health.set_ready(true);
                }
                for problem in output.malformed {
                    error!(problem = %problem, "Received a message sqsrt cannot settle; SQS will deliver it again after its visibility timeout.");
                }
                if output.messages.is_empty() {
                    continue;
                }
                dispatch(&shared, output.messages, permit);
            }
            Err(error) => {
                shared.errors.failed(&error);
                drop(permit);
                tokio::select! {
                    () = tokio::time::sleep(jitter(backoff)) => {}
                    () = shared.shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// While the handler's sink is down, nothing new is received: the messages
/// in hand wait for it, one of them probing it. `None`: the poller waited
/// (the slots went back) and starts over. With no message in hand to
/// probe, the receive goes on for one message.
async fn sink_gate<H: Handler, Q: WorkerQueue>(
    shared: &Shared<H, Q>,
    permit: OwnedSemaphorePermit,
) -> Option<OwnedSemaphorePermit> {
    let Some(breaker) = shared.engine.handler().breaker() else {
        return Some(permit);
    };
    if !breaker.is_open() {
        return Some(permit);
    }
    if !breaker.allows_receive() {
        drop(permit);
        shared.health.set_paused(true);
        tokio::select! {
            () = breaker.receive_allowed() => {}
            () = shared.shutdown.cancelled() => {}
        }
        shared.health.set_paused(false);
        return None;
    }
    let mut permit = permit;
    if permit.num_permits() > 1 {
        // The rest of the slots go back.
        return permit.split(1);
    }
    Some(permit)
}

/// Runs one receive through the engine; each outcome goes to the settler as
/// soon as it is decided.
fn dispatch<H: Handler, Q: WorkerQueue>(
    shared: &Arc<Shared<H, Q>>,
    received: Vec<Received>,
    mut permit: tokio::sync::OwnedSemaphorePermit,
) {
    shared.metrics.received(received.len());
    let keep_copies = shared.config.dlq_url.is_some();
    let mut messages: Vec<Message> = Vec::with_capacity(received.len());
    let mut held: Vec<Option<Held>> = Vec::with_capacity(received.len());
    for r in received {
        let key = shared.next_key.fetch_add(1, Ordering::Relaxed);
        shared.in_flight.insert(key, r.receipt_handle.clone());
        let slot = permit
            .split(1)
            .expect("a receive returns at most as many messages as it asked for");
        held.push(Some(Held {
            key,
            message_id: r.message.id().to_owned(),
            receipt_handle: r.receipt_handle,
            receive_count: r.message.receive_count(),
            in_group: shared.fifo && r.message.group_id().is_some(),
            copy: keep_copies.then(|| r.message.clone()),
            slot,
        }));
        messages.push(r.message);
    }
    drop(permit); // what the receive did not fill
    let shared = Arc::clone(shared);
    let tracker = shared.tracker.clone();
    tracker.spawn(async move {
        let options = BatchOptions {
            stop: shared.shutdown.clone(),
            abandon: shared.abandon.clone(),
            fifo: shared.fifo,
            // Over the per-tenant cap, held (under the heartbeat) up to a
            // handler timeout, then back to the queue for as long: they
            // hold receive slots other tenants need, and a longer hold only
            // delays them, while a shorter one burns receive counts.
            group_wait: Some(shared.engine.config().timeout()),
            // Under the heartbeat, messages wait out a sink's outage in hand.
            hold_on_sink_down: true,
            ..BatchOptions::default()
        };
        shared
            .engine
            .run_batch_with(messages, &options, |report| {
                let held = held[report.index]
                    .take()
                    .expect("each message is reported once");
                // Fails only after the settler is gone, which waits for this task.
                let _ = shared.settle.send(Settlement {
                    held,
                    outcome: report.outcome,
                    elapsed: report.elapsed,
                });
            })
            .await;
    });
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + fastrand::f64() / 2.0)
}
