//! Every setting of both modes, and the one place they are validated: the
//! flags path (`--some-name`, `SQSRT_SOME_NAME`) and programs that set them
//! in code through [`Runner`](crate::Runner) end here alike.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

use sqsrt_core::{EngineConfig, MAX_VISIBILITY, RetryPolicy};
use sqsrt_k8s_worker::WorkerConfig;
use sqsrt_lambda::LambdaConfig;

/// A problem with the configuration, naming the setting's flag and variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigProblem(pub String);

/// A setting's names: its flag and its environment variable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Name {
    pub(crate) flag: &'static str,
    pub(crate) var: &'static str,
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(set by {} or {})", self.flag, self.var)
    }
}

macro_rules! names {
    ($($konst:ident = $flag:literal, $var:literal;)*) => {
        $(pub(crate) const $konst: Name = Name { flag: $flag, var: $var };)*
    };
}

names! {
    HANDLER_TIMEOUT = "--handler-timeout-secs", "SQSRT_HANDLER_TIMEOUT_SECS";
    MAX_IN_FLIGHT = "--max-in-flight", "SQSRT_MAX_IN_FLIGHT";
    MAX_IN_FLIGHT_PER_GROUP = "--max-in-flight-per-group", "SQSRT_MAX_IN_FLIGHT_PER_GROUP";
    RETRY_BASE = "--retry-base-secs", "SQSRT_RETRY_BASE_SECS";
    RETRY_MAX = "--retry-max-secs", "SQSRT_RETRY_MAX_SECS";
    THREADS = "--threads", "SQSRT_THREADS";
    DEADLINE_MARGIN = "--deadline-margin-ms", "SQSRT_DEADLINE_MARGIN_MS";
    QUEUE_URL = "--queue-url", "SQSRT_QUEUE_URL";
    VISIBILITY = "--visibility-timeout-secs", "SQSRT_VISIBILITY_TIMEOUT_SECS";
    HEARTBEAT = "--heartbeat-secs", "SQSRT_HEARTBEAT_SECS";
    SHUTDOWN_GRACE = "--shutdown-grace-secs", "SQSRT_SHUTDOWN_GRACE_SECS";
    PREFETCH = "--prefetch", "SQSRT_PREFETCH";
    DLQ_URL = "--dlq-url", "SQSRT_DLQ_URL";
    EMF_NAMESPACE = "--emf-namespace", "SQSRT_EMF_NAMESPACE";
}

/// The most runtime threads asked for.
pub(crate) const MAX_THREADS: usize = 1_024;
/// The most messages received ahead of free handler slots.
pub(crate) const MAX_PREFETCH: usize = 1_000;
/// The longest shutdown grace.
pub(crate) const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(3_600);
/// The longest Lambda deadline margin (Lambda's own 15-minute limit is above).
pub(crate) const MAX_DEADLINE_MARGIN: Duration = Duration::from_secs(600);

/// What every mode can be told; see README "Configuration" for meanings and
/// defaults. Set through [`Runner`](crate::Runner)'s methods or flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) handler_timeout: Duration,
    pub(crate) max_in_flight: usize,
    /// Per tenant (group on a standard queue); 0: no cap.
    pub(crate) max_in_flight_per_group: usize,
    pub(crate) dlq_url: Option<String>,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) threads: Option<usize>,
    pub(crate) log_level: Option<String>,
    pub(crate) deadline_margin: Duration,
    pub(crate) fail_invocation_when_all_fail: bool,
    pub(crate) emf_namespace: Option<String>,
    pub(crate) queue_url: Option<String>,
    pub(crate) visibility_timeout: Option<Duration>,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) prefetch: usize,
    pub(crate) metrics_addr: SocketAddr,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            handler_timeout: Duration::from_secs(20),
            max_in_flight: 32,
            max_in_flight_per_group: 0,
            dlq_url: None,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(900),
            threads: None,
            log_level: None,
            deadline_margin: Duration::from_millis(500),
            fail_invocation_when_all_fail: false,
            emf_namespace: None,
            queue_url: None,
            visibility_timeout: None,
            heartbeat: None,
            shutdown_grace: Duration::from_secs(25),
            prefetch: 10,
            metrics_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 9090)),
        }
    }
}

/// Collects problems, each naming its setting.
#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn push(&mut self, text: String) {
        self.0.push(ConfigProblem(text));
    }

    fn secs(&mut self, name: Name, value: Duration, min: Duration, max: Duration) {
        if value < min || value > max {
            self.push(format!(
                "must be from {} to {} seconds, not {} {name}",
                min.as_secs(),
                max.as_secs(),
                secs_text(value)
            ));
        }
    }

    fn count(&mut self, name: Name, value: usize, min: usize, max: usize) {
        if !(min..=max).contains(&value) {
            self.push(format!("must be from {min} to {max}, not {value} {name}"));
        }
    }

    fn url(&mut self, name: Name, value: Option<&str>) {
        if value.is_some_and(|v| v.trim().is_empty()) {
            self.push(format!("must not be empty {name}"));
        }
    }

    /// CloudWatch's namespace rules: 1 to 255 characters from letters,
    /// digits and `. - _ / # :`, not starting with `AWS/` (reserved).
    fn emf_namespace(&mut self, value: &str) {
        let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c);
        if value.is_empty()
            || value.len() > 255
            || !value.chars().all(allowed)
            || value.starts_with("AWS/")
        {
            self.push(format!(
                "must be 1 to 255 characters of letters, digits and . - _ / # : and not start with AWS/, not {value:?} {EMF_NAMESPACE}"
            ));
        }
    }

    fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<ConfigProblem>> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self.0)
        }
    }
}

fn secs_text(value: Duration) -> String {
    if value.subsec_nanos() == 0 {
        value.as_secs().to_string()
    } else {
        format!("{:.3}", value.as_secs_f64())
    }
}

impl Settings {
    /// The engine's settings (unchecked: call after a `validate_*`).
    pub(crate) fn engine(&self) -> EngineConfig {
        EngineConfig::default()
            .max_in_flight(NonZeroUsize::new(self.max_in_flight).unwrap_or(NonZeroUsize::MIN))
            .max_in_flight_per_group(NonZeroUsize::new(self.max_in_flight_per_group))
            .handler_timeout(self.handler_timeout)
    }

    /// Problems of the settings both modes use; the retry policy when none.
    fn common(&self, problems: &mut Problems) -> Option<RetryPolicy> {
        problems.secs(
            HANDLER_TIMEOUT,
            self.handler_timeout,
            Duration::from_secs(1),
            MAX_VISIBILITY,
        );
        problems.count(MAX_IN_FLIGHT, self.max_in_flight, 1, usize::MAX);
        // 0 is no cap; a cap at --max-in-flight or above would cap nothing.
        problems.count(
            MAX_IN_FLIGHT_PER_GROUP,
            self.max_in_flight_per_group,
            0,
            self.max_in_flight.saturating_sub(1),
        );
        problems.secs(
            RETRY_BASE,
            self.retry_base,
            Duration::from_secs(1),
            MAX_VISIBILITY,
        );
        problems.secs(
            RETRY_MAX,
            self.retry_max,
            Duration::from_secs(1),
            MAX_VISIBILITY,
        );
        if let Some(threads) = self.threads {
            problems.count(THREADS, threads, 1, MAX_THREADS);
        }
        problems.url(DLQ_URL, self.dlq_url.as_deref());
        match RetryPolicy::new(self.retry_base, self.retry_max) {
            Ok(policy) => Some(policy),
            Err(e) => {
                problems.push(format!("{e} {RETRY_BASE} {RETRY_MAX}"));
                None
            }
        }
    }

    /// Checks the settings of Lambda mode.
    ///
    /// # Errors
    ///
    /// Every problem found, each naming its flag and variable.
    pub(crate) fn validate_lambda(&self) -> Result<LambdaConfig, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let retry = self.common(&mut problems);
        problems.secs(
            DEADLINE_MARGIN,
            self.deadline_margin,
            Duration::ZERO,
            MAX_DEADLINE_MARGIN,
        );
        if let Some(namespace) = &self.emf_namespace {
            problems.emf_namespace(namespace);
        }
        problems.into_result(|| {
            LambdaConfig::default()
                .deadline_margin(self.deadline_margin)
                .fail_invocation_when_all_fail(self.fail_invocation_when_all_fail)
                .dlq_url(self.dlq_url.clone())
                .retry(retry.unwrap_or_default())
        })
    }

    /// Checks the settings of worker mode.
    ///
    /// # Errors
    ///
    /// Every problem found, each naming its flag and variable.
    pub(crate) fn validate_worker(&self) -> Result<WorkerConfig, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let retry = self.common(&mut problems);
        match self.queue_url.as_deref() {
            None => problems.push(format!(
                "the source queue is required in worker mode {QUEUE_URL}"
            )),
            url => problems.url(QUEUE_URL, url),
        }
        if let Some(visibility) = self.visibility_timeout {
            problems.secs(
                VISIBILITY,
                visibility,
                Duration::from_secs(1),
                MAX_VISIBILITY,
            );
        }
        if let Some(heartbeat) = self.heartbeat {
            problems.secs(HEARTBEAT, heartbeat, Duration::from_secs(1), MAX_VISIBILITY);
        }
        problems.secs(
            SHUTDOWN_GRACE,
            self.shutdown_grace,
            Duration::ZERO,
            MAX_SHUTDOWN_GRACE,
        );
        problems.count(PREFETCH, self.prefetch, 0, MAX_PREFETCH);
        if self.shutdown_grace < self.handler_timeout {
            problems.push(format!(
                "shutdown grace ({}s) must be at least the handler timeout ({}s) {SHUTDOWN_GRACE} {HANDLER_TIMEOUT}",
                secs_text(self.shutdown_grace),
                secs_text(self.handler_timeout),
            ));
        }
        if let (Some(heartbeat), Some(visibility)) = (self.heartbeat, self.visibility_timeout)
            && let Err(problem) = sqsrt_k8s_worker::check_heartbeat(heartbeat, visibility, "given")
        {
            problems.push(problem);
        }
        problems.into_result(|| WorkerConfig {
            queue_url: self.queue_url.clone().unwrap_or_default(),
            dlq_url: self.dlq_url.clone(),
            prefetch: self.prefetch,
            retry: retry.unwrap_or_default(),
            visibility_timeout: self.visibility_timeout,
            heartbeat: self.heartbeat,
            shutdown_grace: self.shutdown_grace,
            metrics_addr: self.metrics_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_cap_is_off_or_below_the_in_flight_limit() {
        let with = |cap| Settings {
            max_in_flight_per_group: cap,
            ..Settings::default()
        };
        assert!(with(0).validate_lambda().is_ok());
        assert!(with(31).validate_lambda().is_ok());
        let problems = with(32).validate_lambda().unwrap_err();
        assert!(
            problems[0].0.contains("must be from 0 to 31, not 32")
                && problems[0].0.contains("--max-in-flight-per-group")
                && problems[0].0.contains("SQSRT_MAX_IN_FLIGHT_PER_GROUP"),
            "{problems:?}"
        );
        assert_eq!(with(4).engine().group_limit(), Some(4));
        assert_eq!(with(0).engine().group_limit(), None);
    }

    #[test]
    fn defaults_match_the_design_and_validate() {
        let s = Settings::default();
        assert_eq!(s.max_in_flight, 32);
        assert_eq!(s.handler_timeout, Duration::from_secs(20));
        assert_eq!(
            (s.retry_base, s.retry_max),
            (Duration::from_secs(2), Duration::from_secs(900))
        );
        assert_eq!(s.deadline_margin, Duration::from_millis(500));
        assert_eq!(s.shutdown_grace, Duration::from_secs(25));
        assert_eq!(s.metrics_addr, "0.0.0.0:9090".parse().unwrap());
        assert!(s.validate_lambda().is_ok());
        let worker = Settings {
            queue_url: Some("http://q".into()),
            ..Settings::default()
        };
        assert_eq!(worker.validate_worker().unwrap().queue_url, "http://q");
    }

    #[test]
    fn emf_namespaces_follow_cloudwatch_rules() {
        let with = |ns: &str| Settings {
            emf_namespace: Some(ns.into()),
            ..Settings::default()
        };
        for good in ["sqsrt", "orders/prod", "Team.App-1_x#y:z"] {
            assert!(with(good).validate_lambda().is_ok(), "{good}");
        }
        for bad in ["", "AWS/Lambda", "no$dollars", &"x".repeat(256)] {
            let problems = with(bad).validate_lambda().unwrap_err();
            assert!(
                problems[0].0.contains("SQSRT_EMF_NAMESPACE"),
                "{bad}: {problems:?}"
            );
        }
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let s = Settings {
            handler_timeout: Duration::from_secs(50_000),
            max_in_flight: 0,
            retry_base: Duration::from_secs(100),
            retry_max: Duration::from_secs(10),
            visibility_timeout: Some(Duration::from_secs(10)),
            heartbeat: Some(Duration::from_secs(10)),
            shutdown_grace: Duration::from_secs(5),
            prefetch: 5_000,
            dlq_url: Some(" ".into()),
            ..Settings::default()
        };
        let problems: Vec<String> = s
            .validate_worker()
            .unwrap_err()
            .into_iter()
            .map(|p| p.0)
            .collect();
        let all = problems.join("\n");
        for name in [
            "SQSRT_HANDLER_TIMEOUT_SECS",
            "SQSRT_MAX_IN_FLIGHT",
            "SQSRT_RETRY_MAX_SECS",
            "SQSRT_QUEUE_URL",
            "SQSRT_HEARTBEAT_SECS",
            "SQSRT_SHUTDOWN_GRACE_SECS",
            "SQSRT_PREFETCH",
            "SQSRT_DLQ_URL",
        ] {
            assert!(all.contains(name), "{name} missing from {all}");
        }
        assert!(
            all.contains("must be from 1 to 43200 seconds, not 50000"),
            "{all}"
        );
        assert_eq!(problems.len(), 8, "{all}");
        let lambda: Vec<String> = s
            .validate_lambda()
            .unwrap_err()
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(
            lambda.len(),
            4,
            "worker-only settings are not checked in Lambda mode: {lambda:#?}"
        );
    }
}
