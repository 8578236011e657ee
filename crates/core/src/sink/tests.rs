use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::handler::{Context, Handler, MetricValue};
use crate::message::Message;
use crate::{BatchOptions, Engine, EngineConfig, Outcome};

fn fault(fault: SinkFault) -> HandlerError {
    HandlerError::retry(format!("{fault:?}")).with_sink_fault(fault)
}

async fn admit(breaker: &SinkBreaker, hold: bool) -> Result<Ticket<'_>, HandlerError> {
    let never = CancellationToken::new();
    breaker.admit(hold, &never, &never).await
}

/// Opens `breaker` with an unreachable sink for message `m1`.
async fn open(breaker: &SinkBreaker) {
    let down = fault(SinkFault::Unreachable);
    let ticket = admit(breaker, true).await.expect("closed: admitted");
    assert!(breaker.record(ticket, "m1", Attempt::Failed(&down), Duration::ZERO));
}

/// Whether `future` is still waiting after everything runnable ran.
async fn waits<F: std::future::Future>(future: F) -> bool {
    tokio::select! {
        biased;
        _ = future => false,
        () = tokio::task::yield_now() => true,
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_sink_opens_it_at_once_and_one_probe_closes_it() {
    let breaker = SinkBreaker::new("http://app");
    let ticket = admit(&breaker, true).await.expect("closed: admitted");
    let down = fault(SinkFault::Unreachable);
    assert!(
        breaker.record(
            ticket,
            "m1",
            Attempt::Failed(&down),
            Duration::from_millis(2)
        ),
        "the message that found it down is held"
    );
    assert!(breaker.is_open());
    assert!(breaker.refuses_batch(), "no probe due yet");
    assert!(!breaker.allows_receive(), "no receive while open");
    assert!(
        waits(admit(&breaker, true)).await,
        "held until a probe is due"
    );
    let refused = admit(&breaker, false).await.expect_err("no hold: refused");
    assert!(refused.reason().contains("http://app is down"), "{refused}");

    tokio::time::advance(PROBE_EVERY).await;
    assert!(!breaker.refuses_batch(), "a probe is due");
    assert!(breaker.allows_receive(), "nothing in hand could probe");
    let probe = admit(&breaker, true).await.expect("the probe");
    assert!(probe.probe);
    assert!(!breaker.allows_receive(), "a probe is running");
    assert!(
        waits(admit(&breaker, false)).await,
        "one probe at a time; without hold, the others wait for its end"
    );
    assert!(!breaker.record(probe, "m1", Attempt::Succeeded, Duration::ZERO));
    assert!(!breaker.is_open(), "closed by the probe's success");
    assert!(breaker.allows_receive());
    assert!(!admit(&breaker, true).await.expect("closed").probe);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_keeps_it_open_for_another_period() {
    let breaker = SinkBreaker::new("sink");
    open(&breaker).await;
    tokio::time::advance(PROBE_EVERY).await;
    let probe = admit(&breaker, true).await.unwrap();
    let slow = fault(SinkFault::Timeout);
    assert!(
        breaker.record(probe, "m1", Attempt::Failed(&slow), Duration::ZERO),
        "any outage fault of a probe keeps it open"
    );
    assert!(breaker.is_open());
    assert!(breaker.refuses_batch(), "the next probe is a period away");
    tokio::time::advance(PROBE_EVERY).await;
    assert!(!breaker.refuses_batch());
}

#[tokio::test(start_paused = true)]
async fn server_errors_and_timeouts_open_it_only_for_different_messages_in_a_row() {
    let breaker = SinkBreaker::new("sink");
    let (five_hundred, slow) = (fault(SinkFault::ServerError), fault(SinkFault::Timeout));
    let fail = |id: &str| {
        let ticket = Ticket {
            breaker: &breaker,
            probe: false,
        };
        let error = if id < "c" { &slow } else { &five_hundred };
        breaker.record(ticket, id, Attempt::Failed(error), Duration::ZERO)
    };
    for _ in 0..20 {
        assert!(!fail("poison"), "one message answered 500 again and again");
    }
    for id in ["a", "b", "c"] {
        assert!(!fail(id));
    }
    assert!(!breaker.is_open(), "four different messages");
    let ok = Ticket {
        breaker: &breaker,
        probe: false,
    };
    breaker.record(ok, "d", Attempt::Succeeded, Duration::ZERO);
    for id in ["e", "f", "g", "h"] {
        assert!(!fail(id), "a success began the count again");
    }
    assert!(fail("i"), "the fifth different message in a row opens it");
    assert!(breaker.is_open());
}

#[tokio::test(start_paused = true)]
async fn rejections_and_requests_to_slow_down_are_answers() {
    for answer in [
        HandlerError::permanent("400 Bad Request"),
        fault(SinkFault::Throttled),
    ] {
        let breaker = SinkBreaker::new("sink");
        open(&breaker).await;
        tokio::time::advance(PROBE_EVERY).await;
        let probe = admit(&breaker, true).await.unwrap();
        assert!(!breaker.record(probe, "m2", Attempt::Failed(&answer), Duration::ZERO));
        assert!(!breaker.is_open(), "{answer} closes it");
    }
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_says_nothing_or_is_dropped_lets_the_next_one_go() {
    let breaker = SinkBreaker::new("sink");
    open(&breaker).await;
    tokio::time::advance(PROBE_EVERY).await;
    drop(admit(&breaker, true).await.unwrap()); // its task was aborted
    let probe = admit(&breaker, true).await.expect("the next probe at once");
    let plain = HandlerError::retry("handler bug");
    assert!(!breaker.record(probe, "m1", Attempt::Failed(&plain), Duration::ZERO));
    assert!(
        breaker.is_open(),
        "a failure that names no fault changes nothing"
    );
    assert!(breaker.refuses_batch(), "the next probe a period later");
}

#[tokio::test(start_paused = true)]
async fn stop_ends_a_held_wait_with_a_retry() {
    let breaker = SinkBreaker::new("sink");
    open(&breaker).await;
    let (stop, abandon) = (CancellationToken::new(), CancellationToken::new());
    let waiting = breaker.admit(true, &stop, &abandon);
    tokio::pin!(waiting);
    assert!(waits(&mut waiting).await);
    assert_eq!(breaker.lock().waiting, 1);
    stop.cancel();
    let error = waiting.await.expect_err("stopped");
    assert!(
        error.reason().contains("stopped while sink was down"),
        "{error}"
    );
    assert_eq!(breaker.lock().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn metrics_count_errors_by_kind_and_time_each_attempt() {
    let breaker = SinkBreaker::new("sink");
    for (error, took) in [
        (fault(SinkFault::ServerError), 3),
        (fault(SinkFault::Throttled), 30),
        (HandlerError::permanent("404"), 300),
    ] {
        let ticket = admit(&breaker, true).await.unwrap();
        breaker.record(
            ticket,
            "m",
            Attempt::Failed(&error),
            Duration::from_millis(took),
        );
    }
    let metrics = breaker.metrics();
    let errors = |kind: &str| {
        metrics
            .iter()
            .find(|m| m.label == Some(("kind", kind)))
            .map(|m| m.value.clone())
    };
    assert_eq!(errors("server_error"), Some(MetricValue::Counter(1)));
    assert_eq!(errors("throttled"), Some(MetricValue::Counter(1)));
    assert_eq!(errors("rejected"), Some(MetricValue::Counter(1)));
    assert_eq!(errors("unreachable"), Some(MetricValue::Counter(0)));
    assert_eq!(metrics[0].value, MetricValue::Gauge(1));
    let MetricValue::Histogram {
        sum,
        count,
        buckets,
    } = &metrics[1].value
    else {
        panic!("{:?}", metrics[1]);
    };
    assert_eq!(*count, 3);
    assert!((sum - 0.333).abs() < 1e-9, "{sum}");
    let at = |bound: f64| {
        buckets
            .iter()
            .find(|b| (b.0 - bound).abs() < 1e-12)
            .unwrap()
            .1
    };
    assert_eq!((at(0.005), at(0.05), at(0.5)), (1, 1, 1));
}

/// A sink that is down for its first `down_for` attempts.
struct Flaky {
    breaker: SinkBreaker,
    attempts: AtomicUsize,
    down_for: usize,
}

impl Handler for Flaky {
    async fn handle(&self, _message: Message, _ctx: Context) -> Result<(), HandlerError> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
        if attempt < self.down_for {
            Err(fault(SinkFault::Unreachable))
        } else {
            Ok(())
        }
    }

    fn breaker(&self) -> Option<&SinkBreaker> {
        Some(&self.breaker)
    }
}

fn flaky(down_for: usize) -> Engine<Flaky> {
    Engine::new(
        Flaky {
            breaker: SinkBreaker::new("sink"),
            attempts: AtomicUsize::new(0),
            down_for,
        },
        EngineConfig::default(),
    )
}

fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| Message::new(i.to_string(), "body"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn held_messages_wait_in_hand_and_succeed_once_the_sink_is_back() {
    // Down for the first message and two probes (the third gets through):
    // all ten succeed, none is reported as a retry, and only the probes
    // tried the sink meanwhile.
    let engine = flaky(3);
    let options = BatchOptions {
        hold_on_sink_down: true,
        ..BatchOptions::default()
    };
    let began = Instant::now();
    let outcomes = engine.run_batch(messages(10), &options).await;
    assert!(outcomes.iter().all(Outcome::is_success), "{outcomes:?}");
    assert_eq!(engine.handler().attempts.load(Ordering::SeqCst), 13);
    assert_eq!(
        began.elapsed(),
        PROBE_EVERY * 3,
        "the third probe got through"
    );
    assert!(!engine.handler().breaker.is_open());
}

#[tokio::test(start_paused = true)]
async fn without_hold_an_open_breaker_fails_the_rest_at_once() {
    let engine = flaky(usize::MAX);
    let began = Instant::now();
    let outcomes = engine
        .run_batch(messages(10), &BatchOptions::default())
        .await;
    assert_eq!(began.elapsed(), Duration::ZERO, "nothing waited");
    assert!(outcomes.iter().all(Outcome::is_retry), "{outcomes:?}");
    assert_eq!(
        engine.handler().attempts.load(Ordering::SeqCst),
        1,
        "only the first message tried the sink"
    );
    assert!(
        outcomes[9]
            .reason()
            .unwrap()
            .contains("not sent: sink is down"),
        "{:?}",
        outcomes[9]
    );
    assert!(engine.handler().breaker.refuses_batch());
}

#[tokio::test(start_paused = true)]
async fn stop_releases_held_messages_as_retries() {
    let engine = Arc::new(flaky(usize::MAX));
    let options = BatchOptions {
        hold_on_sink_down: true,
        ..BatchOptions::default()
    };
    let stop = options.stop.clone();
    let run = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move { engine.run_batch(messages(4), &options).await })
    };
    tokio::time::sleep(PROBE_EVERY * 3 + Duration::from_millis(1)).await;
    stop.cancel();
    let outcomes = run.await.unwrap();
    assert!(outcomes.iter().all(Outcome::is_retry), "{outcomes:?}");
    // The first attempt and one probe per period, no more.
    assert_eq!(engine.handler().attempts.load(Ordering::SeqCst), 4);
}
