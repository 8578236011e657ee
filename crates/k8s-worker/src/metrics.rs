//! Prometheus metrics of the worker. Names are constants here, in one place;
//! more may be added, these may not be renamed.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sqsrt_core::{HandlerMetric, MetricKind, MetricValue, OutcomeKind};

/// Messages received from SQS.
pub(crate) const MESSAGES_RECEIVED_TOTAL: &str = "sqsrt_messages_received_total";
/// Messages settled, by `outcome` (`success`, `retry`, `permanent`, `skipped`).
pub(crate) const MESSAGES_PROCESSED_TOTAL: &str = "sqsrt_messages_processed_total";
/// Messages received and not yet settled.
pub(crate) const MESSAGES_IN_FLIGHT: &str = "sqsrt_messages_in_flight";
/// Handler run time, seconds.
pub(crate) const HANDLER_DURATION_SECONDS: &str = "sqsrt_handler_duration_seconds";
/// SQS calls, by `operation`.
pub(crate) const SQS_REQUESTS_TOTAL: &str = "sqsrt_sqs_requests_total";
/// Failed SQS calls, by `operation`.
pub(crate) const SQS_ERRORS_TOTAL: &str = "sqsrt_sqs_errors_total";
/// Messages stored in the dead-letter queue by sqsrt.
pub(crate) const DLQ_SENDS_TOTAL: &str = "sqsrt_dlq_sends_total";
/// 1 when the last SQS call succeeded, else 0.
pub(crate) const SQS_UP: &str = "sqsrt_sqs_up";

/// The SQS operations the worker calls (the `operation` label values).
pub(crate) const OPERATIONS: [&str; 5] = [
    "ReceiveMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibilityBatch",
    "SendMessage",
    "GetQueueAttributes",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

/// The worker's metrics and their registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    received: Counter,
    processed: Family<OutcomeLabel, Counter>,
    in_flight: Gauge,
    handler_duration: Histogram,
    sqs_requests: Family<OperationLabel, Counter>,
    sqs_errors: Family<OperationLabel, Counter>,
    dlq_sends: Counter,
    sqs_up: Gauge,
}

/// prometheus-client appends `_total` to counters itself.
fn base(name: &'static str) -> &'static str {
    name.strip_suffix("_total").unwrap_or(name)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let received = Counter::default();
        let processed = Family::<OutcomeLabel, Counter>::default();
        let in_flight = Gauge::default();
        // 5 ms to ~80 s.
        let handler_duration = Histogram::new(exponential_buckets(0.005, 2.0, 15));
        let sqs_requests = Family::<OperationLabel, Counter>::default();
        let sqs_errors = Family::<OperationLabel, Counter>::default();
        let dlq_sends = Counter::default();
        let sqs_up = Gauge::default();
        registry.register(
            base(MESSAGES_RECEIVED_TOTAL),
            "Messages received from SQS",
            received.clone(),
        );
        registry.register(
            base(MESSAGES_PROCESSED_TOTAL),
            "Messages settled, by outcome",
            processed.clone(),
        );
        registry.register(
            MESSAGES_IN_FLIGHT,
            "Messages received and not yet settled",
            in_flight.clone(),
        );
        registry.register(
            base(HANDLER_DURATION_SECONDS),
            "Handler run time in seconds",
            handler_duration.clone(),
        );
        registry.register(
            base(SQS_REQUESTS_TOTAL),
            "SQS calls, by operation",
            sqs_requests.clone(),
        );
        registry.register(
            base(SQS_ERRORS_TOTAL),
            "Failed SQS calls, by operation",
            sqs_errors.clone(),
        );
        registry.register(
            base(DLQ_SENDS_TOTAL),
            "Messages stored in the dead-letter queue by sqsrt",
            dlq_sends.clone(),
        );
        registry.register(SQS_UP, "1 when the last SQS call succeeded", sqs_up.clone());
        // Every series exists from the start at 0, so rates and alerts see
        // them before the first event instead of "no data".
        for outcome in [
            OutcomeKind::Success,
            OutcomeKind::Retry,
            OutcomeKind::Permanent,
            OutcomeKind::Skipped,
        ] {
            drop(processed.get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            }));
        }
        for operation in OPERATIONS {
            drop(sqs_requests.get_or_create(&OperationLabel { operation }));
            drop(sqs_errors.get_or_create(&OperationLabel { operation }));
        }
        Self {
            registry,
            received,
            processed,
            in_flight,
            handler_duration,
            sqs_requests,
            sqs_errors,
            dlq_sends,
            sqs_up,
        }
    }
}

impl Metrics {
    /// `n` messages received.
    pub(crate) fn received(&self, n: usize) {
        self.received.inc_by(n as u64);
        self.in_flight.inc_by(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// One message settled with `outcome`, its handler having run `elapsed`.
    pub(crate) fn processed(&self, outcome: OutcomeKind, elapsed: Option<std::time::Duration>) {
        self.processed
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
        self.in_flight.dec();
        if let Some(elapsed) = elapsed {
            self.handler_duration.observe(elapsed.as_secs_f64());
        }
    }

    /// One SQS call of `operation` ended, successfully or not.
    pub(crate) fn sqs_call(&self, operation: &'static str, ok: bool) {
        let label = OperationLabel { operation };
        self.sqs_requests.get_or_create(&label).inc();
        if ok {
            self.sqs_up.set(1);
        } else {
            self.sqs_errors.get_or_create(&label).inc();
            self.sqs_up.set(0);
        }
    }

    /// One message stored in the DLQ.
    pub(crate) fn dlq_sent(&self) {
        self.dlq_sends.inc();
    }

    /// Exports `read`'s figures at each scrape too (the handler's own:
    /// [`sqsrt_core::Handler::metrics`]).
    pub(crate) fn add_handler_metrics(
        &mut self,
        read: impl Fn() -> Vec<HandlerMetric> + Send + Sync + 'static,
    ) {
        self.registry
            .register_collector(Box::new(HandlerMetrics(Box::new(read))));
    }

    /// The Prometheus text exposition (OpenMetrics).
    ///
    /// # Panics
    ///
    /// Never: writing to a `String` cannot fail.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The handler's figures, read and encoded at each scrape.
struct HandlerMetrics(Box<dyn Fn() -> Vec<HandlerMetric> + Send + Sync>);

impl std::fmt::Debug for HandlerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandlerMetrics")
    }
}

impl Collector for HandlerMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let metrics = (self.0)();
        // Figures of one name, one after the other, form one family.
        let mut rest = metrics.as_slice();
        while let Some(first) = rest.first() {
            let len = rest.iter().take_while(|m| m.name == first.name).count();
            let (family, next) = rest.split_at(len);
            rest = next;
            let metric_type = match first.kind() {
                MetricKind::Gauge => MetricType::Gauge,
                MetricKind::Histogram => MetricType::Histogram,
                // Counters, and a kind added later until it has an encoding of its own.
                _ => MetricType::Counter,
            };
            let mut descriptor =
                encoder.encode_descriptor(first.name, first.help, None, metric_type)?;
            for metric in family {
                match metric.label {
                    Some(label) => {
                        encode_value(&mut descriptor.encode_family(&[label])?, &metric.value)?;
                    }
                    None => encode_value(&mut descriptor, &metric.value)?,
                }
            }
        }
        Ok(())
    }
}

fn encode_value(encoder: &mut MetricEncoder<'_>, value: &MetricValue) -> std::fmt::Result {
    match value {
        MetricValue::Gauge(value) => encoder.encode_gauge(value),
        MetricValue::Histogram {
            sum,
            count,
            buckets,
        } => encoder.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None),
        MetricValue::Counter(value) => encoder.encode_counter::<NoLabelSet, _, u64>(value, None),
        // A kind added later: nothing until it has an encoding of its own.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handlers_figures_are_read_at_each_scrape() {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(3));
        let mut m = Metrics::default();
        let read = std::sync::Arc::clone(&seen);
        m.add_handler_metrics(move || {
            vec![
                HandlerMetric::counter(
                    "sqsrt_http_attributes_skipped",
                    "attributes left out",
                    read.load(std::sync::atomic::Ordering::Relaxed),
                ),
                HandlerMetric::gauge("sqsrt_sink_up", "1 when the sink answers", 1),
                HandlerMetric::counter("sqsrt_sink_errors", "errors", 2)
                    .with_label("kind", "timeout"),
                HandlerMetric::counter("sqsrt_sink_errors", "errors", 0)
                    .with_label("kind", "other"),
                HandlerMetric::histogram(
                    "sqsrt_sink_duration_seconds",
                    "attempts",
                    0.25,
                    3,
                    vec![(0.1, 2), (1.0, 0), (f64::INFINITY, 1)],
                ),
            ]
        });
        let text = m.encode();
        assert!(
            text.contains("# TYPE sqsrt_http_attributes_skipped counter"),
            "{text}"
        );
        assert!(
            text.contains("sqsrt_http_attributes_skipped_total 3\n"),
            "{text}"
        );
        assert!(text.contains("sqsrt_sink_up 1\n"), "{text}");
        assert!(
            text.contains(
                "# HELP sqsrt_sink_errors errors\n# TYPE sqsrt_sink_errors counter\nsqsrt_sink_errors_total{kind=\"timeout\"} 2\nsqsrt_sink_errors_total{kind=\"other\"} 0\n"
            ),
            "one family of two series: {text}"
        );
        for line in [
            "sqsrt_sink_duration_seconds_sum 0.25\n",
            "sqsrt_sink_duration_seconds_count 3\n",
            "sqsrt_sink_duration_seconds_bucket{le=\"0.1\"} 2\n",
            "sqsrt_sink_duration_seconds_bucket{le=\"1.0\"} 2\n",
            "sqsrt_sink_duration_seconds_bucket{le=\"+Inf\"} 3\n",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        seen.store(5, std::sync::atomic::Ordering::Relaxed);
        assert!(
            m.encode()
                .contains("sqsrt_http_attributes_skipped_total 5\n")
        );
    }

    #[test]
    fn every_series_exists_before_any_event() {
        let text = Metrics::default().encode();
        assert!(
            text.contains(r#"sqsrt_messages_processed_total{outcome="skipped"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sqsrt_sqs_errors_total{operation="SendMessage"} 0"#),
            "{text}"
        );
    }

    #[test]
    fn exposes_every_design_name() {
        let m = Metrics::default();
        m.received(2);
        m.processed(
            OutcomeKind::Success,
            Some(std::time::Duration::from_millis(20)),
        );
        m.sqs_call("ReceiveMessage", true);
        m.sqs_call("ReceiveMessage", false);
        m.dlq_sent();
        let text = m.encode();
        for name in [
            MESSAGES_RECEIVED_TOTAL,
            MESSAGES_PROCESSED_TOTAL,
            MESSAGES_IN_FLIGHT,
            HANDLER_DURATION_SECONDS,
            SQS_REQUESTS_TOTAL,
            SQS_ERRORS_TOTAL,
            DLQ_SENDS_TOTAL,
            SQS_UP,
        ] {
            assert!(
                text.contains(&format!("\n{name}")),
                "{name} missing from\n{text}"
            );
        }
        assert!(
            text.contains(r#"sqsrt_messages_processed_total{outcome="success"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sqsrt_sqs_errors_total{operation="ReceiveMessage"} 1"#),
            "{text}"
        );
        assert!(text.contains("sqsrt_messages_in_flight 1"), "{text}");
        assert!(text.contains("sqsrt_sqs_up 0"), "{text}");
    }
}
