//! sqsrt's forwarders: built-in handlers that hand each message to another
//! system, for teams that write no Rust.
//!
//! - [`http`]: each message one `POST` to an app in any language (the
//!   sidecar pattern), its answer mapped to the message's outcome.
//!
//! They are ordinary [`sqsrt_core::Handler`]s: backoff, the dead-letter
//! queue with reasons, FIFO order, tenants and drain come from the runtime
//! around them, in both modes.

pub mod http;

pub use http::{HttpConfig, HttpConfigError, HttpSink};
