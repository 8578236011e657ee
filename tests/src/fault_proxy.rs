//! A fault-injecting HTTP/1.1 proxy for the SQS endpoint: the worker talks to
//! it instead of LocalStack, and the test switches faults on and off while
//! messages flow. Faults: HTTP 500s, throttling errors, added latency,
//! connection resets, and a full outage (every connection reset, including
//! long polls already waiting upstream).
//!
//! It also watches what passes (without a fault): which message each
//! receipt handle belongs to (`ReceiveMessage` answers) and every message
//! deleted (`DeleteMessage`, `DeleteMessageBatch` entries the server
//! confirmed), with the time the delete reached it. The suites compare those
//! deletes with the worker's outcome lines: an independent check that
//! nothing is deleted before it succeeded.
//!
//! Hand-written on tokio rather than a proxy crate: it must decide per
//! request and reset connections (RST), which HTTP-level proxies do not
//! expose. It understands just enough HTTP/1.1 for the AWS SDK and
//! LocalStack: `Content-Length` bodies and chunked responses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it.
    None,
    /// Answer HTTP 500 `InternalFailure` without forwarding.
    ServerError,
    /// Answer HTTP 400 `ThrottlingException` without forwarding.
    Throttle,
    /// Forward it after this delay.
    Latency(Duration),
    /// Reset the connection instead of answering.
    Reset,
    /// Reset every connection, new and waiting: the endpoint is gone.
    Outage,
}

/// Requests the proxy answered with a fault, per kind.
#[derive(Debug, Default)]
pub struct Injected {
    /// HTTP 500s sent.
    pub server_errors: AtomicU64,
    /// Throttling errors sent.
    pub throttles: AtomicU64,
    /// Requests delayed.
    pub delayed: AtomicU64,
    /// Connections reset (resets and outage).
    pub resets: AtomicU64,
}

impl Injected {
    /// All faults injected so far.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.server_errors.load(Ordering::Relaxed)
            + self.throttles.load(Ordering::Relaxed)
            + self.delayed.load(Ordering::Relaxed)
            + self.resets.load(Ordering::Relaxed)
    }
}

/// One message the server confirmed deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// Its message id (from the `ReceiveMessage` answer that gave the handle).
    pub message_id: String,
    /// When the delete request reached the proxy.
    pub at: SystemTime,
}

/// What the proxy saw pass.
#[derive(Debug, Default)]
pub struct Observed {
    /// Receipt handle to message id, from every `ReceiveMessage` answer.
    receipts: Mutex<HashMap<String, String>>,
    deletes: Mutex<Vec<Deleted>>,
    /// Deletes of a receipt handle never seen received (must stay 0).
    unknown_receipts: AtomicU64,
}

impl Observed {
    /// Every confirmed delete so far, in the order they reached the proxy.
    ///
    /// # Panics
    ///
    /// When a thread panicked while recording (a test failure anyway).
    #[must_use]
    pub fn deletes(&self) -> Vec<Deleted> {
        self.deletes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Confirmed deletes of receipt handles the proxy never saw received.
    #[must_use]
    pub fn unknown_receipts(&self) -> u64 {
        self.unknown_receipts.load(Ordering::Relaxed)
    }

    /// Learns message ids from an exchange, and records confirmed deletes.
    fn exchange(&self, target: &str, request: &[u8], response: &[u8], at: SystemTime) {
        let (Some(request), Some(response)) = (json_body(request), json_body(response)) else {
            return;
        };
        match target {
            "AmazonSQS.ReceiveMessage" => {
                let mut receipts = self
                    .receipts
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for m in response["Messages"].as_array().into_iter().flatten() {
                    if let (Some(id), Some(receipt)) =
                        (m["MessageId"].as_str(), m["ReceiptHandle"].as_str())
                    {
                        receipts.insert(receipt.to_owned(), id.to_owned());
                    }
                }
            }
            // A success answers with an empty object, an error with its `__type`.
            "AmazonSQS.DeleteMessage" if response.get("__type").is_none() => {
                self.deleted(request["ReceiptHandle"].as_str(), at);
            }
            "AmazonSQS.DeleteMessageBatch" => {
                let confirmed: Vec<&str> = response["Successful"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["Id"].as_str())
                    .collect();
                for entry in request["Entries"].as_array().into_iter().flatten() {
                    if entry["Id"]
                        .as_str()
                        .is_some_and(|id| confirmed.contains(&id))
                    {
                        self.deleted(entry["ReceiptHandle"].as_str(), at);
                    }
                }
            }
            _ => {}
        }
    }

    fn deleted(&self, receipt: Option<&str>, at: SystemTime) {
        let id = receipt.and_then(|r| {
            self.receipts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(r)
                .cloned()
        });
        match id {
            Some(message_id) => self
                .deletes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Deleted { message_id, at }),
            None => {
                self.unknown_receipts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    injected: Arc<Injected>,
    observed: Arc<Observed>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) in front of `upstream`
    /// (`http://127.0.0.1:PORT`).
    ///
    /// # Errors
    ///
    /// When `upstream` is not `http://host:port` or nothing can be bound.
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let upstream: SocketAddr = upstream
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .context("the upstream must be http://host:port")?
            .parse()
            .context("the upstream must be http://IP:port")?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (fault, watching) = watch::channel(Fault::None);
        let injected = Arc::new(Injected::default());
        let observed = Arc::new(Observed::default());
        let (counters, watch_log) = (Arc::clone(&injected), Arc::clone(&observed));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let watching = watching.clone();
                let counters = Arc::clone(&counters);
                let watch_log = Arc::clone(&watch_log);
                tokio::spawn(async move {
                    // A connection ends on EOF, reset or error: all expected here.
                    let _ = serve(client, upstream, watching, &counters, &watch_log).await;
                });
            }
        });
        Ok(Self {
            addr,
            fault,
            injected,
            observed,
            accept,
        })
    }

    /// The endpoint to give the worker (`AWS_ENDPOINT_URL`).
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the fault for every request from now on.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// What was injected so far.
    #[must_use]
    pub fn injected(&self) -> &Injected {
        &self.injected
    }

    /// What passed through so far.
    #[must_use]
    pub fn observed(&self) -> &Observed {
        &self.observed
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut fault: watch::Receiver<Fault>,
    injected: &Injected,
    observed: &Observed,
) -> anyhow::Result<()> {
    let mut upstream_conn: Option<TcpStream> = None;
    let mut pending = Vec::new();
    loop {
        if *fault.borrow() == Fault::Outage {
            return reset(client, injected);
        }
        let Some(request) = read_message(&mut client, &mut pending, false).await? else {
            return Ok(());
        };
        let current = *fault.borrow_and_update();
        match current {
            Fault::Outage | Fault::Reset => return reset(client, injected),
            Fault::ServerError => {
                injected.server_errors.fetch_add(1, Ordering::Relaxed);
                client
                    .write_all(&error_response(
                        500,
                        "InternalFailure",
                        "injected server error",
                    ))
                    .await?;
                continue;
            }
            Fault::Throttle => {
                injected.throttles.fetch_add(1, Ordering::Relaxed);
                client
                    .write_all(&error_response(
                        400,
                        "ThrottlingException",
                        "Rate exceeded (injected)",
                    ))
                    .await?;
                continue;
            }
            Fault::Latency(delay) => {
                injected.delayed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
            }
            Fault::None => {}
        }
        if upstream_conn.is_none() {
            upstream_conn = Some(TcpStream::connect(upstream).await?);
        }
        let conn = upstream_conn.as_mut().expect("connected above");
        let target = header(&request, "x-amz-target");
        let sent_at = SystemTime::now();
        conn.write_all(&request).await?;
        let mut upstream_pending = Vec::new();
        // A long poll may wait upstream for 20 s: an outage meanwhile resets it.
        let response = tokio::select! {
            r = read_message(conn, &mut upstream_pending, true) => r?,
            () = outage(&mut fault) => return reset(client, injected),
        };
        let Some(response) = response else {
            bail!("upstream closed the connection");
        };
        if let Some(target) = &target {
            observed.exchange(target, &request, &response, sent_at);
        }
        client.write_all(&response).await?;
        if header_says_close(&response) {
            upstream_conn = None;
        }
    }
}

async fn outage(fault: &mut watch::Receiver<Fault>) {
    // The sender lives as long as the proxy; if it is gone, never resolve.
    if fault.wait_for(|f| *f == Fault::Outage).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Drops the connection with RST instead of FIN.
fn reset(client: TcpStream, injected: &Injected) -> anyhow::Result<()> {
    injected.resets.fetch_add(1, Ordering::Relaxed);
    client.set_zero_linger()?;
    drop(client);
    Ok(())
}

fn error_response(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = format!(r#"{{"__type":"{code}","message":"{message}"}}"#);
    let reason = if status == 500 {
        "Internal Server Error"
    } else {
        "Bad Request"
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-query-error: {code};Sender\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The value of header `name` (lower case) in a message's head.
fn header(message: &[u8], name: &str) -> Option<String> {
    let head_end = find(message, b"\r\n\r\n").unwrap_or(message.len());
    String::from_utf8_lossy(&message[..head_end])
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
}

/// A message's body as JSON (chunked bodies joined), if it is JSON.
fn json_body(message: &[u8]) -> Option<Value> {
    let head_end = find(message, b"\r\n\r\n")? + 4;
    let body = &message[head_end..];
    let chunked = header(message, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
    if !chunked {
        return serde_json::from_slice(body).ok();
    }
    let mut joined = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + find(&body[at..], b"\r\n")?;
        let size_text = std::str::from_utf8(&body[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return serde_json::from_slice(&joined).ok();
        }
        joined.extend_from_slice(body.get(line_end + 2..line_end + 2 + size)?);
        at = line_end + 2 + size + 2;
    }
}

fn header_says_close(message: &[u8]) -> bool {
    let head_end = find(message, b"\r\n\r\n").unwrap_or(message.len());
    String::from_utf8_lossy(&message[..head_end])
        .lines()
        .any(|line| line.eq_ignore_ascii_case("connection: close"))
}

/// Reads one HTTP/1.1 message (head and body) from `stream`, keeping what
/// follows it in `pending`. `None` on a clean EOF before any byte.
async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    pending: &mut Vec<u8>,
    response: bool,
) -> anyhow::Result<Option<Vec<u8>>> {
    let head_end = loop {
        if let Some(i) = find(pending, b"\r\n\r\n") {
            break i + 4;
        }
        pending.reserve(16 * 1024);
        let n = stream.read_buf(pending).await?;
        if n == 0 {
            if pending.is_empty() {
                return Ok(None);
            }
            bail!("connection closed inside a message head");
        }
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>())
        .transpose()?;
    let chunked = head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    let end = if chunked {
        loop {
            if let Some(end) = chunked_ends_at(&pending[head_end..]) {
                break head_end + end;
            }
            pending.reserve(16 * 1024);
            let n = stream.read_buf(pending).await?;
            if n == 0 {
                bail!("connection closed inside a chunked body");
            }
        }
    } else {
        let length = match length {
            Some(length) => length,
            None if response => bail!("a response without Content-Length or chunking"),
            None => 0,
        };
        while pending.len() < head_end + length {
            pending.reserve(16 * 1024);
            let n = stream.read_buf(pending).await?;
            if n == 0 {
                bail!("connection closed inside a body");
            }
        }
        head_end + length
    };
    let rest = pending.split_off(end);
    Ok(Some(std::mem::replace(pending, rest)))
}

/// Where a complete chunked body ends, walking the chunk sizes.
fn chunked_ends_at(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + find(&body[at..], b"\r\n")?;
        let size_text = std::str::from_utf8(&body[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2 + size + 2;
        if at > body.len() {
            return None;
        }
        if size == 0 {
            return Some(at);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_are_split_at_their_length_and_chunks() {
        let mut pending = Vec::new();
        let two = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPOST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        let mut reader: &[u8] = two;
        let first = read_message(&mut reader, &mut pending, false)
            .await
            .unwrap()
            .unwrap();
        assert!(first.ends_with(b"\r\n\r\nabc"));
        let second = read_message(&mut reader, &mut pending, false)
            .await
            .unwrap()
            .unwrap();
        assert!(second.ends_with(b"Content-Length: 0\r\n\r\n"));
        assert!(
            read_message(&mut reader, &mut pending, false)
                .await
                .unwrap()
                .is_none()
        );

        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n0\r\n\r\n\r\n0\r\n\r\nNEXT";
        let mut reader: &[u8] = chunked;
        let mut pending = Vec::new();
        let whole = read_message(&mut reader, &mut pending, true)
            .await
            .unwrap()
            .unwrap();
        assert!(
            whole.ends_with(b"5\r\n0\r\n\r\n\r\n0\r\n\r\n"),
            "{:?}",
            String::from_utf8_lossy(&whole)
        );
        assert_eq!(pending, b"NEXT");
    }

    #[test]
    fn confirmed_deletes_are_recorded_by_message_id() {
        let observed = Observed::default();
        let at = SystemTime::now();
        let http = |head: &str, body: &str| {
            format!("{head}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
        };
        // A chunked answer, as LocalStack may send.
        let receive_answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2e\r\n{\"Messages\":[{\"MessageId\":\"m1\",\"ReceiptHandle\"\r\n30\r\n:\"r1\"},{\"MessageId\":\"m2\",\"ReceiptHandle\":\"r2\"}]}\r\n0\r\n\r\n";
        observed.exchange(
            "AmazonSQS.ReceiveMessage",
            &http("POST / HTTP/1.1", "{}"),
            receive_answer,
            at,
        );
        observed.exchange(
            "AmazonSQS.DeleteMessageBatch",
            &http("POST / HTTP/1.1", r#"{"Entries":[{"Id":"0","ReceiptHandle":"r1"},{"Id":"1","ReceiptHandle":"r2"},{"Id":"2","ReceiptHandle":"r9"}]}"#),
            &http("HTTP/1.1 200 OK", r#"{"Successful":[{"Id":"0"},{"Id":"2"}],"Failed":[{"Id":"1","Code":"ReceiptHandleIsInvalid"}]}"#),
            at,
        );
        assert_eq!(
            observed.deletes(),
            [Deleted {
                message_id: "m1".into(),
                at
            }]
        );
        assert_eq!(observed.unknown_receipts(), 1, "r9 was never received");
    }
}
