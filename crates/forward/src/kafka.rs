//! `--handler kafka`: each message produced to one Kafka topic by an
//! idempotent producer (`acks=all`), a success only once the broker
//! acknowledged it.
//!
//! The record: the body as its value, unchanged; as its key the message
//! group id, else the value of the message attribute named by
//! `--kafka-key-attribute`, else none (a FIFO queue's groups keep their
//! order in the topic: one key, one partition, one message of a group at a
//! time); as headers `sqsrt-message-id` and each `String` or `Number`
//! message attribute (`Binary` ones are skipped and counted).
//!
//! Outcomes: a record larger than the producer or the topic accepts is a
//! permanent failure naming the sizes; the rest retry. A record not
//! acknowledged within `--kafka-timeout-secs` may still be written: the
//! producer keeps delivering it (up to [`DELIVERY_TIMEOUT`]) and the
//! message's next attempt in this process awaits that same record instead
//! of writing it again. Delivery is at least once all the same: a message
//! whose record was written but whose acknowledgement never came (the
//! process died, the message went to another consumer) is produced again.
//! Records produced for a message on its second or later receive are
//! counted (`sqsrt_kafka_redelivered_total`): those are the possible
//! duplicates.
//!
//! The sink has a circuit breaker ([`sqsrt_core::SinkBreaker`]): a broker
//! that cannot be reached (refused, reset, unavailable, a delivery that
//! timed out after the producer's own retries) is
//! [`SinkFault::Unreachable`]; a request timeout or an acknowledgement that
//! did not come in time is [`SinkFault::Timeout`].
//!
//! The client is `krafka`: pure Rust (the static musl build needs no C
//! toolchain beyond `ring`, which the binary already has), its producer
//! idempotent by default, with SASL (PLAIN, SCRAM) and TLS. `rskafka` has
//! no idempotent producer; `rdkafka` links librdkafka, a C library.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use krafka::auth::{AuthConfig, TlsConfig};
use krafka::error::ErrorCode;
use krafka::producer::{Acks, DeliveryHandle, Producer};
use krafka::{Kafka, KrafkaError, Record};
use sqsrt_core::{Context, Handler, HandlerError, HandlerMetric, Message, SinkBreaker, SinkFault};
use tokio::sync::Mutex;

/// `--kafka-timeout-secs`' default: how long one record may take to be
/// acknowledged, the producer's own retries included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the producer keeps trying to deliver one record (its own
/// retries): longer than one attempt's wait, so that a record whose
/// acknowledgement was late is awaited again, not written again.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// The header naming the SQS message a record came from.
pub const MESSAGE_ID_HEADER: &str = "sqsrt-message-id";

const ATTRIBUTES_SKIPPED: &str = "sqsrt_kafka_attributes_skipped";
const REDELIVERED: &str = "sqsrt_kafka_redelivered";

/// Where and how: the `--kafka-*` flags.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port,host:port`.
    pub brokers: String,
    /// The topic every record goes to.
    pub topic: String,
    /// The message attribute whose value is the key of messages without a
    /// group id.
    pub key_attribute: Option<String>,
    /// How long one record may take to be acknowledged.
    pub timeout: Duration,
    /// TLS to the brokers.
    pub tls: Option<KafkaTls>,
    /// SASL authentication.
    pub sasl: Option<KafkaSasl>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("key_attribute", &self.key_attribute)
            .field("timeout", &self.timeout)
            .field("tls", &self.tls)
            .field(
                "sasl",
                &self.sasl.as_ref().map(|s| (s.mechanism, &s.username)),
            )
            .finish()
    }
}

/// `--kafka-tls`: the brokers' certificates checked against the Mozilla
/// roots bundled in the binary, or against `ca_file` when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTls {
    /// A PEM file of CA certificates (`--kafka-tls-ca-file`).
    pub ca_file: Option<String>,
}

/// `--kafka-sasl-mechanism` and its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaSasl {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// `--kafka-sasl-username`.
    pub username: String,
    /// `--kafka-sasl-password` (better: `SQSRT_KAFKA_SASL_PASSWORD`).
    pub password: String,
}

/// The SASL mechanisms sqsrt offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `PLAIN` (use it over TLS).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl std::str::FromStr for SaslMechanism {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(Self::Plain),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            _ => Err(format!(
                "{text:?} is not a SASL mechanism sqsrt offers (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
            )),
        }
    }
}

/// Why a [`KafkaConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaConfigError {
    /// No broker, or one that is not `host:port`.
    #[error("{brokers:?} is not a list of host:port brokers")]
    Brokers {
        /// The list as given.
        brokers: String,
    },
    /// An empty topic name or one Kafka refuses.
    #[error(
        "{topic:?} is not a Kafka topic name (1 to 249 of a-z, A-Z, 0-9, '.', '_', '-'; not '.' or '..')"
    )]
    Topic {
        /// The name as given.
        topic: String,
    },
    /// A zero timeout.
    #[error("the timeout must be at least one second")]
    Timeout,
    /// SASL without a username.
    #[error("SASL needs a username")]
    SaslUsername,
}

/// The `kafka` handler: see the [module](self).
#[derive(Clone)]
pub struct KafkaSink {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    /// Connected on the first message (a broker down at start-up is an
    /// outage like any other, not a start-up failure), again after a fatal
    /// error.
    producer: Mutex<Option<Arc<Producer>>>,
    /// Records written whose acknowledgement did not come in time, by
    /// message id: the next attempt awaits them instead of writing again.
    pending: std::sync::Mutex<HashMap<String, (std::time::Instant, DeliveryHandle)>>,
    skipped: AtomicU64,
    redelivered: AtomicU64,
    breaker: SinkBreaker,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// A sink for `config`, checked; nothing is contacted.
    ///
    /// # Errors
    ///
    /// [`KafkaConfigError`], naming what is wrong.
    pub fn new(config: KafkaConfig) -> Result<Self, KafkaConfigError> {
        let brokers_ok = !config.brokers.trim().is_empty()
            && config.brokers.split(',').all(|broker| {
                broker
                    .trim()
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            });
        if !brokers_ok {
            return Err(KafkaConfigError::Brokers {
                brokers: config.brokers,
            });
        }
        let topic = &config.topic;
        let topic_ok = !topic.is_empty()
            && topic.len() <= 249
            && topic != "."
            && topic != ".."
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !topic_ok {
            return Err(KafkaConfigError::Topic {
                topic: config.topic,
            });
        }
        if config.timeout < Duration::from_secs(1) {
            return Err(KafkaConfigError::Timeout);
        }
        if config.sasl.as_ref().is_some_and(|s| s.username.is_empty()) {
            return Err(KafkaConfigError::SaslUsername);
        }
        let breaker = SinkBreaker::new(format!("Kafka at {}", config.brokers));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                producer: Mutex::new(None),
                pending: std::sync::Mutex::default(),
                skipped: AtomicU64::new(0),
                redelivered: AtomicU64::new(0),
                breaker,
            }),
        })
    }

    /// Produces `message` and waits for the broker's acknowledgement (module
    /// docs). Stops waiting, as a retry, when `ctx` says the work is
    /// abandoned (the record may still be written: at least once).
    ///
    /// # Errors
    ///
    /// The message's failure: permanent or retryable, with the reason.
    pub async fn forward(&self, message: Message, ctx: &Context) -> Result<(), HandlerError> {
        let inner = &self.inner;
        let id = message.id().to_owned();
        // Written before and not yet acknowledged: awaited again, not
        // produced twice.
        let mut handle = if let Some(handle) = self.take_pending(&id) {
            handle
        } else {
            let producer = self.producer().await?;
            let redelivered = message.receive_count() > 1;
            let handle = producer
                .enqueue(self.record(message))
                .await
                .map_err(|error| self.failed(&error))?;
            if redelivered {
                inner.redelivered.fetch_add(1, Ordering::Relaxed);
            }
            handle
        };
        let waited = tokio::select! {
            acknowledged = tokio::time::timeout(inner.config.timeout, &mut handle) => acknowledged.ok(),
            () = ctx.cancellation().cancelled() => {
                self.keep_pending(id, handle);
                return Err(HandlerError::retry(format!(
                    "abandoned while waiting for Kafka at {} to acknowledge (the record may be written)",
                    inner.config.brokers
                )));
            }
        };
        match waited {
            Some(Ok(_)) => Ok(()),
            Some(Err(error)) => Err(self.failed(&error)),
            None => {
                self.keep_pending(id, handle);
                Err(HandlerError::retry(format!(
                    "no acknowledgement from Kafka at {} within {} s (the record may be written: the next attempt awaits it instead of producing it again)",
                    inner.config.brokers,
                    inner.config.timeout.as_secs()
                ))
                .with_sink_fault(SinkFault::Timeout))
            }
        }
    }

    /// The failure `error` means; a fatal one drops the producer, rebuilt
    /// on the next message.
    fn failed(&self, error: &KrafkaError) -> HandlerError {
        if error.is_fatal()
            && let Ok(mut slot) = self.inner.producer.try_lock()
        {
            slot.take();
        }
        failure(error, &self.inner.config)
    }

    /// A record of `message_id` written but not acknowledged in time.
    fn take_pending(&self, message_id: &str) -> Option<DeliveryHandle> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(message_id)
            .map(|(_, handle)| handle)
    }

    /// Keeps `handle` for the next attempt of `message_id`; drops those
    /// kept longer than the producer's delivery timeout (resolved by then:
    /// the map stays bounded when their messages went to another consumer).
    fn keep_pending(&self, message_id: String, handle: DeliveryHandle) {
        let now = std::time::Instant::now();
        let mut pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.retain(|_, (since, _)| now.duration_since(*since) < DELIVERY_TIMEOUT);
        pending.insert(message_id, (now, handle));
    }

    /// The producer, connected first if need be.
    async fn producer(&self) -> Result<Arc<Producer>, HandlerError> {
        let mut slot = self.inner.producer.lock().await;
        if let Some(producer) = slot.as_ref() {
            return Ok(Arc::clone(producer));
        }
        let config = &self.inner.config;
        let producer =
            Arc::new(connect(config).await.map_err(|error| {
                failure(&error, config).with_sink_fault(SinkFault::Unreachable)
            })?);
        *slot = Some(Arc::clone(&producer));
        Ok(producer)
    }

    fn record(&self, message: Message) -> Record {
        let config = &self.inner.config;
        let key = message.group_id().map(str::to_owned).or_else(|| {
            let name = config.key_attribute.as_deref()?;
            Some(message.message_attributes().get(name)?.as_str()?.to_owned())
        });
        let mut headers: Vec<(String, String)> =
            Vec::with_capacity(1 + message.message_attributes().len());
        headers.push((MESSAGE_ID_HEADER.to_owned(), message.id().to_owned()));
        let mut skipped = 0;
        for (name, attribute) in message.message_attributes().iter() {
            match attribute.as_str() {
                Some(value) => headers.push((name.to_owned(), value.to_owned())),
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            self.inner.skipped.fetch_add(skipped, Ordering::Relaxed);
        }
        let mut record = Record::new(config.topic.clone(), message.into_body());
        if let Some(key) = key {
            record = record.key(key);
        }
        for (name, value) in headers {
            record = record.header(name, value);
        }
        record
    }
}

/// Connects and builds the idempotent producer.
async fn connect(config: &KafkaConfig) -> Result<Producer, KrafkaError> {
    let mut builder = Kafka::builder(config.brokers.clone())
        .client_id("sqsrt")
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .request_timeout(config.timeout);
    if let Some(security) = security(config) {
        builder = builder.security(security);
    }
    let kafka = builder.connect().await?;
    kafka
        .producer()
        .acks(Acks::All)
        .idempotent(true)
        // Each message waits for its own acknowledgement, so a linger is
        // paid once per round of --max-in-flight messages (5 ms: 220 ms of
        // wall for 1,000 records at 32 in flight); without it, what queues
        // while up to five requests per broker are in flight still goes
        // out as one batch.
        .linger(Duration::ZERO)
        .delivery_timeout(DELIVERY_TIMEOUT)
        .max_block(config.timeout)
        .build()
        .await
}

fn security(config: &KafkaConfig) -> Option<AuthConfig> {
    let tls = config.tls.as_ref().map(|tls| match &tls.ca_file {
        Some(file) => TlsConfig::new().with_ca_cert(file.clone()),
        None => TlsConfig::new(),
    });
    let sasl = config.sasl.as_ref().map(|sasl| {
        let (user, password) = (sasl.username.clone(), sasl.password.clone());
        match sasl.mechanism {
            SaslMechanism::Plain => AuthConfig::sasl_plain(user, password),
            SaslMechanism::ScramSha256 => AuthConfig::sasl_scram_sha256(user, password),
            SaslMechanism::ScramSha512 => AuthConfig::sasl_scram_sha512(user, password),
        }
    });
    match (sasl, tls) {
        (Some(sasl), Some(tls)) => Some(sasl.with_tls(tls)),
        (Some(sasl), None) => Some(sasl),
        (None, Some(tls)) => Some(AuthConfig::ssl(tls)),
        (None, None) => None,
    }
}

/// The failure a producer error means (module docs).
fn failure(error: &KrafkaError, config: &KafkaConfig) -> HandlerError {
    let reason = format!(
        "Kafka at {} topic {}: {error}",
        config.brokers, config.topic
    );
    match error {
        KrafkaError::Broker {
            code: ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge,
            ..
        } => HandlerError::permanent(format!(
            "the record is larger than the topic accepts: {reason}"
        )),
        // The producer's own size check, before anything is sent.
        KrafkaError::Config { message } if message.starts_with("record size") => {
            HandlerError::permanent(format!("the record is too large: {reason}"))
        }
        KrafkaError::Network(_) | KrafkaError::DeliveryTimeout { .. } => {
            HandlerError::retry(reason).with_sink_fault(SinkFault::Unreachable)
        }
        KrafkaError::Timeout { .. } => {
            HandlerError::retry(reason).with_sink_fault(SinkFault::Timeout)
        }
        KrafkaError::Broker { code, .. } if code.is_retriable() => {
            HandlerError::retry(reason).with_sink_fault(SinkFault::Unreachable)
        }
        _ => HandlerError::retry(reason),
    }
}

impl Handler for KafkaSink {
    async fn handle(&self, message: Message, ctx: Context) -> Result<(), HandlerError> {
        self.forward(message, &ctx).await
    }

    /// `sqsrt_kafka_attributes_skipped_total`,
    /// `sqsrt_kafka_redelivered_total` and the breaker's figures.
    fn metrics(&self) -> Vec<HandlerMetric> {
        let mut metrics = vec![
            HandlerMetric::counter(
                ATTRIBUTES_SKIPPED,
                "Binary message attributes the kafka handler left out of record headers",
                self.inner.skipped.load(Ordering::Relaxed),
            ),
            HandlerMetric::counter(
                REDELIVERED,
                "Records produced for a message on its second or later receive: possible duplicates",
                self.inner.redelivered.load(Ordering::Relaxed),
            ),
        ];
        metrics.extend(self.inner.breaker.metrics());
        metrics
    }

    fn breaker(&self) -> Option<&SinkBreaker> {
        Some(&self.inner.breaker)
    }
}

#[cfg(test)]
mod tests;
