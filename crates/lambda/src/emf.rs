//! Lambda mode's metrics as CloudWatch Embedded Metric Format (EMF) lines,
//! written to stdout (where Lambda's log capture turns them into metrics),
//! when a namespace is configured (`--emf-namespace`).
//!
//! The names follow the worker's Prometheus metrics. EMF takes one value per
//! dimension per document, so an invocation writes one document per outcome
//! that occurred (`sqsrt_messages_processed` with the `Outcome` dimension:
//! `success`, `retry`, `permanent`, `skipped`); the first also carries the
//! invocation's own metrics under `FunctionName` alone: its duration, the
//! dead-letter copies stored, and the handlers' durations. An all-success
//! invocation writes one line.
//!
//! Written by hand rather than with an EMF crate: four short documents of a
//! fixed shape, and no extra dependency in the Lambda binary.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqsrt_core::OutcomeKind;

/// EMF takes at most this many values for one metric in one document.
const MAX_VALUES: usize = 100;

/// Where and under which name the metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emf {
    namespace: String,
    function_name: String,
}

/// What one invocation did, for its EMF lines.
#[derive(Debug, Clone, Default)]
pub struct InvocationMetrics {
    /// Records by final outcome: success, retry, permanent, skipped.
    pub outcomes: [usize; 4],
    /// Dead-letter copies stored.
    pub dlq_sends: usize,
    /// How long each handler that ran took.
    pub handler_durations: Vec<Duration>,
    /// From the event's arrival to the response.
    pub invocation_duration: Duration,
}

impl InvocationMetrics {
    /// Counts one record's final outcome.
    pub fn count(&mut self, kind: OutcomeKind) {
        self.outcomes[kind_index(kind)] += 1;
    }
}

const KINDS: [OutcomeKind; 4] = [
    OutcomeKind::Success,
    OutcomeKind::Retry,
    OutcomeKind::Permanent,
    OutcomeKind::Skipped,
];

fn kind_index(kind: OutcomeKind) -> usize {
    match kind {
        OutcomeKind::Success => 0,
        OutcomeKind::Retry => 1,
        OutcomeKind::Permanent => 2,
        OutcomeKind::Skipped => 3,
    }
}

impl Emf {
    /// Metrics in `namespace`, with `function_name` as the `FunctionName`
    /// dimension (Lambda's `AWS_LAMBDA_FUNCTION_NAME`).
    #[must_use]
    pub fn new(namespace: impl Into<String>, function_name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            function_name: function_name.into(),
        }
    }

    /// The EMF documents of one invocation, one JSON object per line.
    #[must_use]
    pub fn lines(&self, metrics: &InvocationMetrics, now: SystemTime) -> String {
        let timestamp = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let namespace = json_string(&self.namespace);
        let function = json_string(&self.function_name);
        let mut occurred: Vec<(OutcomeKind, usize)> = KINDS
            .into_iter()
            .zip(metrics.outcomes)
            .filter(|(_, count)| *count > 0)
            .collect();
        if occurred.is_empty() {
            // An empty batch: one document, for the invocation's own metrics.
            occurred.push((OutcomeKind::Success, 0));
        }
        let mut out = String::new();
        let mut first = true;
        for (kind, count) in occurred {
            let _ = write!(
                out,
                r#"{{"_aws":{{"Timestamp":{timestamp},"CloudWatchMetrics":[{{"Namespace":{namespace},"Dimensions":[["FunctionName","Outcome"]],"Metrics":[{{"Name":"sqsrt_messages_processed","Unit":"Count"}}]}}"#
            );
            if first {
                let _ = write!(
                    out,
                    r#",{{"Namespace":{namespace},"Dimensions":[["FunctionName"]],"Metrics":[{{"Name":"sqsrt_invocation_duration_seconds","Unit":"Seconds"}},{{"Name":"sqsrt_dlq_sends","Unit":"Count"}},{{"Name":"sqsrt_handler_duration_seconds","Unit":"Seconds"}}]}}"#
                );
            }
            let _ = write!(
                out,
                r#"]}},"FunctionName":{function},"Outcome":"{}","sqsrt_messages_processed":{count}"#,
                kind.as_str()
            );
            if first {
                let _ = write!(
                    out,
                    r#","sqsrt_invocation_duration_seconds":{},"sqsrt_dlq_sends":{},"sqsrt_handler_duration_seconds":["#,
                    metrics.invocation_duration.as_secs_f64(),
                    metrics.dlq_sends
                );
                for (i, d) in sample(&metrics.handler_durations).iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    let _ = write!(out, "{sep}{}", d.as_secs_f64());
                }
                out.push(']');
                first = false;
            }
            out.push_str("}\n");
        }
        out
    }
}

/// At most [`MAX_VALUES`] durations: all of them, or that many evenly spaced
/// quantiles of the sorted durations (the distribution's shape, for
/// CloudWatch's percentiles, from a 10,000-record batch).
fn sample(durations: &[Duration]) -> Vec<Duration> {
    if durations.len() <= MAX_VALUES {
        return durations.to_vec();
    }
    let mut sorted = durations.to_vec();
    sorted.sort_unstable();
    (0..MAX_VALUES)
        .map(|i| sorted[i * (sorted.len() - 1) / (MAX_VALUES - 1)])
        .collect()
}

fn json_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// Checks a document against the EMF specification's rules: `_aws` with
    /// an integer `Timestamp` and `CloudWatchMetrics` directives, each with a
    /// `Namespace`, dimension sets of at most 30 keys that are root members
    /// with string values, and metrics whose names are root members holding a
    /// number or an array of at most 100 numbers; units from the allowed set.
    fn valid_emf(doc: &Value) -> Result<(), String> {
        let units = [
            "Seconds",
            "Microseconds",
            "Milliseconds",
            "Bytes",
            "Count",
            "None",
        ];
        let aws = doc["_aws"].as_object().ok_or("no _aws object")?;
        aws.get("Timestamp")
            .and_then(Value::as_u64)
            .ok_or("Timestamp is not an integer")?;
        let directives = aws["CloudWatchMetrics"]
            .as_array()
            .ok_or("CloudWatchMetrics is not an array")?;
        for directive in directives {
            let namespace = directive["Namespace"].as_str().ok_or("no Namespace")?;
            if namespace.is_empty() || namespace.len() > 255 {
                return Err("bad Namespace".into());
            }
            for set in directive["Dimensions"].as_array().ok_or("no Dimensions")? {
                let set = set.as_array().ok_or("a dimension set is not an array")?;
                if set.len() > 30 {
                    return Err("more than 30 dimensions".into());
                }
                for key in set {
                    let key = key.as_str().ok_or("a dimension key is not a string")?;
                    doc[key]
                        .as_str()
                        .ok_or(format!("dimension {key} has no string value"))?;
                }
            }
            for metric in directive["Metrics"].as_array().ok_or("no Metrics")? {
                let name = metric["Name"].as_str().ok_or("a metric has no Name")?;
                if let Some(unit) = metric.get("Unit")
                    && !units.contains(&unit.as_str().unwrap_or(""))
                {
                    return Err(format!("unit {unit} not allowed"));
                }
                match &doc[name] {
                    Value::Number(_) => {}
                    Value::Array(values)
                        if values.len() <= 100 && values.iter().all(Value::is_number) => {}
                    other => return Err(format!("metric {name} has value {other}")),
                }
            }
        }
        Ok(())
    }

    fn parse(lines: &str) -> Vec<Value> {
        lines
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect()
    }

    #[test]
    fn one_document_per_outcome_that_occurred_each_valid_emf() {
        let emf = Emf::new("sqsrt/orders", "orders-fn");
        let mut metrics = InvocationMetrics {
            dlq_sends: 1,
            handler_durations: vec![Duration::from_millis(12), Duration::from_millis(30)],
            invocation_duration: Duration::from_millis(45),
            ..InvocationMetrics::default()
        };
        for kind in [
            OutcomeKind::Success,
            OutcomeKind::Success,
            OutcomeKind::Permanent,
        ] {
            metrics.count(kind);
        }
        let docs = parse(&emf.lines(&metrics, UNIX_EPOCH + Duration::from_secs(1_795_000_000)));
        assert_eq!(docs.len(), 2, "success and permanent: {docs:?}");
        for doc in &docs {
            valid_emf(doc).unwrap();
            assert_eq!(doc["_aws"]["Timestamp"], 1_795_000_000_000_u64);
            assert_eq!(doc["FunctionName"], "orders-fn");
            assert_eq!(
                doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
                "sqsrt/orders"
            );
        }
        assert_eq!(
            (
                docs[0]["Outcome"].as_str(),
                docs[0]["sqsrt_messages_processed"].as_u64()
            ),
            (Some("success"), Some(2))
        );
        assert_eq!(
            (
                docs[1]["Outcome"].as_str(),
                docs[1]["sqsrt_messages_processed"].as_u64()
            ),
            (Some("permanent"), Some(1))
        );
        assert_eq!(docs[0]["sqsrt_dlq_sends"], 1);
        assert_eq!(docs[0]["sqsrt_invocation_duration_seconds"], 0.045);
        assert_eq!(
            docs[0]["sqsrt_handler_duration_seconds"],
            serde_json::json!([0.012, 0.03])
        );
        assert!(
            docs[1].get("sqsrt_dlq_sends").is_none(),
            "invocation metrics once"
        );
    }

    #[test]
    fn an_empty_invocation_still_reports_its_duration() {
        let emf = Emf::new("ns", "f");
        let metrics = InvocationMetrics {
            invocation_duration: Duration::from_millis(1),
            ..InvocationMetrics::default()
        };
        let docs = parse(&emf.lines(&metrics, SystemTime::now()));
        assert_eq!(docs.len(), 1);
        valid_emf(&docs[0]).unwrap();
        assert_eq!(docs[0]["sqsrt_messages_processed"], 0);
    }

    #[test]
    fn large_batches_send_a_hundred_quantiles_of_the_handler_durations() {
        let emf = Emf::new("ns", "f \"quoted\"");
        let mut metrics = InvocationMetrics::default();
        for ms in 0..10_000_u64 {
            metrics.count(OutcomeKind::Success);
            metrics
                .handler_durations
                .push(Duration::from_micros(ms * 10));
        }
        let docs = parse(&emf.lines(&metrics, SystemTime::now()));
        valid_emf(&docs[0]).unwrap();
        let values = docs[0]["sqsrt_handler_duration_seconds"]
            .as_array()
            .unwrap();
        assert_eq!(values.len(), 100);
        assert_eq!(values[0], 0.0);
        assert_eq!(values[99], 0.09999);
        assert_eq!(docs[0]["FunctionName"], "f \"quoted\"");
        assert_eq!(docs[0]["sqsrt_messages_processed"], 10_000);
    }
}
