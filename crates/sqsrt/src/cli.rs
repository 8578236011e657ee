//! Command line and environment: every flag `--some-name` falls back to
//! `SQSRT_SOME_NAME`. Values are parsed here (a malformed one is named with
//! its flag and variable); ranges and settings taken together are checked
//! where settings set in code are, in [`crate::settings`].

// Doc comments here are the CLI's help text, read in a terminal, not rustdoc.
#![allow(clippy::doc_markdown)]

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::handlers::{Builtin, BuiltinHandler, HttpFlags, KafkaFlags};
use crate::runner::{self, Runner};
use crate::settings::Settings;

/// Run one SQS message handler on AWS Lambda or as a long-poll worker.
///
/// Without a subcommand the mode is picked at start: Lambda when
/// `AWS_LAMBDA_RUNTIME_API` is set, worker otherwise. Every flag can also be
/// set with the environment variable shown beside it.
#[derive(Debug, Parser)]
#[command(name = "sqsrt", version)]
pub(crate) struct Cli {
    /// The mode.
    #[command(subcommand)]
    pub(crate) mode: Mode,
    /// Check the settings (flags and variables) as a start would, print every
    /// problem, and exit: 0 when they are valid, 2 otherwise. Nothing runs
    /// and nothing is contacted (for CI and deployment checks).
    #[arg(long, global = true)]
    pub(crate) check_config: bool,
}

/// Where sqsrt runs.
#[derive(Debug, Subcommand)]
pub(crate) enum Mode {
    /// Serve the Lambda Runtime API (SQS event source mapping, partial batch failures).
    Lambda(LambdaArgs),
    /// Long-poll SQS (the container KEDA scales on Kubernetes).
    Worker(WorkerArgs),
    /// Print every setting of both modes as JSON (flag, variable, default) and exit.
    Defaults,
}

/// Flags of both modes.
#[derive(Debug, Clone, Args)]
pub(crate) struct CommonArgs {
    /// Built-in handler: `log` (log each message and succeed), `scripted` (act as the JSON
    /// body says; see README), `noop` (succeed at once), `http` (POST each message to
    /// --http-url) or `kafka` (produce each message to --kafka-topic). Ignored by programs
    /// that bring their own handler.
    #[arg(long, env = "SQSRT_HANDLER", default_value = "log",
          value_parser = handler_name("--handler", "SQSRT_HANDLER"))]
    pub(crate) handler: Builtin,

    /// The app the `http` handler posts each message to (http:// or https://).
    #[arg(long, env = "SQSRT_HTTP_URL", value_parser = non_empty("--http-url", "SQSRT_HTTP_URL"))]
    pub(crate) http_url: Option<String>,

    /// The `http` handler's timeout per message, in seconds (sending it and reading the
    /// answer); must be below the handler timeout.
    #[arg(long, env = "SQSRT_HTTP_TIMEOUT_SECS",
          default_value_t = sqsrt_forward::http::DEFAULT_TIMEOUT.as_secs(),
          value_parser = secs("--http-timeout-secs", "SQSRT_HTTP_TIMEOUT_SECS"))]
    pub(crate) http_timeout_secs: u64,

    #[command(flatten)]
    pub(crate) kafka: KafkaFlags,

    /// Dead-letter queue URL for permanent failures (none: listed / left to the queue's redrive policy).
    #[arg(long, env = "SQSRT_DLQ_URL", value_parser = non_empty("--dlq-url", "SQSRT_DLQ_URL"))]
    pub(crate) dlq_url: Option<String>,

    /// Messages processed at once (worker), records at once (Lambda).
    #[arg(long, env = "SQSRT_MAX_IN_FLIGHT", default_value_t = 32,
          value_parser = count("--max-in-flight", "SQSRT_MAX_IN_FLIGHT"))]
    pub(crate) max_in_flight: usize,

    /// Messages of one tenant (message group on a standard queue) processed at once; 0: no cap.
    /// The rest of the tenant's messages wait without taking handler slots (worker: up to the
    /// handler timeout, then back to the queue for as long).
    #[arg(long, env = "SQSRT_MAX_IN_FLIGHT_PER_GROUP", default_value_t = 0,
          value_parser = count("--max-in-flight-per-group", "SQSRT_MAX_IN_FLIGHT_PER_GROUP"))]
    pub(crate) max_in_flight_per_group: usize,

    /// Per-message timeout in seconds; a timeout is a retryable failure.
    #[arg(long, env = "SQSRT_HANDLER_TIMEOUT_SECS", default_value_t = 20,
          value_parser = secs("--handler-timeout-secs", "SQSRT_HANDLER_TIMEOUT_SECS"))]
    pub(crate) handler_timeout_secs: u64,

    /// Backoff base in seconds: delay = min(max, base * 2^(receive_count - 1)), jittered.
    #[arg(long, env = "SQSRT_RETRY_BASE_SECS", default_value_t = 2,
          value_parser = secs("--retry-base-secs", "SQSRT_RETRY_BASE_SECS"))]
    pub(crate) retry_base_secs: u64,

    /// Backoff maximum in seconds (at most 43200, SQS's limit).
    #[arg(long, env = "SQSRT_RETRY_MAX_SECS", default_value_t = 900,
          value_parser = secs("--retry-max-secs", "SQSRT_RETRY_MAX_SECS"))]
    pub(crate) retry_max_secs: u64,

    /// Runtime threads; 1 runs everything on one thread (no hand-offs between threads, the
    /// least CPU per message) [default: worker: the CPUs available to the process, cgroup quota
    /// included; Lambda: 1 below 1769 MB, else one per 1769 MB up to the CPUs shown; Lambda
    /// Managed Instances: the CPUs available].
    #[arg(long, env = "SQSRT_THREADS", value_parser = count("--threads", "SQSRT_THREADS"))]
    pub(crate) threads: Option<usize>,

    /// Log filter (`level` or `target=level`, comma-separated, e.g. `info,sqsrt=debug`) [default: info; RUST_LOG is used when unset,
    /// and in Lambda mode AWS_LAMBDA_LOG_LEVEL too].
    #[arg(long, env = "SQSRT_LOG_LEVEL", value_parser = non_empty("--log-level", "SQSRT_LOG_LEVEL"))]
    pub(crate) log_level: Option<String>,
}

/// Flags of Lambda mode.
#[derive(Debug, Clone, Args)]
pub(crate) struct LambdaArgs {
    /// Flags of both modes.
    #[command(flatten)]
    pub(crate) common: CommonArgs,

    /// No record starts after the invocation deadline minus this many milliseconds;
    /// records still running at the deadline minus half of it are reported failed.
    #[arg(long, env = "SQSRT_DEADLINE_MARGIN_MS", default_value_t = 500,
          value_parser = count("--deadline-margin-ms", "SQSRT_DEADLINE_MARGIN_MS"))]
    pub(crate) deadline_margin_ms: usize,

    /// Return an error instead of listing every record when all records failed.
    #[arg(long, env = "SQSRT_FAIL_INVOCATION_WHEN_ALL_FAIL", default_value_t = false,
          value_parser = clap::builder::FalseyValueParser::new())]
    pub(crate) fail_invocation_when_all_fail: bool,

    /// Write metrics as CloudWatch Embedded Metric Format lines in this
    /// namespace (one document per outcome that occurred in an invocation);
    /// off when absent.
    #[arg(long, env = "SQSRT_EMF_NAMESPACE")]
    pub(crate) emf_namespace: Option<String>,
}

/// Flags of worker mode.
#[derive(Debug, Clone, Args)]
pub(crate) struct WorkerArgs {
    /// Flags of both modes.
    #[command(flatten)]
    pub(crate) common: CommonArgs,

    /// The source queue URL (required in worker mode).
    #[arg(long, env = "SQSRT_QUEUE_URL", value_parser = non_empty("--queue-url", "SQSRT_QUEUE_URL"))]
    pub(crate) queue_url: Option<String>,

    /// Visibility timeout asked on receive, in seconds [default: the queue's].
    #[arg(long, env = "SQSRT_VISIBILITY_TIMEOUT_SECS",
          value_parser = secs("--visibility-timeout-secs", "SQSRT_VISIBILITY_TIMEOUT_SECS"))]
    pub(crate) visibility_timeout_secs: Option<u64>,

    /// Period in seconds at which running messages get their visibility extended;
    /// must be below the visibility [default: visibility / 3].
    #[arg(long, env = "SQSRT_HEARTBEAT_SECS",
          value_parser = secs("--heartbeat-secs", "SQSRT_HEARTBEAT_SECS"))]
    pub(crate) heartbeat_secs: Option<u64>,

    /// Drain time after SIGTERM in seconds; must be at least the handler timeout.
    #[arg(long, env = "SQSRT_SHUTDOWN_GRACE_SECS", default_value_t = 25,
          value_parser = secs("--shutdown-grace-secs", "SQSRT_SHUTDOWN_GRACE_SECS"))]
    pub(crate) shutdown_grace_secs: u64,

    /// Messages received ahead of free handler slots (0: receive only for free slots), so a
    /// handler that finishes is followed at once instead of after a receive round trip.
    #[arg(long, env = "SQSRT_PREFETCH", default_value_t = 10,
          value_parser = count("--prefetch", "SQSRT_PREFETCH"))]
    pub(crate) prefetch: usize,

    /// Address of /healthz, /readyz and /metrics (port 0 picks a free port).
    #[arg(long, env = "SQSRT_METRICS_ADDR", default_value = "0.0.0.0:9090",
          value_parser = socket_addr("--metrics-addr", "SQSRT_METRICS_ADDR"))]
    pub(crate) metrics_addr: SocketAddr,
}

fn handler_name(
    flag: &'static str,
    var: &'static str,
) -> impl Fn(&str) -> Result<Builtin, String> + Clone {
    move |s| {
        Builtin::from_str(s.trim(), true).map_err(|_| {
            format!(
                "unknown handler; expected one of: log, scripted, noop, http, kafka {}",
                names(flag, var)
            )
        })
    }
}

fn names(flag: &str, var: &str) -> String {
    format!("(set by {flag} or {var})")
}

fn secs(flag: &'static str, var: &'static str) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |s| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("must be a whole number of seconds {}", names(flag, var)))
    }
}

fn count(flag: &'static str, var: &'static str) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |s| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| format!("must be a whole number {}", names(flag, var)))
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

impl CommonArgs {
    /// The built-in handler these flags name, ready to run.
    ///
    /// # Errors
    ///
    /// A problem with its flags, naming flag and variable.
    pub(crate) fn builtin_handler(&self) -> Result<BuiltinHandler, String> {
        self.handler.build(
            &HttpFlags {
                url: self.http_url.clone(),
                timeout_secs: self.http_timeout_secs,
            },
            &self.kafka,
            Duration::from_secs(self.handler_timeout_secs),
        )
    }

    /// The defaults, as if no flag and no variable were given.
    fn default_values() -> Self {
        let Mode::Worker(args) = Cli::parse_from(["sqsrt", "worker"]).mode else {
            unreachable!("parsed as the worker subcommand")
        };
        args.common
    }

    fn settings(&self) -> Settings {
        Settings {
            handler_timeout: Duration::from_secs(self.handler_timeout_secs),
            max_in_flight: self.max_in_flight,
            max_in_flight_per_group: self.max_in_flight_per_group,
            dlq_url: self.dlq_url.clone(),
            retry_base: Duration::from_secs(self.retry_base_secs),
            retry_max: Duration::from_secs(self.retry_max_secs),
            threads: self.threads,
            log_level: self.log_level.clone(),
            ..Settings::default()
        }
    }
}

impl Cli {
    /// The flags of either mode.
    #[must_use]
    pub(crate) fn common(&self) -> CommonArgs {
        match &self.mode {
            Mode::Lambda(args) => args.common.clone(),
            Mode::Worker(args) => args.common.clone(),
            Mode::Defaults => CommonArgs::default_values(),
        }
    }

    /// A [`Runner`] with these settings, in this mode.
    pub(crate) fn into_runner(self) -> Runner {
        match self.mode {
            Mode::Defaults => Runner::new(),
            Mode::Lambda(args) => {
                let settings = Settings {
                    deadline_margin: Duration::from_millis(args.deadline_margin_ms as u64),
                    fail_invocation_when_all_fail: args.fail_invocation_when_all_fail,
                    emf_namespace: args.emf_namespace,
                    ..args.common.settings()
                };
                Runner::with_settings(settings, runner::Mode::Lambda)
            }
            Mode::Worker(args) => {
                let settings = Settings {
                    queue_url: args.queue_url,
                    visibility_timeout: args.visibility_timeout_secs.map(Duration::from_secs),
                    heartbeat: args.heartbeat_secs.map(Duration::from_secs),
                    shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
                    prefetch: args.prefetch,
                    metrics_addr: args.metrics_addr,
                    ..args.common.settings()
                };
                Runner::with_settings(settings, runner::Mode::Worker)
            }
        }
    }
}

/// Parses the command line and `SQSRT_*` variables, inserting the mode picked
/// from the environment when none is named. Prints help, the version, or the
/// error naming the flag and variable, and exits (status 2 on errors).
#[must_use]
pub(crate) fn parse_args() -> Cli {
    parse_args_building(|_| Ok(())).0
}

/// [`parse_args`], with `build` run on the parsed flags before anything
/// else (the binary builds its built-in handler there): a problem it
/// returns is printed and the process exits with status 2, with
/// `--check-config` too.
pub(crate) fn parse_args_building<T>(build: impl FnOnce(&Cli) -> Result<T, String>) -> (Cli, T) {
    let lambda = runner::Mode::from_env() == runner::Mode::Lambda;
    let args = with_mode(std::env::args().collect(), lambda);
    let cli = Cli::try_parse_from(args).unwrap_or_else(|e| e.exit());
    if matches!(cli.mode, Mode::Defaults) {
        println!("{}", defaults_json());
        std::process::exit(0);
    }
    let handler = build(&cli).unwrap_or_else(|problem| {
        eprintln!("sqsrt: {problem}");
        std::process::exit(2);
    });
    if cli.check_config {
        let runner = cli.into_runner();
        let mode = runner.selected_mode();
        match runner.validate() {
            Ok(()) => {
                let mode = if mode == runner::Mode::Lambda {
                    "lambda"
                } else {
                    "worker"
                };
                println!("{mode} settings are valid");
                std::process::exit(0);
            }
            Err(error) => {
                eprintln!("{error}");
                std::process::exit(2);
            }
        }
    }
    (cli, handler)
}

/// Every flag of each mode with its variable and default, as JSON, read from
/// the flag definitions themselves: `{"worker": {"--max-in-flight": {"env":
/// "SQSRT_MAX_IN_FLIGHT", "default": "32"}, ...}, "lambda": {...}}`. Tools
/// that check deployment files against the defaults (`infra/check.py`) read
/// this instead of copying them.
pub(crate) fn defaults_json() -> String {
    use clap::CommandFactory;
    let command = Cli::command();
    let mut modes = serde_json::Map::new();
    for mode in command
        .get_subcommands()
        .filter(|c| c.get_name() != "defaults")
    {
        let mut flags = serde_json::Map::new();
        for arg in mode.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let default = arg
                .get_default_values()
                .first()
                .map(|d| d.to_string_lossy().into_owned());
            flags.insert(
                format!("--{long}"),
                serde_json::json!({ "env": env, "default": default }),
            );
        }
        modes.insert(mode.get_name().to_owned(), serde_json::Value::Object(flags));
    }
    serde_json::Value::Object(modes).to_string()
}

/// The arguments to parse: when no mode is named, the one picked from the
/// environment is inserted, so `sqsrt --max-in-flight 4` means
/// `sqsrt lambda --max-in-flight 4` under Lambda.
#[must_use]
pub(crate) fn with_mode(args: Vec<String>, lambda_runtime_api_set: bool) -> Vec<String> {
    let named = args.get(1).is_some_and(|a| {
        matches!(
            a.as_str(),
            "lambda" | "worker" | "defaults" | "help" | "--help" | "-h" | "--version" | "-V"
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
    fn the_http_handler_needs_a_url_and_a_timeout_below_the_handlers() {
        let build = |args: &[&str]| {
            parse(args)
                .expect("parses")
                .common()
                .builtin_handler()
                .map(|h| format!("{h:?}"))
        };
        let missing = build(&["sqsrt", "worker", "--handler", "http"]).expect_err("no URL");
        assert!(
            missing.contains("--http-url") && missing.contains("SQSRT_HTTP_URL"),
            "{missing}"
        );
        let bad = build(&[
            "sqsrt",
            "lambda",
            "--handler",
            "http",
            "--http-url",
            "localhost:80",
        ])
        .expect_err("no scheme");
        assert!(
            bad.contains("localhost:80") && bad.contains("--http-url"),
            "{bad}"
        );
        let slow = build(&[
            "sqsrt",
            "worker",
            "--handler",
            "http",
            "--http-url",
            "http://127.0.0.1:8080/",
            "--http-timeout-secs",
            "20",
        ])
        .expect_err("not below the handler timeout");
        assert!(
            slow.contains("--http-timeout-secs") && slow.contains("--handler-timeout-secs"),
            "{slow}"
        );
        let ok = build(&[
            "sqsrt",
            "worker",
            "--handler",
            "http",
            "--http-url",
            "http://127.0.0.1:8080/in",
            "--http-timeout-secs",
            "5",
        ])
        .expect("valid");
        assert!(
            ok.contains("Http") && ok.contains("http://127.0.0.1:8080/in"),
            "{ok}"
        );
        // Another handler ignores the http flags.
        assert_eq!(
            build(&[
                "sqsrt",
                "worker",
                "--handler",
                "noop",
                "--http-timeout-secs",
                "99"
            ]),
            Ok("Noop".to_owned())
        );
    }

    fn build_handler(args: &[&str]) -> Result<String, String> {
        parse(args)
            .expect("parses")
            .common()
            .builtin_handler()
            .map(|h| format!("{h:?}"))
    }

    #[cfg(not(feature = "kafka"))]
    #[test]
    fn a_binary_without_kafka_names_the_feature() {
        let error = build_handler(&[
            "sqsrt",
            "worker",
            "--handler",
            "kafka",
            "--kafka-brokers",
            "127.0.0.1:9092",
            "--kafka-topic",
            "orders",
        ])
        .expect_err("no kafka here");
        assert!(error.contains("cargo feature `kafka`"), "{error}");
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn the_kafka_handler_checks_its_flags() {
        let base = ["sqsrt", "worker", "--handler", "kafka"];
        let with = |more: &[&str]| build_handler(&[&base[..], more].concat());
        let missing = with(&["--kafka-topic", "orders"]).expect_err("no brokers");
        assert!(
            missing.contains("--kafka-brokers") && missing.contains("SQSRT_KAFKA_BROKERS"),
            "{missing}"
        );
        let brokers = ["--kafka-brokers", "127.0.0.1:9092"];
        let no_topic = with(&brokers).expect_err("no topic");
        assert!(no_topic.contains("--kafka-topic"), "{no_topic}");
        let topic = ["--kafka-topic", "orders"];
        let bad_topic = with(&[&brokers[..], &["--kafka-topic", "a/b"]].concat()).expect_err("bad");
        assert!(bad_topic.contains("SQSRT_KAFKA_TOPIC"), "{bad_topic}");
        let slow = with(&[&brokers[..], &topic, &["--kafka-timeout-secs", "20"]].concat())
            .expect_err("not below the handler timeout");
        assert!(
            slow.contains("--kafka-timeout-secs") && slow.contains("--handler-timeout-secs"),
            "{slow}"
        );
        let mechanism =
            with(&[&brokers[..], &topic, &["--kafka-sasl-mechanism", "GSSAPI"]].concat())
                .expect_err("unknown mechanism");
        assert!(mechanism.contains("--kafka-sasl-mechanism"), "{mechanism}");
        let no_user = with(&[&brokers[..], &topic, &["--kafka-sasl-mechanism", "PLAIN"]].concat())
            .expect_err("no username");
        assert!(no_user.contains("--kafka-sasl-username"), "{no_user}");
        let ok = with(
            &[
                &brokers[..],
                &topic,
                &[
                    "--kafka-sasl-mechanism",
                    "scram-sha-256",
                    "--kafka-sasl-username",
                    "sqsrt",
                    "--kafka-sasl-password",
                    "hunter2",
                    "--kafka-tls",
                ],
            ]
            .concat(),
        )
        .expect("valid");
        assert!(ok.contains("Kafka") && ok.contains("orders"), "{ok}");
        assert!(
            !ok.contains("hunter2"),
            "the password stays out of logs: {ok}"
        );
    }

    #[test]
    fn defaults_match_the_design() {
        let cli = parse(&["sqsrt", "lambda"]).unwrap();
        assert_eq!(cli.common().handler, Builtin::Log);
        let Mode::Lambda(l) = &cli.mode else {
            panic!("lambda")
        };
        assert_eq!(l.deadline_margin_ms, 500);
        assert!(!l.fail_invocation_when_all_fail);
        assert_eq!(l.common.settings(), Settings::default());
        let runner = cli.into_runner();
        assert_eq!(runner.selected_mode(), runner::Mode::Lambda);
        assert!(runner.validate().is_ok());
        let Mode::Worker(w) = parse(&["sqsrt", "worker"]).unwrap().mode else {
            panic!("worker")
        };
        assert_eq!(w.shutdown_grace_secs, 25);
        assert_eq!(w.prefetch, 10);
        assert_eq!(w.metrics_addr, "0.0.0.0:9090".parse().unwrap());
        assert_eq!((w.visibility_timeout_secs, w.heartbeat_secs), (None, None));
    }

    fn problems(args: &[&str]) -> String {
        let error = match parse(args) {
            Ok(cli) => cli.into_runner().validate().unwrap_err().to_string(),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("(set by --"), "{error}");
        error
    }

    #[test]
    fn bad_values_name_flag_and_variable() {
        let err = problems(&["sqsrt", "lambda", "--max-in-flight", "0"]);
        assert!(
            err.contains("--max-in-flight") && err.contains("SQSRT_MAX_IN_FLIGHT"),
            "{err}"
        );
        let err = problems(&["sqsrt", "lambda", "--max-in-flight", "many"]);
        assert!(
            err.contains("must be a whole number (set by --max-in-flight or SQSRT_MAX_IN_FLIGHT)"),
            "{err}"
        );
        let err = problems(&[
            "sqsrt",
            "worker",
            "--queue-url",
            "q",
            "--retry-max-secs",
            "50000",
        ]);
        assert!(
            err.contains("SQSRT_RETRY_MAX_SECS") && err.contains("43200"),
            "{err}"
        );
        let err = problems(&["sqsrt", "lambda", "--deadline-margin-ms", "600001"]);
        assert!(err.contains("SQSRT_DEADLINE_MARGIN_MS"), "{err}");
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
        let err = problems(&[
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
        ]);
        for name in [
            "SQSRT_QUEUE_URL",
            "SQSRT_HEARTBEAT_SECS",
            "SQSRT_SHUTDOWN_GRACE_SECS",
            "SQSRT_RETRY_MAX_SECS",
        ] {
            assert!(err.contains(name), "{name} missing from {err}");
        }
        assert_eq!(err.lines().count(), 5, "a header and four problems: {err}");
    }

    #[test]
    fn defaults_are_printed_from_the_flag_definitions() {
        let all: serde_json::Value = serde_json::from_str(&defaults_json()).unwrap();
        let worker = &all["worker"];
        assert_eq!(worker["--max-in-flight"]["env"], "SQSRT_MAX_IN_FLIGHT");
        assert_eq!(worker["--max-in-flight"]["default"], "32");
        assert_eq!(worker["--shutdown-grace-secs"]["default"], "25");
        assert_eq!(worker["--handler-timeout-secs"]["default"], "20");
        assert_eq!(worker["--queue-url"]["default"], serde_json::Value::Null);
        assert_eq!(all["lambda"]["--deadline-margin-ms"]["default"], "500");
        assert!(all["lambda"].get("--queue-url").is_none());
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
