//! The handlers built into the `sqsrt` binary, chosen with `--handler`.

use std::time::Duration;

use serde::Deserialize;
use sqsrt_core::{Context, Handler, HandlerError, MAX_VISIBILITY, Message, decode_json};
use sqsrt_forward::{HttpConfig, HttpConfigError, HttpSink};
use tracing::info;

/// Bodies longer than this are cut in the `log` handler's record.
const LOGGED_BODY_CHARS: usize = 256;

/// A built-in handler's name, given by `--handler` (the variants' doc comments are its help).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Builtin {
    /// Log each message (body truncated) and succeed.
    Log,
    /// Act as the JSON body says: {"action": "ok" | "fail" | "reject" | "panic" | "sleep", ...}.
    Scripted,
    /// Succeed at once without reading the message: sqsrt's own cost, for benchmarks.
    Noop,
    /// POST each message to --http-url; the app's answer decides (README, Forwarders).
    Http,
    /// Produce each message to --kafka-topic at --kafka-brokers (cargo feature `kafka`).
    Kafka,
}

/// The flags of the `http` handler, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpFlags {
    pub(crate) url: Option<String>,
    pub(crate) timeout_secs: u64,
}

/// The flags of the `kafka` handler, as given (parsed whether or not the
/// binary has the handler, so that one without it names the feature
/// instead of calling the flags unknown).
#[derive(Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct KafkaFlags {
    /// The `kafka` handler's bootstrap brokers, host:port[,host:port...].
    #[arg(long = "kafka-brokers", env = "SQSRT_KAFKA_BROKERS")]
    pub(crate) brokers: Option<String>,
    /// The topic the `kafka` handler produces every message to.
    #[arg(long = "kafka-topic", env = "SQSRT_KAFKA_TOPIC")]
    pub(crate) topic: Option<String>,
    /// The message attribute whose value keys a record when the message has no group id.
    #[arg(long = "kafka-key-attribute", env = "SQSRT_KAFKA_KEY_ATTRIBUTE")]
    pub(crate) key_attribute: Option<String>,
    /// The `kafka` handler's timeout per message, in seconds (until the broker
    /// acknowledged it, the producer's retries included); must be below the handler timeout.
    #[arg(long = "kafka-timeout-secs", env = "SQSRT_KAFKA_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout_secs: u64,
    /// TLS to the brokers (their certificates checked against the Mozilla roots in the binary,
    /// or --kafka-tls-ca-file).
    #[arg(long = "kafka-tls", env = "SQSRT_KAFKA_TLS", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub(crate) tls: bool,
    /// A PEM file of CA certificates for the brokers' TLS (implies --kafka-tls).
    #[arg(long = "kafka-tls-ca-file", env = "SQSRT_KAFKA_TLS_CA_FILE")]
    pub(crate) tls_ca_file: Option<String>,
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (none: no SASL).
    #[arg(long = "kafka-sasl-mechanism", env = "SQSRT_KAFKA_SASL_MECHANISM")]
    pub(crate) sasl_mechanism: Option<String>,
    /// SASL username.
    #[arg(long = "kafka-sasl-username", env = "SQSRT_KAFKA_SASL_USERNAME")]
    pub(crate) sasl_username: Option<String>,
    /// SASL password (prefer the variable: a flag shows in the process list).
    #[arg(
        long = "kafka-sasl-password",
        env = "SQSRT_KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub(crate) sasl_password: Option<String>,
}

impl std::fmt::Debug for KafkaFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaFlags")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("key_attribute", &self.key_attribute)
            .field("timeout_secs", &self.timeout_secs)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .finish_non_exhaustive()
    }
}

impl Builtin {
    /// The handler this name runs, with what it needs; `handler_timeout` is
    /// the per-message timeout the `http` handler's own must stay below.
    ///
    /// # Errors
    ///
    /// A problem with the `http` handler's flags, naming flag and variable.
    pub(crate) fn build(
        self,
        http: &HttpFlags,
        kafka: &KafkaFlags,
        handler_timeout: Duration,
    ) -> Result<BuiltinHandler, String> {
        Ok(match self {
            Self::Log => BuiltinHandler::Log,
            Self::Scripted => BuiltinHandler::Scripted,
            Self::Noop => BuiltinHandler::Noop,
            Self::Http => BuiltinHandler::Http(http_sink(http, handler_timeout)?),
            Self::Kafka => kafka_sink(kafka, handler_timeout)?,
        })
    }
}

#[cfg(not(feature = "kafka"))]
fn kafka_sink(_flags: &KafkaFlags, _handler_timeout: Duration) -> Result<BuiltinHandler, String> {
    Err(
        "--handler kafka needs a sqsrt binary built with the cargo feature `kafka` \
         (this one was built without it; the released binaries and images have it)"
            .to_owned(),
    )
}

#[cfg(feature = "kafka")]
fn kafka_sink(flags: &KafkaFlags, handler_timeout: Duration) -> Result<BuiltinHandler, String> {
    use sqsrt_forward::{KafkaConfig, KafkaConfigError, KafkaSasl, KafkaSink, KafkaTls};

    let required = |value: &Option<String>, flag: &str, var: &str| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("--handler kafka needs {flag} (or {var})"))
    };
    let brokers = required(&flags.brokers, "--kafka-brokers", "SQSRT_KAFKA_BROKERS")?;
    let topic = required(&flags.topic, "--kafka-topic", "SQSRT_KAFKA_TOPIC")?;
    let timeout = Duration::from_secs(flags.timeout_secs);
    if timeout >= handler_timeout {
        return Err(format!(
            "--kafka-timeout-secs ({} s) must be below the handler timeout ({} s, --handler-timeout-secs) \
             (set by --kafka-timeout-secs or SQSRT_KAFKA_TIMEOUT_SECS)",
            flags.timeout_secs,
            handler_timeout.as_secs()
        ));
    }
    let sasl = match flags.sasl_mechanism.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(mechanism) => Some(KafkaSasl {
            mechanism: mechanism.parse().map_err(|e| {
                format!("{e} (set by --kafka-sasl-mechanism or SQSRT_KAFKA_SASL_MECHANISM)")
            })?,
            username: required(
                &flags.sasl_username,
                "--kafka-sasl-username",
                "SQSRT_KAFKA_SASL_USERNAME",
            )?,
            password: flags.sasl_password.clone().unwrap_or_default(),
        }),
    };
    let tls = (flags.tls || flags.tls_ca_file.is_some()).then(|| KafkaTls {
        ca_file: flags.tls_ca_file.clone(),
    });
    KafkaSink::new(KafkaConfig {
        brokers,
        topic,
        key_attribute: flags.key_attribute.clone(),
        timeout,
        tls,
        sasl,
    })
    .map(BuiltinHandler::Kafka)
    .map_err(|e| match e {
        KafkaConfigError::Brokers { .. } => {
            format!("{e} (set by --kafka-brokers or SQSRT_KAFKA_BROKERS)")
        }
        KafkaConfigError::Topic { .. } => {
            format!("{e} (set by --kafka-topic or SQSRT_KAFKA_TOPIC)")
        }
        KafkaConfigError::Timeout => {
            format!("{e} (set by --kafka-timeout-secs or SQSRT_KAFKA_TIMEOUT_SECS)")
        }
        KafkaConfigError::SaslUsername => {
            format!("{e} (set by --kafka-sasl-username or SQSRT_KAFKA_SASL_USERNAME)")
        }
    })
}

fn http_sink(flags: &HttpFlags, handler_timeout: Duration) -> Result<HttpSink, String> {
    let url = flags.url.as_deref().map(str::trim).unwrap_or_default();
    if url.is_empty() {
        return Err(
            "--handler http needs the app's URL: set --http-url or SQSRT_HTTP_URL".to_owned(),
        );
    }
    let timeout = Duration::from_secs(flags.timeout_secs);
    if timeout >= handler_timeout {
        return Err(format!(
            "--http-timeout-secs ({} s) must be below the handler timeout ({} s, --handler-timeout-secs) \
             (set by --http-timeout-secs or SQSRT_HTTP_TIMEOUT_SECS)",
            flags.timeout_secs,
            handler_timeout.as_secs()
        ));
    }
    HttpSink::new(HttpConfig {
        url: url.to_owned(),
        timeout,
    })
    .map_err(|e| match e {
        HttpConfigError::Timeout => {
            format!("{e} (set by --http-timeout-secs or SQSRT_HTTP_TIMEOUT_SECS)")
        }
        _ => format!("{e} (set by --http-url or SQSRT_HTTP_URL)"),
    })
}

/// A built-in handler, ready to run.
#[derive(Debug, Clone)]
pub(crate) enum BuiltinHandler {
    Log,
    Scripted,
    Noop,
    Http(HttpSink),
    #[cfg(feature = "kafka")]
    Kafka(sqsrt_forward::KafkaSink),
}

impl Handler for BuiltinHandler {
    async fn handle(&self, message: Message, ctx: Context) -> Result<(), HandlerError> {
        match self {
            // Boxed: the forwarders' futures (HTTP client, Kafka producer)
            // are kilobytes, and inline they would size this future for
            // every built-in handler, copied on each move of a message's
            // task (3.5 KB with `kafka`: boxing them took a 10-record
            // `scripted` invocation from 283,720 to 232,259 instructions).
            // One allocation per forwarded message is noise beside its
            // network round trip.
            Self::Http(sink) => Box::pin(sink.forward(message, &ctx)).await,
            #[cfg(feature = "kafka")]
            Self::Kafka(sink) => Box::pin(sink.forward(message, &ctx)).await,
            Self::Log => {
                let body: String = message.body().chars().take(LOGGED_BODY_CHARS).collect();
                info!(
                    message_id = %message.id(),
                    receive_count = message.receive_count(),
                    body_bytes = message.body().len(),
                    body = %body,
                    "Message received."
                );
                Ok(())
            }
            Self::Scripted => scripted(&message, &ctx).await,
            Self::Noop => Ok(()),
        }
    }

    fn metrics(&self) -> Vec<sqsrt_core::HandlerMetric> {
        match self {
            Self::Http(sink) => sink.metrics(),
            #[cfg(feature = "kafka")]
            Self::Kafka(sink) => sink.metrics(),
            _ => Vec::new(),
        }
    }

    fn breaker(&self) -> Option<&sqsrt_core::SinkBreaker> {
        match self {
            Self::Http(sink) => sink.breaker(),
            #[cfg(feature = "kafka")]
            Self::Kafka(sink) => sink.breaker(),
            _ => None,
        }
    }
}

/// The `scripted` handler's instructions.
#[derive(Debug, Deserialize)]
struct Script {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    retry_after_secs: Option<u64>,
    #[serde(default)]
    times: Option<u32>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    ms: Option<u64>,
}

/// `{"action":"ok"}` or no action: success. `"fail"`: retryable, optional
/// `retry_after_secs` (capped at 43,200) and `times` (fail only while the
/// receive count is at most `times`). `"reject"`: permanent, with `reason`
/// (default `rejected`). `"panic"`: panics. `"sleep"`: sleeps `ms` then
/// succeeds (stops early, as a retry, if the work is abandoned).
async fn scripted(message: &Message, ctx: &Context) -> Result<(), HandlerError> {
    if !message.body().trim_start().starts_with('{') {
        return Err(HandlerError::permanent(
            "scripted: body is not a JSON object",
        ));
    }
    let script: Script = decode_json(message).map_err(|e| {
        if e.is_permanent() {
            HandlerError::permanent(format!("scripted: {}", e.reason()))
        } else {
            e
        }
    })?;
    match script.action.as_deref().unwrap_or("ok") {
        "ok" => Ok(()),
        "fail" => {
            if script
                .times
                .is_some_and(|times| message.receive_count() > times)
            {
                return Ok(());
            }
            let reason = format!("scripted failure (receive {})", message.receive_count());
            Err(match script.retry_after_secs {
                Some(secs) => {
                    HandlerError::retry_after(reason, Duration::from_secs(secs).min(MAX_VISIBILITY))
                }
                None => HandlerError::retry(reason),
            })
        }
        "reject" => Err(HandlerError::permanent(
            script.reason.as_deref().unwrap_or("rejected"),
        )),
        "panic" => panic!("scripted panic in message {}", message.id()),
        "sleep" => {
            let ms = script.ms.unwrap_or(0);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(()),
                () = ctx.cancellation().cancelled() => Err(HandlerError::retry("scripted sleep abandoned")),
            }
        }
        other => Err(HandlerError::permanent(format!(
            "scripted: unknown action {other:?} (expected ok, fail, reject, panic or sleep)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    fn token() -> Context {
        Context::new(
            Instant::now() + Duration::from_secs(60),
            tokio_util::sync::CancellationToken::new(),
        )
    }

    async fn run(body: &str, receive_count: u32) -> Result<(), HandlerError> {
        let m = Message::new("m", body).with_receive_count(receive_count);
        BuiltinHandler::Scripted.handle(m, token()).await
    }

    /// Every message's task holds this future and moves it whole: with the
    /// forwarders' futures inline it was 3,552 bytes (`kafka` on), and
    /// `memcpy` a fifth of a 10-record invocation's instructions.
    #[test]
    fn the_builtin_future_stays_small_with_every_forwarder() {
        let handling = BuiltinHandler::Noop.handle(Message::new("m", "{}"), token());
        let size = std::mem::size_of_val(&handling);
        assert!(
            size <= 1024,
            "the built-in handler's future is {size} bytes: box the large arm"
        );
    }

    #[tokio::test]
    async fn ok_and_no_action_succeed() {
        assert_eq!(run(r#"{"action":"ok"}"#, 1).await, Ok(()));
        assert_eq!(run(r#"{"order": 7}"#, 1).await, Ok(()));
    }

    #[tokio::test]
    async fn fail_is_retryable_with_capped_delay_and_recovers_after_times() {
        assert_eq!(
            run(r#"{"action":"fail","retry_after_secs":99999}"#, 1).await,
            Err(HandlerError::retry_after(
                "scripted failure (receive 1)",
                MAX_VISIBILITY
            ))
        );
        assert!(matches!(
            run(r#"{"action":"fail","times":2}"#, 2).await,
            Err(HandlerError::Retry { delay: None, .. })
        ));
        assert_eq!(run(r#"{"action":"fail","times":2}"#, 3).await, Ok(()));
    }

    #[tokio::test]
    async fn reject_is_permanent_with_reason() {
        assert_eq!(
            run(r#"{"action":"reject"}"#, 1).await,
            Err(HandlerError::permanent("rejected"))
        );
        assert_eq!(
            run(r#"{"action":"reject","reason":"no stock"}"#, 1).await,
            Err(HandlerError::permanent("no stock"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_sleeps_then_succeeds() {
        let start = Instant::now();
        assert_eq!(run(r#"{"action":"sleep","ms":1500}"#, 1).await, Ok(()));
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn bad_bodies_are_permanent_and_name_the_problem() {
        let reason = |r: Result<(), HandlerError>| match r {
            Err(e) if e.is_permanent() => e.reason().to_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(run("[1,2]", 1).await),
            "scripted: body is not a JSON object"
        );
        assert_eq!(
            reason(run("hello", 1).await),
            "scripted: body is not a JSON object"
        );
        assert!(reason(run(r#"{"action":"jump"}"#, 1).await).contains(r#"unknown action "jump""#));
        let wrong_type = reason(run(r#"{"action":"sleep","ms":"x"}"#, 1).await);
        assert!(
            wrong_type.starts_with("scripted: body does not decode at ms: invalid type: string"),
            "{wrong_type}"
        );
    }

    #[tokio::test]
    async fn panic_panics() {
        let joined = tokio::spawn(run(r#"{"action":"panic"}"#, 1)).await;
        assert!(joined.unwrap_err().is_panic());
    }
}
