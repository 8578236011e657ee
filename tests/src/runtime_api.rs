//! A stand-in for the Lambda Runtime API (its four routes), so a suite can
//! set the invocation deadline itself: `cargo lambda watch` 1.9 sends a
//! constant deadline header that reads as 1970.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use tokio::sync::Notify;

/// What the function answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `POST .../response` with this body.
    Response(String),
    /// `POST .../error` with this body.
    Error(String),
}

/// A finished invocation: the reply, and how long after the event was handed
/// over it came.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The reply.
    pub reply: Reply,
    /// From `/next` answering to the reply arriving.
    pub elapsed: Duration,
}

struct Pending {
    request_id: String,
    body: String,
    deadline_in: Duration,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Pending>>,
    queued: Notify,
    /// Woken at each answer, so a waiter sees it at once (benches time
    /// sub-millisecond invocations back to back).
    answered: Notify,
    served: Mutex<HashMap<String, Instant>>,
    answers: Mutex<HashMap<String, Answer>>,
    init_errors: Mutex<Vec<String>>,
    first_poll: Mutex<Option<Instant>>,
    /// Handed out and not yet answered: now, and the most seen.
    outstanding: Mutex<(usize, usize)>,
}

/// The running stand-in.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    next_id: Mutex<u64>,
}

impl RuntimeApi {
    /// The bodies posted to `/runtime/init/error` so far.
    ///
    /// # Panics
    ///
    /// Never: the lock is never poisoned.
    #[must_use]
    pub fn init_errors(&self) -> Vec<String> {
        self.shared
            .init_errors
            .lock()
            .expect("lock is never poisoned")
            .clone()
    }

    /// Starts it on 127.0.0.1 at a free port.
    ///
    /// # Errors
    ///
    /// When it cannot bind.
    pub async fn start() -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self {
            addr,
            shared,
            next_id: Mutex::new(0),
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    #[must_use]
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// When the function first asked for an invocation, waiting up to `wait`.
    ///
    /// # Errors
    ///
    /// When it did not within `wait`.
    ///
    /// # Panics
    ///
    /// Never: its lock is only held by code that does not panic.
    pub async fn first_poll(&self, wait: Duration) -> anyhow::Result<Instant> {
        let start = Instant::now();
        loop {
            if let Some(at) = *self
                .shared
                .first_poll
                .lock()
                .expect("lock is never poisoned")
            {
                return Ok(at);
            }
            if start.elapsed() > wait {
                bail!("the function did not poll within {wait:?}");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// Queues `body` as an invocation whose deadline is `deadline_in` after
    /// the function receives it, and waits up to `wait` for the answer.
    ///
    /// # Errors
    ///
    /// When no answer arrives in time, or the function reported an init error.
    pub async fn invoke(
        &self,
        body: String,
        deadline_in: Duration,
        wait: Duration,
    ) -> anyhow::Result<Answer> {
        let request_id = self.queue(body, deadline_in);
        self.answer(&request_id, wait).await
    }

    /// [`RuntimeApi::invoke`] with a deadline of `deadline_in` and as long
    /// to wait, expecting a response: its body and how long it took.
    ///
    /// # Errors
    ///
    /// As [`RuntimeApi::invoke`], and when the function reported an error.
    pub async fn invoke_ok(
        &self,
        body: String,
        deadline_in: Duration,
    ) -> anyhow::Result<(String, Duration)> {
        let answer = self.invoke(body, deadline_in, deadline_in).await?;
        match answer.reply {
            Reply::Response(text) => Ok((text, answer.elapsed)),
            Reply::Error(error) => bail!("the invocation failed: {error}"),
        }
    }

    /// Queues `body` as an invocation whose deadline is `deadline_in` after
    /// the function receives it; its request id. Several queued at once are
    /// handed out as fast as the function asks (concurrent invocations).
    ///
    /// # Panics
    ///
    /// Never: its locks are only held by code that does not panic.
    pub fn queue(&self, body: String, deadline_in: Duration) -> String {
        let request_id = {
            let mut n = self.next_id.lock().expect("lock is never poisoned");
            *n += 1;
            format!("req-{n}")
        };
        self.shared
            .queue
            .lock()
            .expect("lock is never poisoned")
            .push_back(Pending {
                request_id: request_id.clone(),
                body,
                deadline_in,
            });
        self.shared.queued.notify_one();
        request_id
    }

    /// Waits up to `wait` for the answer to `request_id`.
    ///
    /// # Errors
    ///
    /// When no answer arrives in time, or the function reported an init error.
    ///
    /// # Panics
    ///
    /// Never: its locks are only held by code that does not panic.
    pub async fn answer(&self, request_id: &str, wait: Duration) -> anyhow::Result<Answer> {
        let start = Instant::now();
        loop {
            let answered = self.shared.answered.notified();
            if let Some(answer) = self
                .shared
                .answers
                .lock()
                .expect("lock is never poisoned")
                .remove(request_id)
            {
                return Ok(answer);
            }
            let init_errors = self
                .shared
                .init_errors
                .lock()
                .expect("lock is never poisoned")
                .clone();
            if !init_errors.is_empty() {
                bail!("function reported init errors: {init_errors:?}");
            }
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                bail!("no answer to {request_id} within {wait:?}");
            }
            // Init errors are looked at every 5 ms.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(5)), answered).await;
        }
    }

    /// The most invocations handed out and not yet answered at one time.
    ///
    /// # Panics
    ///
    /// Never: the lock is never poisoned.
    #[must_use]
    pub fn peak_outstanding(&self) -> usize {
        self.shared
            .outstanding
            .lock()
            .expect("lock is never poisoned")
            .1
    }

    /// The trace id this stand-in sends with `request_id`
    /// (`lambda-runtime-trace-id`): one per invocation, as X-Ray's.
    #[must_use]
    pub fn trace_id(request_id: &str) -> String {
        let n: u64 = request_id
            .strip_prefix("req-")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        format!("Root=1-00000000-{n:024x};Parent=0000000000000001;Sampled=1")
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> (HeaderMap, String) {
    shared
        .first_poll
        .lock()
        .expect("lock is never poisoned")
        .get_or_insert_with(Instant::now);
    loop {
        let notified = shared.queued.notified();
        let pending = shared
            .queue
            .lock()
            .expect("lock is never poisoned")
            .pop_front();
        if let Some(p) = pending {
            let deadline = SystemTime::now() + p.deadline_in;
            let deadline_ms = deadline
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let mut headers = HeaderMap::new();
            let header = |s: &str| {
                HeaderValue::from_str(s).expect("ids and numbers are valid header values")
            };
            headers.insert("lambda-runtime-aws-request-id", header(&p.request_id));
            headers.insert(
                "lambda-runtime-deadline-ms",
                header(&deadline_ms.to_string()),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                header("arn:aws:lambda:us-east-1:000000000000:function:sqsrt"),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                header(&RuntimeApi::trace_id(&p.request_id)),
            );
            {
                let mut outstanding = shared.outstanding.lock().expect("lock is never poisoned");
                outstanding.0 += 1;
                outstanding.1 = outstanding.1.max(outstanding.0);
            }
            shared
                .served
                .lock()
                .expect("lock is never poisoned")
                .insert(p.request_id, Instant::now());
            return (headers, p.body);
        }
        notified.await;
    }
}

fn record(shared: &Shared, id: &str, reply: Reply) -> StatusCode {
    let served = shared
        .served
        .lock()
        .expect("lock is never poisoned")
        .get(id)
        .copied();
    let Some(served) = served else {
        return StatusCode::NOT_FOUND;
    };
    {
        let mut outstanding = shared.outstanding.lock().expect("lock is never poisoned");
        outstanding.0 = outstanding.0.saturating_sub(1);
    }
    shared
        .answers
        .lock()
        .expect("lock is never poisoned")
        .insert(
            id.to_owned(),
            Answer {
                reply,
                elapsed: served.elapsed(),
            },
        );
    shared.answered.notify_waiters();
    StatusCode::ACCEPTED
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    record(&shared, &id, Reply::Response(body))
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    record(&shared, &id, Reply::Error(body))
}

async fn init_error(State(shared): State<Arc<Shared>>, body: String) -> StatusCode {
    shared
        .init_errors
        .lock()
        .expect("lock is never poisoned")
        .push(body);
    StatusCode::ACCEPTED
}
