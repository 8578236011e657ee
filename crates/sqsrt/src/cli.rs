//! Command line and environment: every flag `--some-name` falls back to
//! `SQSRT_SOME_NAME`, and every problem is named with both.

// Doc comments here are the CLI's help text, read in a terminal, not rustdoc.
#![allow(clippy::doc_markdown)]

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sqsrt_core::{EngineConfig, RetryPolicy};
use sqsrt_lambda::LambdaConfig;

/// Run one SQS message handler on AWS Lambda or as a long-poll worker.
///
/// Without a subcommand the mode is picked at start: Lambda when
/// `AWS_LAMBDA_RUNTIME_API` is set, worker otherwise. Every flag can also be
/// set with the environment variable shown beside it.
#[derive(Debug, Parser)]
#[command(name = "sqsrt", version)]
pub struct Cli {
    /// The mode.
    #[command(subcommand)]
    pub mode: Mode,
}

/// Where sqsrt runs.
#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Serve the Lambda Runtime API (SQS event source mapping, partial batch failures).
    Lambda(LambdaArgs),
    /// Long-poll SQS (the container KEDA scales on Kubernetes).
    Worker(WorkerArgs),
}

/// The built-in handlers of the `sqsrt` binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HandlerName {
    /// Log each message (body truncated) and succeed.
    Log,
    /// Act as the JSON body says: {"action": "ok" | "fail" | "reject" | "panic" | "sleep", ...}.
    Scripted,
    /// Succeed at once without reading the message: sqsrt's own cost, for benchmarks.
    Noop,
}

/// Flags of both modes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Built-in handler: `log` (log each message and succeed), `scripted` (act as the JSON
    /// body says; see README) or `noop` (succeed at once). Ignored by programs that bring their own handler.
    #[arg(long, env = "SQSRT_HANDLER", default_value = "log",
          value_parser = handler_name("--handler", "SQSRT_HANDLER"))]
    pub handler: HandlerName,

    /// Dead-letter queue URL for permanent failures (none: listed / left to the queue's redrive policy).
    #[arg(long, env = "SQSRT_DLQ_URL", value_parser = non_empty("--dlq-url", "SQSRT_DLQ_URL"))]
    pub dlq_url: Option<String>,

    /// Messages processed at once (worker), records at once (Lambda).
    #[arg(long, env = "SQSRT_MAX_IN_FLIGHT", default_value_t = NonZeroUsize::new(32).expect("32 is not zero"),
          value_parser = positive("--max-in-flight", "SQSRT_MAX_IN_FLIGHT"))]
    pub max_in_flight: NonZeroUsize,

    /// Per-message timeout in seconds; a timeout is a retryable failure.
    #[arg(long, env = "SQSRT_HANDLER_TIMEOUT_SECS", default_value_t = 20,
          value_parser = secs("--handler-timeout-secs", "SQSRT_HANDLER_TIMEOUT_SECS", 1, 43_200))]
    pub handler_timeout_secs: u64,

    /// Backoff base in seconds: delay = min(max, base * 2^(receive_count - 1)), jittered.
    #[arg(long, env = "SQSRT_RETRY_BASE_SECS", default_value_t = 2,
          value_parser = secs("--retry-base-secs", "SQSRT_RETRY_BASE_SECS", 1, 43_200))]
    pub retry_base_secs: u64,

    /// Backoff maximum in seconds (at most 43200, SQS's limit).
    #[arg(long, env = "SQSRT_RETRY_MAX_SECS", default_value_t = 900,
          value_parser = secs("--retry-max-secs", "SQSRT_RETRY_MAX_SECS", 1, 43_200))]
    pub retry_max_secs: u64,

    /// Runtime threads; 1 runs everything on one thread (no hand-offs between threads, the
    /// least CPU per message) [default: the CPUs available to the process, cgroup quota included].
    #[arg(long, env = "SQSRT_THREADS", value_parser = count("--threads", "SQSRT_THREADS", 1, 1_024))]
    pub threads: Option<usize>,

    /// Log filter (`level` or `target=level`, comma-separated, e.g. `info,sqsrt=debug`) [default: info; RUST_LOG is used when unset,
    /// and in Lambda mode AWS_LAMBDA_LOG_LEVEL too].
    #[arg(long, env = "SQSRT_LOG_LEVEL", value_parser = non_empty("--log-level", "SQSRT_LOG_LEVEL"))]
    pub log_level: Option<String>,
}

/// Flags of Lambda mode.
#[derive(Debug, Clone, Args)]
pub struct LambdaArgs {
    /// Flags of both modes.
    #[command(flatten)]
    pub common: CommonArgs,

    /// No record starts after the invocation deadline minus this many milliseconds;
    /// records still running at the deadline minus half of it are reported failed.
    #[arg(long, env = "SQSRT_DEADLINE_MARGIN_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub deadline_margin_ms: u64,

    /// Return an error instead of listing every record when all records failed.
    #[arg(long, env = "SQSRT_FAIL_INVOCATION_WHEN_ALL_FAIL", default_value_t = false,
          value_parser = clap::builder::FalseyValueParser::new())]
    pub fail_invocation_when_all_fail: bool,
}

/// Flags of worker mode.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Flags of both modes.
    #[command(flatten)]
    pub common: CommonArgs,

    /// The source queue URL (required in worker mode).
    #[arg(long, env = "SQSRT_QUEUE_URL", value_parser = non_empty("--queue-url", "SQSRT_QUEUE_URL"))]
    pub queue_url: Option<String>,

    /// Visibility timeout asked on receive, in seconds [default: the queue's].
    #[arg(long, env = "SQSRT_VISIBILITY_TIMEOUT_SECS",
          value_parser = secs("--visibility-timeout-secs", "SQSRT_VISIBILITY_TIMEOUT_SECS", 1, 43_200))]
    pub visibility_timeout_secs: Option<u64>,

    /// Period in seconds at which running messages get their visibility extended;
    /// must be below the visibility [default: visibility / 3].
    #[arg(long, env = "SQSRT_HEARTBEAT_SECS",
          value_parser = secs("--heartbeat-secs", "SQSRT_HEARTBEAT_SECS", 1, 43_199))]
    pub heartbeat_secs: Option<u64>,

    /// Drain time after SIGTERM in seconds; must be at least the handler timeout.
    #[arg(long, env = "SQSRT_SHUTDOWN_GRACE_SECS", default_value_t = 25,
          value_parser = secs("--shutdown-grace-secs", "SQSRT_SHUTDOWN_GRACE_SECS", 0, 3_600))]
    pub shutdown_grace_secs: u64,

    /// Messages received ahead of free handler slots (0: receive only for free slots), so a
    /// handler that finishes is followed at once instead of after a receive round trip.
    #[arg(long, env = "SQSRT_PREFETCH", default_value_t = 10,
          value_parser = count("--prefetch", "SQSRT_PREFETCH", 0, 1_000))]
    pub prefetch: usize,

    /// Address of /healthz, /readyz and /metrics (port 0 picks a free port).
    #[arg(long, env = "SQSRT_METRICS_ADDR", default_value = "0.0.0.0:9090",
          value_parser = socket_addr("--metrics-addr", "SQSRT_METRICS_ADDR"))]
    pub metrics_addr: SocketAddr,
}

fn handler_name(
    flag: &'static str,
    var: &'static str,
) -> impl Fn(&str) -> Result<HandlerName, String> + Clone {
    move |s| {
        HandlerName::from_str(s.trim(), true).map_err(|_| {
            format!(
                "unknown handler; expected one of: log, scripted, noop {}",
                names(flag, var)
            )
        })
    }
}

fn names(flag: &str, var: &str) -> String {
    format!("(set by {flag} or {var})")
}

fn positive(
    flag: &'static str,
    var: &'static str,
) -> impl Fn(&str) -> Result<NonZeroUsize, String> + Clone {
    move |s| {
        s.trim()
            .parse::<NonZeroUsize>()
            .map_err(|_| format!("must be a whole number of at least 1 {}", names(flag, var)))
    }
}

fn secs(
    flag: &'static str,
    var: &'static str,
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone {
    whole(flag, var, min, max, " of seconds")
}

fn count(
    flag: &'static str,
    var: &'static str,
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<usize, String> + Clone {
    let parse = whole(flag, var, min, max, "");
    move |s| parse(s).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// A whole number (`unit`: e.g. " of seconds") from `min` to `max`.
fn whole(
    flag: &'static str,
    var: &'static str,
    min: u64,
    max: u64,
    unit: &'static str,
) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |s| match s.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a whole number{unit} from {min} to {max} {}",
            names(flag, var)
        )),
    }
}

fn non_empty(
    flag: &'static str,
    var: &'static str,
) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |s| {
        if s.trim().is_empty() {
            Err(format!("must not be empty {}", names(flag, var)))
        } else {
            Ok(s.trim().to_owned())
        }
    }
}

fn socket_addr(
    flag: &'static str,
    var: &'static str,
) -> impl Fn(&str) -> Result<SocketAddr, String> + Clone {
    move |s| {
        s.trim().parse::<SocketAddr>().map_err(|e| {
            format!(
                "{e}: expected ip:port such as 0.0.0.0:9090 {}",
                names(flag, var)
            )
        })
    }
}

/// A problem with flags taken together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigProblem(pub String);

impl CommonArgs {
    /// The engine settings.
    #[must_use]
    pub fn engine(&self) -> EngineConfig {
        EngineConfig::default()
            .max_in_flight(self.max_in_flight)
            .handler_timeout(Duration::from_secs(self.handler_timeout_secs))
    }

    /// The retry policy.
    ///
    /// # Errors
    ///
    /// When the bounds are inconsistent, naming both flags and variables.
    pub fn retry(&self) -> Result<RetryPolicy, ConfigProblem> {
        RetryPolicy::new(
            Duration::from_secs(self.retry_base_secs),
            Duration::from_secs(self.retry_max_secs),
        )
        .map_err(|e| {
            ConfigProblem(format!(
                "{e} {} {}",
                names("--retry-base-secs", "SQSRT_RETRY_BASE_SECS"),
                names("--retry-max-secs", "SQSRT_RETRY_MAX_SECS")
            ))
        })
    }
}

impl LambdaArgs {
    /// The Lambda adapter settings.
    ///
    /// # Errors
    ///
    /// Every problem found, each naming its flag and variable.
    pub fn lambda(&self) -> Result<LambdaConfig, Vec<ConfigProblem>> {
        let retry = self.common.retry().map_err(|p| vec![p])?;
        Ok(LambdaConfig::default()
            .deadline_margin(Duration::from_millis(self.deadline_margin_ms))
            .fail_invocation_when_all_fail(self.fail_invocation_when_all_fail)
            .dlq_url(self.common.dlq_url.clone())
            .retry(retry))
    }
}

impl WorkerArgs {
    /// The worker settings.
    ///
    /// # Errors
    ///
    /// Every problem found, each naming its flag and variable.
    ///
    /// # Panics
    ///
    /// Never: the queue URL is checked before use.
    pub fn worker(&self) -> Result<sqsrt_k8s_worker::WorkerConfig, Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        if let Err(p) = self.common.retry() {
            problems.push(p);
        }
        if self.queue_url.is_none() {
            problems.push(ConfigProblem(format!(
                "the source queue is required in worker mode {}",
                names("--queue-url", "SQSRT_QUEUE_URL")
            )));
        }
        if self.shutdown_grace_secs < self.common.handler_timeout_secs {
            problems.push(ConfigProblem(format!(
                "shutdown grace ({}s) must be at least the handler timeout ({}s) {} {}",
                self.shutdown_grace_secs,
                self.common.handler_timeout_secs,
                names("--shutdown-grace-secs", "SQSRT_SHUTDOWN_GRACE_SECS"),
                names("--handler-timeout-secs", "SQSRT_HANDLER_TIMEOUT_SECS")
            )));
        }
        if let (Some(heartbeat), Some(visibility)) =
            (self.heartbeat_secs, self.visibility_timeout_secs)
            && heartbeat >= visibility
        {
            problems.push(ConfigProblem(format!(
                "heartbeat ({heartbeat}s) must be below the visibility timeout ({visibility}s) {} {}",
                names("--heartbeat-secs", "SQSRT_HEARTBEAT_SECS"),
                names("--visibility-timeout-secs", "SQSRT_VISIBILITY_TIMEOUT_SECS")
            )));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(sqsrt_k8s_worker::WorkerConfig {
            queue_url: self.queue_url.clone().expect("checked above"),
            dlq_url: self.common.dlq_url.clone(),
            max_in_flight: self.common.max_in_flight.get(),
            prefetch: self.prefetch,
            handler_timeout: Duration::from_secs(self.common.handler_timeout_secs),
            retry: self.common.retry().map_err(|p| vec![p])?,
            visibility_timeout: self.visibility_timeout_secs.map(Duration::from_secs),
            heartbeat: self.heartbeat_secs.map(Duration::from_secs),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            metrics_addr: self.metrics_addr,
        })
    }
}

/// The arguments to parse: when no mode is named, the one picked from the
/// environment is inserted, so `sqsrt --max-in-flight 4` means
/// `sqsrt lambda --max-in-flight 4` under Lambda.
#[must_use]
pub fn with_mode(args: Vec<String>, lambda_runtime_api_set: bool) -> Vec<String> {
    let named = args.get(1).is_some_and(|a| {
        matches!(
            a.as_str(),
            "lambda" | "worker" | "help" | "--help" | "-h" | "--version" | "-V"
        )
    });
    if named {
        return args;
    }
    let mode = if lambda_runtime_api_set {
        "lambda"
    } else {
        "worker"
    };
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut rest = args.into_iter();
    out.extend(rest.next());
    out.push(mode.to_owned());
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(args)
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_design() {
        let Mode::Lambda(l) = parse(&["sqsrt", "lambda"]).unwrap().mode else {
            panic!("lambda")
        };
        assert_eq!(l.common.handler, HandlerName::Log);
        assert_eq!(l.common.max_in_flight.get(), 32);
        assert_eq!(l.common.handler_timeout_secs, 20);
        assert_eq!(
            (l.common.retry_base_secs, l.common.retry_max_secs),
            (2, 900)
        );
        assert_eq!(l.deadline_margin_ms, 500);
        assert!(!l.fail_invocation_when_all_fail);
        let Mode::Worker(w) = parse(&["sqsrt", "worker"]).unwrap().mode else {
            panic!("worker")
        };
        assert_eq!(w.shutdown_grace_secs, 25);
        assert_eq!(w.metrics_addr, "0.0.0.0:9090".parse().unwrap());
        assert_eq!((w.visibility_timeout_secs, w.heartbeat_secs), (None, None));
    }

    #[test]
    fn bad_values_name_flag_and_variable() {
        let err = parse(&["sqsrt", "lambda", "--max-in-flight", "0"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--max-in-flight") && err.contains("SQSRT_MAX_IN_FLIGHT"),
            "{err}"
        );
        let err = parse(&["sqsrt", "worker", "--retry-max-secs", "50000"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SQSRT_RETRY_MAX_SECS") && err.contains("43200"),
            "{err}"
        );
        let err = parse(&["sqsrt", "lambda", "--handler", "nope"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--handler") && err.contains("scripted"),
            "{err}"
        );
    }

    #[test]
    fn worker_problems_are_all_named_at_once() {
        let Mode::Worker(w) = parse(&[
            "sqsrt",
            "worker",
            "--visibility-timeout-secs",
            "10",
            "--heartbeat-secs",
            "10",
            "--shutdown-grace-secs",
            "5",
            "--retry-base-secs",
            "100",
            "--retry-max-secs",
            "10",
        ])
        .unwrap()
        .mode
        else {
            panic!("worker")
        };
        let problems: Vec<String> = w.worker().unwrap_err().into_iter().map(|p| p.0).collect();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        let all = problems.join("\n");
        for name in [
            "SQSRT_QUEUE_URL",
            "SQSRT_HEARTBEAT_SECS",
            "SQSRT_SHUTDOWN_GRACE_SECS",
            "SQSRT_RETRY_MAX_SECS",
        ] {
            assert!(all.contains(name), "{name} missing from {all}");
        }
    }

    #[test]
    fn mode_is_inserted_only_when_not_named() {
        let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(with_mode(v(&["sqsrt"]), true), v(&["sqsrt", "lambda"]));
        assert_eq!(
            with_mode(v(&["sqsrt", "--max-in-flight", "3"]), false),
            v(&["sqsrt", "worker", "--max-in-flight", "3"])
        );
        assert_eq!(
            with_mode(v(&["sqsrt", "worker"]), true),
            v(&["sqsrt", "worker"])
        );
        assert_eq!(
            with_mode(v(&["sqsrt", "--version"]), true),
            v(&["sqsrt", "--version"])
        );
    }
}
