//! A local app for the `http` forwarder's end-to-end suites: one route on
//! 127.0.0.1 (port 0) that answers by the body's first word and records
//! every request it gets.
//!
//! Words: `ok` 200; `redirect` 302; `bad` 422 with the body `unknown sku`;
//! `flaky` 500 the first time a message id is seen, then 200; `busy` 429
//! with `Retry-After: 1` the first time, then 200; `slow` sleeps 3 s the first
//! time, then 200; anything else 200.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// One request the app got.
#[derive(Debug, Clone)]
pub struct Request {
    /// When it arrived.
    pub at: Instant,
    /// Its headers (names lowercase).
    pub headers: HashMap<String, String>,
    /// Its body.
    pub body: String,
}

impl Request {
    /// A header's value.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A free address of 127.0.0.1 where nothing listens (connections are
/// refused) until an app starts on it.
///
/// # Errors
///
/// When no port can be had.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The running app.
#[derive(Debug, Clone)]
pub struct HttpApp {
    /// Its URL (`http://127.0.0.1:PORT/messages`).
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl HttpApp {
    /// Starts the app on a free port of 127.0.0.1.
    ///
    /// # Errors
    ///
    /// When it cannot bind.
    pub async fn start() -> anyhow::Result<Self> {
        Self::serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
    }

    /// Starts the app on `addr` (an app coming back where it was down:
    /// [`free_addr`]).
    ///
    /// # Errors
    ///
    /// When it cannot bind.
    pub async fn start_on(addr: SocketAddr) -> anyhow::Result<Self> {
        Self::serve(tokio::net::TcpListener::bind(addr).await?)
    }

    fn serve(listener: tokio::net::TcpListener) -> anyhow::Result<Self> {
        let url = format!("http://{}/messages", listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/messages", post(answer))
            .with_state(Arc::clone(&requests));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, requests })
    }

    /// Every request so far, in arrival order.
    ///
    /// # Panics
    ///
    /// Never: the lock is only held by code that does not panic.
    #[must_use]
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    /// The requests for one message id (`Sqsrt-Message-Id`).
    #[must_use]
    pub fn requests_for(&self, message_id: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.header("sqsrt-message-id") == Some(message_id))
            .collect()
    }
}

async fn answer(
    State(requests): State<Arc<Mutex<Vec<Request>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Request {
        at: Instant::now(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let id = request.header("sqsrt-message-id").unwrap_or("").to_owned();
    let word = request
        .body
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned();
    let first_time = {
        let mut all = requests.lock().expect("lock");
        let seen = all
            .iter()
            .any(|r| r.header("sqsrt-message-id") == Some(id.as_str()));
        all.push(request);
        !seen
    };
    match word.as_str() {
        "redirect" => (StatusCode::FOUND, [("location", "/elsewhere")], "moved").into_response(),
        "bad" => (StatusCode::UNPROCESSABLE_ENTITY, "unknown sku").into_response(),
        "flaky" if first_time => (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response(),
        "busy" if first_time => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "later",
        )
            .into_response(),
        "slow" if first_time => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "late".into_response()
        }
        _ => "ok".into_response(),
    }
}

/// An app on 127.0.0.1 that answers every `POST /messages` with 200 at
/// once, for the forwarder's bench rows; its URL.
///
/// # Errors
///
/// When it cannot bind.
pub async fn answer_ok() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/messages", listener.local_addr()?);
    let app = Router::new().route("/messages", post(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}
