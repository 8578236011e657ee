//! [`Runner`]: sqsrt as a library. Every setting in code or from flags,
//! your own AWS config or SQS client, your own shutdown token, sqsrt's
//! logging, panic hook and signal handling each optional, errors returned.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use sqsrt_core::{Engine, Handler};
use sqsrt_lambda::SqsLambda;
use sqsrt_sqs::SqsClient;
use tokio_util::sync::CancellationToken;

pub use crate::error::Error;
use crate::logging;
use crate::process::{
    build_runtime, lambda_environment_problems, lambda_threads_from_env, report_lambda_init_error,
    shutdown_on_signal,
};
use crate::settings::{ConfigProblem, Settings};

/// Where sqsrt runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Serve the Lambda Runtime API (an SQS event source mapping's batches).
    Lambda,
    /// Long-poll SQS (the container KEDA scales on Kubernetes).
    Worker,
}

impl Mode {
    /// Lambda when `AWS_LAMBDA_RUNTIME_API` is set (Lambda sets it), worker
    /// otherwise.
    #[must_use]
    pub fn from_env() -> Self {
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some_and(|v| !v.is_empty()) {
            Self::Lambda
        } else {
            Self::Worker
        }
    }
}

/// Where the SQS client comes from.
#[derive(Debug, Clone)]
enum Sqs {
    /// The SDK's environment and credential chain, read at first use.
    FromEnv,
    /// The program's own AWS config (boxed: it is large, and read once).
    Config(Box<aws_config::SdkConfig>),
    /// The program's own client.
    Client(aws_sdk_sqs::Client),
}

/// Runs one handler in Lambda or worker mode, configured in code, by flags
/// and `SQSRT_*` variables ([`Runner::from_args`]), or both.
///
/// ```no_run
/// use std::time::Duration;
/// use sqsrt::prelude::*;
///
/// # async fn run() -> Result<(), sqsrt::Error> {
/// let shutdown = sqsrt::CancellationToken::new();
/// sqsrt::Runner::new()
///     .worker()
///     .queue_url("https://sqs.eu-west-1.amazonaws.com/123456789012/orders")
///     .max_in_flight(8)
///     .handler_timeout(Duration::from_secs(10))
///     .shutdown(shutdown.clone()) // yours: sqsrt installs no signal handler
///     .logging(false) // your own subscriber sees every outcome line
///     .run(handler_fn(|m: Message, _ctx: Context| async move {
///         println!("{}", m.body());
///         Ok::<_, HandlerError>(())
///     }))
///     .await
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Runner {
    settings: Settings,
    mode: Option<Mode>,
    sqs: Sqs,
    shutdown: Option<CancellationToken>,
    logging: bool,
    panic_hook: bool,
    second_signal_exits: bool,
}

impl Default for Runner {
    fn default() -> Self {
        Self::new()
    }
}

impl Runner {
    /// The defaults (README "Configuration"); the mode is picked at start
    /// ([`Mode::from_env`]). Reads no flags.
    pub fn new() -> Self {
        Self {
            settings: Settings::default(),
            mode: None,
            sqs: Sqs::FromEnv,
            shutdown: None,
            logging: true,
            panic_hook: true,
            second_signal_exits: true,
        }
    }

    /// Settings from the command line and `SQSRT_*` variables, as the
    /// `sqsrt` binary reads them (`--help` lists them). Prints help, the
    /// version, or a malformed value naming its flag and variable, and exits
    /// (status 2 on errors); range checks happen at [`Runner::run`].
    pub fn from_args() -> Self {
        crate::cli::parse_args().into_runner()
    }

    pub(crate) fn with_settings(settings: Settings, mode: Mode) -> Self {
        Self {
            settings,
            mode: Some(mode),
            ..Self::new()
        }
    }

    /// Runs in Lambda mode whatever the environment says.
    pub fn lambda(mut self) -> Self {
        self.mode = Some(Mode::Lambda);
        self
    }

    /// Runs in worker mode whatever the environment says.
    pub fn worker(mut self) -> Self {
        self.mode = Some(Mode::Worker);
        self
    }

    /// Runs in `mode`.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// The mode it will run in.
    #[must_use]
    pub fn selected_mode(&self) -> Mode {
        self.mode.unwrap_or_else(Mode::from_env)
    }

    /// Messages processed at once (worker), records at once (Lambda); `--max-in-flight`.
    pub fn max_in_flight(mut self, count: usize) -> Self {
        self.settings.max_in_flight = count;
        self
    }

    /// Messages of one tenant (a message group on a standard queue)
    /// processed at once, 0 for no cap; `--max-in-flight-per-group`.
    pub fn max_in_flight_per_group(mut self, count: usize) -> Self {
        self.settings.max_in_flight_per_group = count;
        self
    }

    /// Lambda mode: metrics as CloudWatch EMF lines in `namespace`, with the
    /// function's name as a dimension; `--emf-namespace`.
    pub fn emf_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.settings.emf_namespace = Some(namespace.into());
        self
    }

    /// Per-message timeout (a timeout is a retry); `--handler-timeout-secs`.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.settings.handler_timeout = timeout;
        self
    }

    /// Dead-letter queue for permanent failures; `--dlq-url`.
    pub fn dlq_url(mut self, url: impl Into<String>) -> Self {
        self.settings.dlq_url = Some(url.into());
        self
    }

    /// Backoff bounds: `delay = min(max, base * 2^(receive_count - 1))`,
    /// jittered; `--retry-base-secs`, `--retry-max-secs`.
    pub fn retry(mut self, base: Duration, max: Duration) -> Self {
        self.settings.retry_base = base;
        self.settings.retry_max = max;
        self
    }

    /// Runtime threads for [`Runner::main`]; `--threads`.
    pub fn threads(mut self, threads: usize) -> Self {
        self.settings.threads = Some(threads);
        self
    }

    /// Log filter (`level` or `target=level`, comma-separated); `--log-level`.
    pub fn log_level(mut self, filter: impl Into<String>) -> Self {
        self.settings.log_level = Some(filter.into());
        self
    }

    /// Lambda: no record starts after the deadline minus this; `--deadline-margin-ms`.
    pub fn deadline_margin(mut self, margin: Duration) -> Self {
        self.settings.deadline_margin = margin;
        self
    }

    /// Lambda: fail the invocation instead of listing every record when all
    /// failed; `--fail-invocation-when-all-fail`.
    pub fn fail_invocation_when_all_fail(mut self, on: bool) -> Self {
        self.settings.fail_invocation_when_all_fail = on;
        self
    }

    /// Worker: the source queue; `--queue-url`.
    pub fn queue_url(mut self, url: impl Into<String>) -> Self {
        self.settings.queue_url = Some(url.into());
        self
    }

    /// Worker: visibility asked on receive (default: the queue's);
    /// `--visibility-timeout-secs`.
    pub fn visibility_timeout(mut self, visibility: Duration) -> Self {
        self.settings.visibility_timeout = Some(visibility);
        self
    }

    /// Worker: heartbeat period (default: visibility / 3); `--heartbeat-secs`.
    pub fn heartbeat(mut self, period: Duration) -> Self {
        self.settings.heartbeat = Some(period);
        self
    }

    /// Worker: drain time after shutdown begins; `--shutdown-grace-secs`.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.settings.shutdown_grace = grace;
        self
    }

    /// Worker: messages received ahead of free handler slots; `--prefetch`.
    pub fn prefetch(mut self, count: usize) -> Self {
        self.settings.prefetch = count;
        self
    }

    /// Worker: address of `/healthz`, `/readyz`, `/metrics`; `--metrics-addr`.
    pub fn metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.settings.metrics_addr = addr;
        self
    }

    /// The SQS client is built from this AWS config (with its own HTTP
    /// client, credentials, region and endpoint) instead of the environment.
    pub fn sdk_config(mut self, config: aws_config::SdkConfig) -> Self {
        self.sqs = Sqs::Config(Box::new(config));
        self
    }

    /// This SQS client is used for every call.
    pub fn sqs_client(mut self, client: aws_sdk_sqs::Client) -> Self {
        self.sqs = Sqs::Client(client);
        self
    }

    /// Worker: drain when `token` is cancelled. sqsrt then installs no
    /// signal handler (SIGTERM is yours to turn into a cancel).
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = Some(token);
        self
    }

    /// Whether sqsrt installs its JSON-lines subscriber (default on). Off,
    /// the program's own subscriber sees every outcome line as a `tracing`
    /// event.
    pub fn logging(mut self, on: bool) -> Self {
        self.logging = on;
        self
    }

    /// Whether sqsrt replaces the panic hook so a panic is one log line
    /// (default on). Panics are caught per message either way.
    pub fn panic_hook(mut self, on: bool) -> Self {
        self.panic_hook = on;
        self
    }

    /// Worker, with sqsrt's own signal handling: whether a second SIGTERM or
    /// SIGINT exits at once with status 1 (default on).
    pub fn second_signal_exits(mut self, on: bool) -> Self {
        self.second_signal_exits = on;
        self
    }

    /// Checks every setting for the selected mode without running.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] listing every problem.
    pub fn validate(&self) -> Result<(), Error> {
        match self.selected_mode() {
            Mode::Lambda => self.settings.validate_lambda().map(drop),
            Mode::Worker => self.settings.validate_worker().map(drop),
        }
        .map_err(Error::Config)
    }

    /// Runs `handler` until the process is told to stop (worker) or for as
    /// long as Lambda keeps the environment.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for invalid settings; [`Error::Lambda`] or
    /// [`Error::Worker`] when the platform side fails;
    /// [`Error::ShutdownGraceExpired`] when the worker's drain ran out of time.
    pub async fn run<H: Handler>(self, handler: H) -> Result<(), Error> {
        self.run_with(|| async { Ok(handler) }).await
    }

    /// Like [`Runner::run`], with the handler built by `init` once at start:
    /// after the settings are checked and before the first `/next` (Lambda)
    /// or the first receive (worker), never per message. `?` works on any
    /// error inside it. A failure is logged with its source chain, reported
    /// to the Runtime API's init error route in Lambda mode, and returned as
    /// [`Error::Init`].
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use sqsrt::prelude::*;
    ///
    /// struct Inventory { url: String }
    ///
    /// # async fn run() -> Result<(), sqsrt::Error> {
    /// sqsrt::Runner::from_args()
    ///     .run_with(|| async {
    ///         let url = std::env::var("INVENTORY_URL")?; // a failure here stops the start
    ///         let inventory = Inventory { url };
    ///         Ok(state_fn(inventory, |inv: Arc<Inventory>, m: Message, _ctx: Context| async move {
    ///             println!("{} -> {}", m.id(), inv.url);
    ///             Ok::<_, anyhow::Error>(())
    ///         }))
    ///     })
    ///     .await
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Runner::run`], and [`Error::Init`].
    pub async fn run_with<H, F, Fut>(self, init: F) -> Result<(), Error>
    where
        H: Handler,
        F: FnOnce() -> Fut,
        Fut: Future<Output = anyhow::Result<H>>,
    {
        let mode = self.selected_mode();
        match mode {
            Mode::Lambda => self.run_lambda(init).await,
            Mode::Worker => self.run_worker(init).await,
        }
    }

    /// Builds the async runtime ([`Runner::threads`]; else in Lambda mode
    /// from the memory size: one thread below 1,769 MB, one per full vCPU
    /// above, one per CPU under Managed Instances; in worker mode one per
    /// CPU available), runs `handler` on it and turns the result into the
    /// exit status, printing any error on stderr: the whole `main` of a
    /// program.
    ///
    /// One thread runs a current-thread runtime: no hand-offs between
    /// threads, the least CPU per message.
    pub fn main<H: Handler>(self, handler: H) -> ExitCode {
        self.main_with(|| async { Ok(handler) })
    }

    /// [`Runner::main`] with an init step, as [`Runner::run_with`].
    pub fn main_with<H, F, Fut>(self, init: F) -> ExitCode
    where
        H: Handler,
        F: FnOnce() -> Fut,
        Fut: Future<Output = anyhow::Result<H>>,
    {
        // Lambda: from the memory size when `--threads` is not given.
        let threads = self
            .settings
            .threads
            .or_else(|| match self.selected_mode() {
                Mode::Lambda => lambda_threads_from_env(),
                Mode::Worker => None,
            });
        let result = build_runtime(threads)
            .map_err(Error::Runtime)
            .and_then(|runtime| runtime.block_on(self.run_with(init)));
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("sqsrt: {error}");
                error.exit_code()
            }
        }
    }

    /// Installs the panic hook and the JSON log lines when asked; the
    /// problem, when the log filter is invalid.
    fn start_logging(&self, lambda_level: Option<&str>) -> Option<ConfigProblem> {
        if self.panic_hook {
            logging::log_panics();
        }
        if !self.logging {
            return None;
        }
        let rust_log = std::env::var("RUST_LOG").ok();
        let filter = logging::resolve_filter(
            self.settings.log_level.as_deref(),
            rust_log.as_deref(),
            lambda_level,
        );
        logging::init(&filter).err().map(|e| {
            ConfigProblem(format!(
                "{e} (set by --log-level or SQSRT_LOG_LEVEL, else RUST_LOG)"
            ))
        })
    }

    /// Lambda (`lambda`): built at the first call, each call bounded
    /// (`sqsrt_sqs::client::lambda_bounds`); your own config or client
    /// keeps its own timeouts.
    async fn queue_client(&self, lambda: bool) -> SqsClient {
        match &self.sqs {
            Sqs::FromEnv if lambda => SqsClient::from_env_lazy_bounded(),
            Sqs::FromEnv => SqsClient::from_env().await,
            Sqs::Config(config) => SqsClient::new(aws_sdk_sqs::Client::new(config)),
            Sqs::Client(client) => SqsClient::new(client.clone()),
        }
    }

    async fn run_lambda<H, F, Fut>(self, init: F) -> Result<(), Error>
    where
        H: Handler,
        F: FnOnce() -> Fut,
        Fut: Future<Output = anyhow::Result<H>>,
    {
        let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
        let mut problems: Vec<ConfigProblem> = self
            .start_logging(lambda_level.as_deref())
            .into_iter()
            .collect();
        problems.extend(lambda_environment_problems(|name| std::env::var(name).ok()));
        let checked = self.settings.validate_lambda();
        problems.extend(checked.as_ref().err().cloned().unwrap_or_default());
        let config = match checked {
            Ok(config) if problems.is_empty() => {
                let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
                config.emf(
                    self.settings
                        .emf_namespace
                        .as_ref()
                        .map(|ns| sqsrt_lambda::Emf::new(ns, function)),
                )
            }
            _ => {
                let error = Error::Config(problems);
                report_lambda_init_error("sqsrt.InvalidConfiguration", &error).await;
                return Err(error);
            }
        };
        let handler = match init().await {
            Ok(handler) => handler,
            Err(error) => {
                let error = Error::init(error);
                tracing::error!(error = %error, "Handler init failed; exiting.");
                report_lambda_init_error("sqsrt.InitError", &error).await;
                return Err(error);
            }
        };
        let engine = Engine::new(handler, self.settings.engine());
        let queue = Arc::new(self.queue_client(true).await);
        tracing::info!(
            mode = "lambda",
            version = env!("CARGO_PKG_VERSION"),
            threads = tokio::runtime::Handle::current().metrics().num_workers(),
            max_in_flight = self.settings.max_in_flight,
            "sqsrt started."
        );
        SqsLambda::new(engine, config, queue)
            .run()
            .await
            .map_err(Error::Lambda)
    }

    async fn run_worker<H, F, Fut>(self, init: F) -> Result<(), Error>
    where
        H: Handler,
        F: FnOnce() -> Fut,
        Fut: Future<Output = anyhow::Result<H>>,
    {
        let mut problems: Vec<ConfigProblem> = self.start_logging(None).into_iter().collect();
        let checked = self.settings.validate_worker();
        problems.extend(checked.as_ref().err().cloned().unwrap_or_default());
        let config = match checked {
            Ok(config) if problems.is_empty() => config,
            _ => return Err(Error::Config(problems)),
        };
        let handler = init().await.map_err(|error| {
            let error = Error::init(error);
            tracing::error!(error = %error, "Handler init failed; exiting.");
            error
        })?;
        let engine = Engine::new(handler, self.settings.engine());
        let queue = Arc::new(self.queue_client(false).await);
        let shutdown = if let Some(token) = &self.shutdown {
            token.clone()
        } else {
            let token = CancellationToken::new();
            shutdown_on_signal(token.clone(), self.second_signal_exits);
            token
        };
        match sqsrt_k8s_worker::run(engine, queue, config, shutdown).await {
            Ok(sqsrt_k8s_worker::Exit::Drained) => Ok(()),
            Ok(sqsrt_k8s_worker::Exit::GraceExpired) => Err(Error::ShutdownGraceExpired),
            Err(sqsrt_k8s_worker::WorkerError::Config(problems)) => Err(Error::Config(
                problems.into_iter().map(ConfigProblem).collect(),
            )),
            Err(error) => Err(Error::Worker(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_set_in_code_are_validated_like_flags() {
        let error = Runner::new()
            .worker()
            .max_in_flight(0)
            .heartbeat(Duration::from_secs(30))
            .visibility_timeout(Duration::from_secs(30))
            .validate()
            .unwrap_err();
        let text = error.to_string();
        for name in [
            "SQSRT_MAX_IN_FLIGHT",
            "SQSRT_QUEUE_URL",
            "SQSRT_HEARTBEAT_SECS",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(error.exit_code(), ExitCode::from(2));
        assert!(
            Runner::new()
                .worker()
                .queue_url("http://q")
                .validate()
                .is_ok()
        );
        assert!(Runner::new().lambda().validate().is_ok());
    }

    #[tokio::test]
    async fn a_failed_init_is_returned_with_its_chain_before_anything_starts() {
        let result = Runner::new()
            .worker()
            .queue_url("http://127.0.0.1:9/unreachable")
            .logging(false)
            .panic_hook(false)
            .shutdown(CancellationToken::new())
            .run_with(|| async {
                let missing = std::fs::read("/nonexistent/sqsrt-inventory.toml");
                let config = anyhow::Context::context(missing, "reading the inventory config")?;
                Ok(sqsrt_core::handler_fn(move |_m, _ctx| {
                    let _ = config.len();
                    async { Ok::<_, sqsrt_core::HandlerError>(()) }
                }))
            })
            .await;
        match result {
            Err(Error::Init { reason, .. }) => {
                assert!(
                    reason.starts_with("reading the inventory config: No such file or directory"),
                    "{reason}"
                );
            }
            other => panic!("expected an init error, got {other:?}"),
        }
    }
}
