//! The [`Handler`] trait users implement, its [`Context`] and its errors.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::message::Message;

/// Processes one message. Implement it with `async fn`:
///
/// ```
/// use sqsrt_core::{Context, Handler, HandlerError, Message};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     async fn handle(&self, message: Message, _ctx: Context) -> Result<(), HandlerError> {
///         if message.body.is_empty() {
///             return Err(HandlerError::permanent("empty body"));
///         }
///         Ok(())
///     }
/// }
/// ```
///
/// A handler that panics or overruns its timeout is a retryable failure; one
/// instance is shared by every message, so it must be `Send + Sync`.
pub trait Handler: Send + Sync + 'static {
    /// Handles one message. `Ok(())` settles it (deleted, or not listed in
    /// Lambda's response); an error says whether to retry or give up.
    fn handle(
        &self,
        message: Message,
        ctx: Context,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// What a handler knows besides its message: when it must be done, and a
/// signal that fires when its work is being abandoned. A handler that
/// ignores both is still correct.
#[derive(Debug, Clone)]
pub struct Context {
    deadline: Instant,
    /// Shared by the messages of a batch: cloning an `Arc` is one atomic
    /// add, cloning and dropping a `CancellationToken` locks its node twice
    /// (per message, in a 10,000-record batch).
    cancellation: Arc<CancellationToken>,
}

impl Context {
    /// A context with the given deadline and cancellation signal.
    #[must_use]
    pub fn new(deadline: Instant, cancellation: CancellationToken) -> Self {
        Self::shared(deadline, Arc::new(cancellation))
    }

    /// A context whose cancellation signal is shared with others.
    pub(crate) fn shared(deadline: Instant, cancellation: Arc<CancellationToken>) -> Self {
        Self {
            deadline,
            cancellation,
        }
    }

    /// When this message must be done: its handler timeout, or in Lambda mode
    /// the invocation deadline minus the margin, whichever is sooner.
    #[must_use]
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left until [`Context::deadline`] (zero when past).
    #[must_use]
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Fires when the work is abandoned (Lambda deadline reached, or the
    /// worker's shutdown grace ran out). Watch it to stop early.
    #[must_use]
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancellation
    }
}

/// Why a handler did not succeed, classed by what happens next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Try again later: the message returns after `delay`, or after the
    /// retry policy's backoff when `delay` is `None`.
    #[error("retryable failure: {reason}")]
    Retry {
        /// What went wrong, for the logs.
        reason: String,
        /// How long to wait before the next attempt, if the handler knows.
        delay: Option<Duration>,
    },
    /// Never going to work: dead-lettered when a DLQ is configured.
    #[error("permanent failure: {reason}")]
    Permanent {
        /// What went wrong; sent along as `sqsrt.reason` to the DLQ.
        reason: String,
    },
}

impl HandlerError {
    /// A retryable failure with the retry policy's backoff.
    pub fn retry(reason: impl fmt::Display) -> Self {
        Self::Retry {
            reason: reason.to_string(),
            delay: None,
        }
    }

    /// A retryable failure that should come back after `delay`.
    pub fn retry_after(reason: impl fmt::Display, delay: Duration) -> Self {
        Self::Retry {
            reason: reason.to_string(),
            delay: Some(delay),
        }
    }

    /// A permanent failure.
    pub fn permanent(reason: impl fmt::Display) -> Self {
        Self::Permanent {
            reason: reason.to_string(),
        }
    }
}

/// Decodes a message body as JSON into `T`. A body that does not decode is a
/// permanent failure whose reason names the path of the offending field
/// (`body does not decode at .items[2].qty: invalid type: ...`).
///
/// # Errors
///
/// [`HandlerError::Permanent`] when the body is not valid JSON for `T`.
pub fn decode_json<T: DeserializeOwned>(message: &Message) -> Result<T, HandlerError> {
    let mut de = serde_json::Deserializer::from_str(&message.body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        HandlerError::permanent(format!(
            "body does not decode at {}: {}",
            e.path(),
            e.inner()
        ))
    })?;
    de.end()
        .map_err(|e| HandlerError::permanent(format!("body does not decode: {e}")))?;
    Ok(value)
}

/// A [`Handler`] made from an async closure over the owned message; see
/// [`handler_fn`].
#[derive(Debug, Clone)]
pub struct HandlerFn<F> {
    f: F,
}

/// Wraps `f(message, ctx)` as a [`Handler`].
///
/// ```
/// use sqsrt_core::{handler_fn, HandlerError, Message, Context};
///
/// let handler = handler_fn(|message: Message, _ctx: Context| async move {
///     println!("{}", message.body);
///     Ok::<(), HandlerError>(())
/// });
/// # let _ = handler;
/// ```
pub fn handler_fn<F, Fut>(f: F) -> HandlerFn<F>
where
    F: Fn(Message, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send,
{
    HandlerFn { f }
}

impl<F, Fut> Handler for HandlerFn<F>
where
    F: Fn(Message, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send,
{
    fn handle(
        &self,
        message: Message,
        ctx: Context,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        (self.f)(message, ctx)
    }
}

/// A typed [`Handler`]: the body is decoded as JSON into `T` first, and a body
/// that does not decode is a permanent failure naming the serde error path;
/// see [`json_fn`].
pub struct JsonFn<T, F> {
    f: F,
    _body: PhantomData<fn() -> T>,
}

impl<T, F> fmt::Debug for JsonFn<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonFn")
            .field("body", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// Wraps `f(body, message, ctx)` as a [`Handler`] whose body is decoded as
/// JSON into `T`.
///
/// ```
/// use serde::Deserialize;
/// use sqsrt_core::{json_fn, Context, HandlerError, Message};
///
/// #[derive(Deserialize)]
/// struct Order { id: u64, qty: u32 }
///
/// let handler = json_fn(|order: Order, _message: Message, _ctx: Context| async move {
///     if order.qty == 0 {
///         return Err(HandlerError::permanent(format!("order {} has no items", order.id)));
///     }
///     Ok(())
/// });
/// # let _ = handler;
/// ```
pub fn json_fn<T, F, Fut>(f: F) -> JsonFn<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T, Message, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send,
{
    JsonFn {
        f,
        _body: PhantomData,
    }
}

impl<T, F, Fut> Handler for JsonFn<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T, Message, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send,
{
    async fn handle(&self, message: Message, ctx: Context) -> Result<(), HandlerError> {
        let body = decode_json::<T>(&message)?;
        (self.f)(body, message, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // fields exist to be decoded
    struct Order {
        id: u64,
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // fields exist to be decoded
    struct Item {
        qty: u32,
    }

    fn reason(body: &str) -> String {
        match decode_json::<Order>(&Message::new("m", body)) {
            Err(HandlerError::Permanent { reason }) => reason,
            other => panic!("expected a permanent failure, got {other:?}"),
        }
    }

    #[test]
    fn undecodable_body_is_permanent_and_names_the_field_path() {
        let r = reason(r#"{"id": 1, "items": [{"qty": 1}, {"qty": "two"}]}"#);
        assert!(
            r.starts_with("body does not decode at items[1].qty: invalid type: string"),
            "{r}"
        );
    }

    #[test]
    fn missing_field_and_trailing_garbage_are_named() {
        assert!(reason(r#"{"items": []}"#).contains("missing field `id`"));
        assert!(reason(r#"{"id": 1, "items": []} x"#).contains("trailing characters"));
        let r = reason("not json");
        assert!(r.contains("expected"), "{r}");
    }

    #[test]
    fn floats_decode_correctly_rounded() {
        // Found by fuzzing (fuzz/, typed_body): without serde_json's
        // `float_roundtrip`, a long mantissa decoded one ULP off, so a value
        // did not survive encode + decode.
        #[derive(Deserialize)]
        struct Priced {
            price: f64,
        }
        let text = "9555555555555555555555555555555555555555555555555555555.5";
        let body = format!(r#"{{"price": {text}}}"#);
        let price = decode_json::<Priced>(&Message::new("m", body))
            .unwrap()
            .price;
        // Rust's own parser rounds correctly; compared bit for bit.
        assert_eq!(price.to_bits(), text.parse::<f64>().unwrap().to_bits());
        let again = format!(r#"{{"price": {price}}}"#);
        let back = decode_json::<Priced>(&Message::new("m", again))
            .unwrap()
            .price;
        assert_eq!(back.to_bits(), price.to_bits());
    }

    #[tokio::test]
    async fn json_fn_decodes_before_calling_the_closure() {
        let handler = json_fn(|order: Order, _m: Message, _ctx: Context| async move {
            if order.items.is_empty() {
                Err(HandlerError::permanent("no items"))
            } else {
                Ok(())
            }
        });
        let ctx = Context::new(Instant::now(), CancellationToken::new());
        let ok = handler
            .handle(
                Message::new("1", r#"{"id":1,"items":[{"qty":2}]}"#),
                ctx.clone(),
            )
            .await;
        assert_eq!(ok, Ok(()));
        let empty = handler
            .handle(Message::new("2", r#"{"id":1,"items":[]}"#), ctx.clone())
            .await;
        assert_eq!(empty, Err(HandlerError::permanent("no items")));
        let bad = handler.handle(Message::new("3", "42"), ctx).await;
        assert!(
            matches!(&bad, Err(HandlerError::Permanent { reason }) if reason.contains("at .: invalid type: integer")),
            "{bad:?}"
        );
    }
}
