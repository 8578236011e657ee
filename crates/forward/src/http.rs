//! `--handler http`: each message one `POST` of its body, unchanged, to an
//! app's URL, over one pooled keep-alive client.
//!
//! Headers: `Sqsrt-Message-Id`, `Sqsrt-Receive-Count`, `Sqsrt-Group-Id`
//! (when the message has one), `Sqsrt-Sent-At` (epoch milliseconds, SQS's
//! `SentTimestamp`) and `Sqsrt-Attr-<name>` for each `String` or `Number`
//! message attribute. HTTP names are case-insensitive: of attributes whose
//! names differ only in case, the first in byte order of the names wins;
//! those, `Binary` attributes, and names or values a header cannot carry
//! (a control character in a value; UTF-8 text is sent as its bytes) are
//! skipped and counted ([`HttpSink::attributes_skipped`]). `Content-Type`: the value of
//! a `String` attribute named `content-type` (any case), else
//! `application/json` when the body is JSON, else `text/plain;
//! charset=utf-8`.
//!
//! The answer decides the outcome ([`outcome_of`]): 2xx is a success; 3xx
//! (redirects are not followed) and 4xx but 408 and 429 are permanent, the
//! status and the first 256 bytes of the answer as the reason (which reaches
//! the dead-letter queue's `sqsrt.reason`); 408, 429, 5xx, no answer within
//! the timeout and connection errors are retried, after `Retry-After`
//! (seconds or an HTTP date, capped at 12 hours) when the app gives one.
//!
//! The sink has a circuit breaker ([`sqsrt_core::SinkBreaker`]): connection
//! errors and timeouts are [`SinkFault::Unreachable`] and
//! [`SinkFault::Timeout`], 5xx [`SinkFault::ServerError`], 408 and 429
//! [`SinkFault::Throttled`].

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_smithy_http_client::Connector;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::HttpConnector as _;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use sqsrt_core::{
    Context, Handler, HandlerError, HandlerMetric, MAX_VISIBILITY, Message, SinkBreaker, SinkFault,
};

/// `--http-timeout-secs`' default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an answer's body a failure's reason quotes.
pub const REASON_BODY_BYTES: usize = 256;

/// A successful answer's body is read up to this (so that its connection
/// goes back to the pool); a longer one is dropped with its connection.
const DRAINED_BODY_BYTES: usize = 64 * 1024;

const MESSAGE_ID: HeaderName = HeaderName::from_static("sqsrt-message-id");
const RECEIVE_COUNT: HeaderName = HeaderName::from_static("sqsrt-receive-count");
const GROUP_ID: HeaderName = HeaderName::from_static("sqsrt-group-id");
const SENT_AT: HeaderName = HeaderName::from_static("sqsrt-sent-at");
/// Prefix of the attribute headers' names.
const ATTRIBUTE_PREFIX: &str = "sqsrt-attr-";

/// Where and how long: `--http-url` and `--http-timeout-secs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// The app's URL, `http://` or `https://`.
    pub url: String,
    /// How long one message's exchange (sending it, reading the answer) may take.
    pub timeout: Duration,
}

/// Why an [`HttpConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpConfigError {
    /// Not an absolute `http://` or `https://` URL.
    #[error("{url:?} is not an http:// or https:// URL with a host")]
    Url {
        /// The URL as given.
        url: String,
    },
    /// A zero timeout.
    #[error("the timeout must be at least one second")]
    Timeout,
    /// `https://` but no CA certificate found on this system.
    #[error(
        "no CA certificates found for {url} ({detail}): install the CA bundle (SSL_CERT_FILE or the system's)"
    )]
    NoCertificates {
        /// The URL as given.
        url: String,
        /// What the loader said.
        detail: String,
    },
}

/// The `http` handler: forwards each message to the app ([`HttpSink::forward`]).
/// Cheap to clone: clones share the client, its connection pool and the
/// skipped-attribute count.
#[derive(Clone)]
pub struct HttpSink {
    inner: Arc<Inner>,
}

struct Inner {
    /// The AWS SDK's own HTTP connector (hyper, rustls on ring, the system
    /// CA bundle): the code the binary already has for SQS, so the
    /// forwarder adds little to it (a hyper client of its own types was
    /// 0.4 MB of the static binary).
    connector: Connector,
    uri: Uri,
    url: String,
    timeout: Duration,
    skipped: AtomicU64,
    /// Opens while the app cannot be reached or answers 5xx to message
    /// after message (`sqsrt_core::sink`).
    breaker: SinkBreaker,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.inner.url)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpSink {
    /// A sink for `config`: the URL checked, the client built (the system's
    /// CA bundle loaded for `https://`). Nothing is contacted.
    ///
    /// # Errors
    ///
    /// [`HttpConfigError`], naming what is wrong.
    pub fn new(config: HttpConfig) -> Result<Self, HttpConfigError> {
        let bad_url = || HttpConfigError::Url {
            url: config.url.clone(),
        };
        let uri: Uri = config.url.trim().parse().map_err(|_| bad_url())?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad_url()),
        };
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad_url());
        }
        if config.timeout.is_zero() {
            return Err(HttpConfigError::Timeout);
        }
        if https {
            // Checked here so that a missing bundle is a start-up error,
            // not a retry per message (the connector loads the same files).
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let detail = found
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(HttpConfigError::NoCertificates {
                    url: config.url,
                    detail: if detail.is_empty() {
                        "none in the usual places".to_owned()
                    } else {
                        detail
                    },
                });
            }
        }
        let connector = Connector::builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build();
        Ok(Self {
            inner: Arc::new(Inner {
                connector,
                uri,
                timeout: config.timeout,
                skipped: AtomicU64::new(0),
                breaker: SinkBreaker::new(config.url.clone()),
                url: config.url,
            }),
        })
    }

    /// Message attributes left out of requests so far (`Binary` ones, names
    /// or values a header cannot carry, names colliding with an earlier one
    /// but for case): `sqsrt_http_attributes_skipped_total` on the worker's
    /// `/metrics` ([`Handler::metrics`]).
    pub fn attributes_skipped(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// Sends `message` to the app and maps the answer (module docs). Stops
    /// early, as a retry, when `ctx` says the work is abandoned.
    ///
    /// # Errors
    ///
    /// The message's failure: permanent or retryable, with the reason.
    pub async fn forward(&self, message: Message, ctx: &Context) -> Result<(), HandlerError> {
        let request = self.request(message)?;
        let inner = &self.inner;
        tokio::select! {
            answer = tokio::time::timeout(inner.timeout, self.exchange(request)) => {
                answer.unwrap_or_else(|_| Err(HandlerError::retry(format!(
                    "no answer from {} within {} s",
                    inner.url,
                    inner.timeout.as_secs_f64()
                )).with_sink_fault(SinkFault::Timeout)))
            }
            () = ctx.cancellation().cancelled() => {
                Err(HandlerError::retry(format!("abandoned while waiting for {}", inner.url)))
            }
        }
    }

    fn request(&self, message: Message) -> Result<HttpRequest, HandlerError> {
        let (headers, skipped) = headers_of(&message)?;
        if skipped > 0 {
            self.inner.skipped.fetch_add(skipped, Ordering::Relaxed);
        }
        let mut request = Request::new(SdkBody::from(message.into_body()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.inner.uri.clone();
        *request.headers_mut() = headers;
        HttpRequest::try_from(request)
            .map_err(|e| HandlerError::permanent(format!("cannot build the request: {e}")))
    }

    async fn exchange(&self, request: HttpRequest) -> Result<(), HandlerError> {
        let url = &self.inner.url;
        let response = self.inner.connector.call(request).await.map_err(|e| {
            HandlerError::retry(format!("cannot reach {url}: {}", error_chain(&e)))
                .with_sink_fault(SinkFault::Unreachable)
        })?;
        let status = StatusCode::from_u16(response.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = response.headers().get("retry-after").map(str::to_owned);
        let body = response.into_body();
        if status.is_success() {
            drain(body).await;
            return Ok(());
        }
        let quoted = first_bytes(body, REASON_BODY_BYTES).await;
        Err(outcome_of(
            status,
            retry_after.as_deref(),
            &quoted,
            url,
            SystemTime::now(),
        ))
    }
}

impl Handler for HttpSink {
    async fn handle(&self, message: Message, ctx: Context) -> Result<(), HandlerError> {
        self.forward(message, &ctx).await
    }

    /// `sqsrt_http_attributes_skipped_total` and the breaker's figures.
    fn metrics(&self) -> Vec<HandlerMetric> {
        let mut metrics = vec![HandlerMetric::counter(
            ATTRIBUTES_SKIPPED,
            "Message attributes the http handler left out of requests (Binary, not a valid header, or a name colliding with another but for case)",
            self.attributes_skipped(),
        )];
        metrics.extend(self.inner.breaker.metrics());
        metrics
    }

    fn breaker(&self) -> Option<&SinkBreaker> {
        Some(&self.inner.breaker)
    }
}

/// The skipped attributes' counter (exported with `_total`).
pub const ATTRIBUTES_SKIPPED: &str = "sqsrt_http_attributes_skipped";

/// A message's request headers, and how many of its attributes were left
/// out. A message id a header cannot carry (SQS ids are UUIDs) is a
/// permanent failure.
fn headers_of(message: &Message) -> Result<(HeaderMap, u64), HandlerError> {
    let attributes = message.message_attributes();
    let mut headers = HeaderMap::with_capacity(5 + attributes.len());
    let id = HeaderValue::from_str(message.id()).map_err(|_| {
        HandlerError::permanent(format!(
            "message id {:?} cannot be sent as a header",
            message.id()
        ))
    })?;
    headers.insert(MESSAGE_ID, id);
    headers.insert(RECEIVE_COUNT, HeaderValue::from(message.receive_count()));
    if let Some(group) = message.group_id() {
        let group = HeaderValue::from_str(group).map_err(|_| {
            HandlerError::permanent(format!("group id {group:?} cannot be sent as a header"))
        })?;
        headers.insert(GROUP_ID, group);
    }
    if let Some(sent_at) = message.sent_at()
        && let Ok(since_epoch) = sent_at.duration_since(SystemTime::UNIX_EPOCH)
    {
        let millis = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
        headers.insert(SENT_AT, HeaderValue::from(millis));
    }
    // In byte order of the names, so that which of two colliding names wins
    // does not depend on the map's order.
    let mut named: Vec<_> = attributes.iter().collect();
    named.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut skipped = 0;
    let mut content_type = None;
    for (name, attribute) in named {
        let Some(text) = attribute.as_str() else {
            skipped += 1;
            continue;
        };
        let value = HeaderValue::from_str(text).ok();
        if content_type.is_none() && name.eq_ignore_ascii_case("content-type") {
            content_type.clone_from(&value);
        }
        let header = HeaderName::from_bytes(format!("{ATTRIBUTE_PREFIX}{name}").as_bytes()).ok();
        match (header, value) {
            (Some(header), Some(value)) if !headers.contains_key(&header) => {
                headers.insert(header, value);
            }
            _ => skipped += 1,
        }
    }
    let content_type = content_type.unwrap_or_else(|| {
        HeaderValue::from_static(
            if serde_json::from_str::<serde::de::IgnoredAny>(message.body()).is_ok() {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            },
        )
    });
    headers.insert(CONTENT_TYPE, content_type);
    Ok((headers, skipped))
}

/// The failure an answer that is not 2xx means: permanent for 3xx and 4xx
/// but 408 and 429, else retryable, after `Retry-After` when there is one.
/// `quoted` is the start of the answer's body, quoted in the reason.
pub fn outcome_of(
    status: StatusCode,
    retry_after_header: Option<&str>,
    quoted: &[u8],
    url: &str,
    now: SystemTime,
) -> HandlerError {
    let text = String::from_utf8_lossy(quoted);
    let text = text.trim();
    let reason = if text.is_empty() {
        format!("HTTP {} from {url}", status.as_u16())
    } else {
        format!("HTTP {} from {url}: {text}", status.as_u16())
    };
    let retryable = status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || !(status.is_redirection() || status.is_client_error());
    if !retryable {
        return HandlerError::permanent(reason);
    }
    let error = match retry_after_header.and_then(|value| retry_after(value, now)) {
        Some(delay) => HandlerError::retry_after(reason, delay),
        None => HandlerError::retry(reason),
    };
    if status.is_server_error() {
        error.with_sink_fault(SinkFault::ServerError)
    } else if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS {
        error.with_sink_fault(SinkFault::Throttled)
    } else {
        error
    }
}

/// A `Retry-After` value as a delay from `now`: whole seconds or an HTTP
/// date (a past date: no wait), at most 12 hours (SQS's longest visibility
/// timeout). `None` when unreadable.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let text = value.trim();
    let delay = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(text)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(delay.min(MAX_VISIBILITY))
}

/// Up to `limit` bytes of `body`, the rest not read.
async fn first_bytes(mut body: SdkBody, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = limit - out.len();
                    out.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    out
}

/// Reads a successful answer's body to its end, so that the connection
/// returns to the pool; a long one is dropped (and its connection closed).
async fn drain(mut body: SdkBody) {
    let mut read = 0;
    while read <= DRAINED_BODY_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, bytes::Bytes::len),
            _ => return,
        }
    }
}

/// An error and its sources, `: `-separated (the connector's own message
/// says little more than "io error").
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

#[cfg(test)]
mod tests;
