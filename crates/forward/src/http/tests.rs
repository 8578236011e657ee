use std::convert::Infallible;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sqsrt_core::MessageAttribute;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::*;

fn context() -> Context {
    Context::new(
        tokio::time::Instant::now() + Duration::from_secs(60),
        CancellationToken::new(),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ASCII"))
}

#[test]
fn headers_carry_the_message_and_its_attributes() {
    let sent = SystemTime::UNIX_EPOCH + Duration::from_millis(1_545_082_649_183);
    let message = Message::new("m-1", r#"{"order": 7}"#)
        .with_receive_count(3)
        .with_group("tenant-a")
        .with_sent_at(sent)
        .with_message_attributes(
            [
                ("Color", MessageAttribute::string("blue")),
                ("color", MessageAttribute::string("red")),
                ("Count", MessageAttribute::number(12)),
                ("Blob", MessageAttribute::binary(vec![1, 2, 3])),
                ("Note", MessageAttribute::string("line\nbreak")),
                ("Accent", MessageAttribute::string("caf\u{e9}")),
                (
                    "Custom",
                    MessageAttribute::new(
                        "String.ext",
                        sqsrt_core::AttributeValue::String("x".into()),
                    ),
                ),
            ]
            .into_iter()
            .collect(),
        );
    let (headers, skipped) = headers_of(&message).expect("headers");
    assert_eq!(header(&headers, "Sqsrt-Message-Id"), Some("m-1"));
    assert_eq!(header(&headers, "sqsrt-receive-count"), Some("3"));
    assert_eq!(header(&headers, "sqsrt-group-id"), Some("tenant-a"));
    assert_eq!(header(&headers, "sqsrt-sent-at"), Some("1545082649183"));
    // "Color" < "color" in byte order: the first wins, the second is skipped.
    assert_eq!(header(&headers, "sqsrt-attr-color"), Some("blue"));
    assert_eq!(header(&headers, "sqsrt-attr-count"), Some("12"));
    assert_eq!(header(&headers, "sqsrt-attr-custom"), Some("x"));
    for absent in ["sqsrt-attr-blob", "sqsrt-attr-note"] {
        assert!(headers.get(absent).is_none(), "{absent}");
    }
    // UTF-8 text is a valid header value (RFC 9110's obs-text): sent as its bytes.
    assert_eq!(
        headers.get("sqsrt-attr-accent").map(HeaderValue::as_bytes),
        Some("caf\u{e9}".as_bytes())
    );
    // color (collision), Blob (binary), Note (control character).
    assert_eq!(skipped, 3);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
}

#[test]
fn content_type_is_the_attribute_else_json_else_text() {
    let plain = Message::new("m", "hello");
    let (headers, _) = headers_of(&plain).expect("headers");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(headers.get("sqsrt-group-id").is_none());
    assert!(headers.get("sqsrt-sent-at").is_none());
    let declared = Message::new("m", "<a/>").with_message_attributes(
        [("Content-Type", MessageAttribute::string("application/xml"))]
            .into_iter()
            .collect(),
    );
    let (headers, skipped) = headers_of(&declared).expect("headers");
    assert_eq!(header(&headers, "content-type"), Some("application/xml"));
    assert_eq!(
        header(&headers, "sqsrt-attr-content-type"),
        Some("application/xml")
    );
    assert_eq!(skipped, 0);
    // A content type a header cannot carry: detected from the body instead.
    let bad = Message::new("m", "[1]").with_message_attributes(
        [("content-type", MessageAttribute::string("a\nb"))]
            .into_iter()
            .collect(),
    );
    let (headers, skipped) = headers_of(&bad).expect("headers");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(skipped, 1);
}

#[test]
fn answers_map_to_outcomes() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let outcome = |status: u16, retry_after: Option<&str>| {
        outcome_of(
            StatusCode::from_u16(status).expect("status"),
            retry_after,
            b"nope",
            "http://app",
            now,
        )
    };
    for status in [300, 301, 304, 400, 401, 404, 409, 413, 422, 499] {
        let error = outcome(status, None);
        assert!(error.is_permanent(), "{status}: {error:?}");
        assert_eq!(
            error.reason(),
            format!("HTTP {status} from http://app: nope")
        );
    }
    for status in [408, 429, 500, 502, 503, 504, 599] {
        let error = outcome(status, None);
        assert!(
            matches!(error, HandlerError::Retry { delay: None, .. }),
            "{status}: {error:?}"
        );
        let fault = if status >= 500 {
            SinkFault::ServerError
        } else {
            SinkFault::Throttled
        };
        assert_eq!(error.sink_fault(), Some(fault), "{status}");
    }
    assert_eq!(
        outcome(404, None).sink_fault(),
        None,
        "a rejection is an answer"
    );
    let error = outcome_of(
        StatusCode::TOO_MANY_REQUESTS,
        Some("7"),
        b"",
        "http://app",
        now,
    );
    assert_eq!(
        error,
        HandlerError::retry_after("HTTP 429 from http://app", Duration::from_secs(7))
            .with_sink_fault(SinkFault::Throttled)
    );
    // An unreadable Retry-After: the backoff decides.
    assert!(matches!(
        outcome(503, Some("soon")),
        HandlerError::Retry { delay: None, .. }
    ));
    // Retry-After on a permanent answer changes nothing.
    assert!(outcome(404, Some("7")).is_permanent());
}

#[test]
fn retry_after_reads_seconds_and_dates_capped_at_twelve_hours() {
    let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
    let read = |value: &str| retry_after(value, now);
    assert_eq!(read("120"), Some(Duration::from_secs(120)));
    assert_eq!(read(" 0 "), Some(Duration::ZERO));
    assert_eq!(
        read("Sun, 06 Nov 1994 08:50:07 GMT"),
        Some(Duration::from_secs(30))
    );
    assert_eq!(read("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
    assert_eq!(read("999999"), Some(MAX_VISIBILITY));
    assert_eq!(read("Mon, 07 Nov 1994 08:49:37 GMT"), Some(MAX_VISIBILITY));
    assert_eq!(read("soon"), None);
    assert_eq!(read("-5"), None);
}

#[test]
fn bad_configurations_are_named() {
    let config = |url: &str, secs| HttpConfig {
        url: url.to_owned(),
        timeout: Duration::from_secs(secs),
    };
    for url in ["", "localhost:8080", "ftp://app/", "http://", "/path"] {
        let error = HttpSink::new(config(url, 10)).expect_err(url);
        assert!(
            error.to_string().contains("http:// or https://"),
            "{url}: {error}"
        );
    }
    assert_eq!(
        HttpSink::new(config("http://127.0.0.1:1/", 0)).expect_err("zero"),
        HttpConfigError::Timeout
    );
    assert!(HttpSink::new(config("http://127.0.0.1:1/in", 1)).is_ok());
}

/// What the app saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: String,
}

/// An app on 127.0.0.1 answering by the body's first word: a status, or
/// `slow` (answers 200 after 3 s), or `retry-after` (503 with
/// `Retry-After: 9`); it records each request and counts connections.
struct App {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
}

async fn app() -> App {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/messages", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (seen2, connections2) = (Arc::clone(&seen), Arc::clone(&connections));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            connections2.fetch_add(1, Ordering::SeqCst);
            let seen = Arc::clone(&seen2);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.expect("body").to_bytes();
                        let body = String::from_utf8(body.to_vec()).expect("UTF-8");
                        seen.lock().expect("lock").push(Seen {
                            headers: parts.headers,
                            body: body.clone(),
                        });
                        let word = body.split_whitespace().next().unwrap_or("200").to_owned();
                        let mut response = http::Response::new(Full::new(Bytes::from(format!(
                            "answer to {body}"
                        ))));
                        match word.as_str() {
                            "slow" => tokio::time::sleep(Duration::from_secs(3)).await,
                            "retry-after" => {
                                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                                response
                                    .headers_mut()
                                    .insert(RETRY_AFTER, HeaderValue::from_static("9"));
                            }
                            "long" => {
                                *response.body_mut() = Full::new(Bytes::from("x".repeat(1000)));
                                *response.status_mut() = StatusCode::BAD_REQUEST;
                            }
                            status => {
                                *response.status_mut() =
                                    StatusCode::from_u16(status.parse().unwrap_or(200))
                                        .expect("status");
                            }
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    App {
        url,
        seen,
        connections,
    }
}

fn sink(url: &str, timeout_secs: u64) -> HttpSink {
    HttpSink::new(HttpConfig {
        url: url.to_owned(),
        timeout: Duration::from_secs(timeout_secs),
    })
    .expect("sink")
}

#[tokio::test]
async fn each_message_is_one_post_and_the_answer_decides() {
    let app = app().await;
    let sink = sink(&app.url, 2);
    let forward = |body: &str| {
        let sink = sink.clone();
        let message = Message::new(format!("id-{body}"), body).with_message_attributes(
            [("Kind", MessageAttribute::string("order"))]
                .into_iter()
                .collect(),
        );
        async move { sink.forward(message, &context()).await }
    };
    assert_eq!(forward("200 ok").await, Ok(()));
    assert_eq!(forward("204").await, Ok(()));
    let moved = forward("301").await.expect_err("3xx");
    assert!(moved.is_permanent());
    assert_eq!(
        moved.reason(),
        format!("HTTP 301 from {}: answer to 301", app.url)
    );
    let long = forward("long").await.expect_err("400");
    assert!(long.is_permanent());
    assert_eq!(
        long.reason(),
        format!(
            "HTTP 400 from {}: {}",
            app.url,
            "x".repeat(REASON_BODY_BYTES)
        )
    );
    assert!(matches!(
        forward("500").await,
        Err(HandlerError::Retry { delay: None, .. })
    ));
    assert!(matches!(
        forward("429").await,
        Err(HandlerError::Retry { delay: None, .. })
    ));
    assert_eq!(
        forward("retry-after").await,
        Err(HandlerError::retry_after(
            format!("HTTP 503 from {}: answer to retry-after", app.url),
            Duration::from_secs(9)
        )
        .with_sink_fault(SinkFault::ServerError))
    );
    let slow = forward("slow").await.expect_err("timeout");
    assert!(
        matches!(slow, HandlerError::Retry { .. }) && slow.reason().contains("no answer"),
        "{slow:?}"
    );
    assert_eq!(slow.sink_fault(), Some(SinkFault::Timeout));

    let seen = app.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 8, "one request per message");
    let first = &seen[0];
    assert_eq!(first.body, "200 ok", "the body unchanged");
    assert_eq!(
        header(&first.headers, "sqsrt-message-id"),
        Some("id-200 ok")
    );
    assert_eq!(header(&first.headers, "sqsrt-receive-count"), Some("1"));
    assert_eq!(header(&first.headers, "sqsrt-attr-kind"), Some("order"));
    assert_eq!(
        header(&first.headers, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    // Keep-alive: the quick answers shared a connection (the timed-out
    // exchange's connection is dropped with it).
    assert!(
        app.connections.load(Ordering::SeqCst) <= 2,
        "{} connections for 8 requests",
        app.connections.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_retry_naming_the_url() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    drop(listener);
    let error = sink(&url, 2)
        .forward(Message::new("m", "x"), &context())
        .await
        .expect_err("refused");
    assert!(matches!(error, HandlerError::Retry { delay: None, .. }));
    assert_eq!(error.sink_fault(), Some(SinkFault::Unreachable));
    assert!(
        error.reason().starts_with(&format!("cannot reach {url}:")),
        "{}",
        error.reason()
    );
}

#[tokio::test]
async fn an_abandoned_message_stops_waiting() {
    let app = app().await;
    let ctx = context();
    let cancel = ctx.cancellation().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    let started = std::time::Instant::now();
    let error = sink(&app.url, 30)
        .forward(Message::new("m", "slow"), &ctx)
        .await
        .expect_err("abandoned");
    assert!(error.reason().contains("abandoned"), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
