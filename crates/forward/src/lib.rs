//! sqsrt's forwarders: built-in handlers that hand each message to another
//! system, for teams that write no Rust.
//!
//! - [`http`]: each message one `POST` to an app in any language (the
//!   sidecar pattern), its answer mapped to the message's outcome.
//! - `kafka` (feature `kafka`): each message produced to a Kafka topic by an
//!   idempotent producer, a success once the broker acknowledged it.
//!
//! Both have a circuit breaker ([`sqsrt_core::SinkBreaker`]): while their
//! downstream is down, messages wait instead of spending receive counts.
//!
//! They are ordinary [`sqsrt_core::Handler`]s: backoff, the dead-letter
//! queue with reasons, FIFO order, tenants and drain come from the runtime
//! around them, in both modes.

pub mod http;

#[cfg(feature = "kafka")]
pub mod kafka;

pub use http::{HttpConfig, HttpConfigError, HttpSink};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaConfig, KafkaConfigError, KafkaSasl, KafkaSink, KafkaTls, SaslMechanism};
