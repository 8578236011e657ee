//! A fault-injecting HTTP/1.1 proxy for the SQS endpoint: the worker talks to
//! it instead of LocalStack, and the test switches faults on and off while
//! messages flow. Faults: HTTP 500s, throttling errors, added latency,
//! connection resets, and a full outage (every connection reset, including
//! long polls already waiting upstream).
//!
//! Hand-written on tokio rather than a proxy crate: it must decide per
//! request and reset connections (RST), which HTTP-level proxies do not
//! expose. It understands just enough HTTP/1.1 for the AWS SDK and
//! LocalStack: `Content-Length` bodies and chunked responses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    injected: Arc<Injected>,
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
        let counters = Arc::clone(&injected);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let watching = watching.clone();
                let counters = Arc::clone(&counters);
                tokio::spawn(async move {
                    // A connection ends on EOF, reset or error: all expected here.
                    let _ = serve(client, upstream, watching, &counters).await;
                });
            }
        });
        Ok(Self {
            addr,
            fault,
            injected,
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
}
