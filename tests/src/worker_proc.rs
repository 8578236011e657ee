//! A `sqsrt worker` process under test: its JSON log lines, its metrics and
//! probes, and signals.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::fault_proxy::{Deleted, Observed};
use crate::{localstack, sqsrt_bin};

/// A running worker; killed when dropped.
pub struct WorkerProc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Reads stdout until EOF; joined once the process has exited, so every
    /// line it wrote is in `lines`.
    reader: Option<std::thread::JoinHandle<()>>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub metrics_addr: SocketAddr,
}

/// One "Message processed." record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// SQS message id.
    pub message_id: String,
    /// `success`, `retry`, `permanent` or `skipped`.
    pub outcome: String,
    /// `ApproximateReceiveCount` of that delivery.
    pub receive_count: u64,
    /// Reason, when not a success.
    pub reason: Option<String>,
    /// When it was logged (RFC 3339).
    pub timestamp: String,
}

impl WorkerProc {
    /// Starts `sqsrt worker --queue-url <url> --handler scripted --metrics-addr 127.0.0.1:0 <args>`
    /// against LocalStack and waits for it to log its metrics address.
    ///
    /// # Errors
    ///
    /// When it cannot start or does not report its address within 15 s.
    ///
    /// # Panics
    ///
    /// Never: the log lock is only held by code that does not panic.
    pub fn start(queue_url: &str, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_via(&localstack::endpoint()?, queue_url, args)
    }

    /// Like [`WorkerProc::start`], with the SQS endpoint at `endpoint` (a
    /// proxy in front of LocalStack).
    ///
    /// # Errors
    ///
    /// As [`WorkerProc::start`].
    ///
    /// # Panics
    ///
    /// As [`WorkerProc::start`].
    pub fn start_via(endpoint: &str, queue_url: &str, args: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(sqsrt_bin()?)
            .arg("worker")
            // The scripted handler unless the caller names one.
            .args(if args.contains(&"--handler") {
                &[][..]
            } else {
                &["--handler", "scripted"][..]
            })
            .args(["--metrics-addr", "127.0.0.1:0", "--queue-url", queue_url])
            .args(args)
            .envs(localstack::aws_env()?)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start sqsrt worker")?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let (lines, reader) = read_lines(stdout);
        let start = Instant::now();
        let metrics_addr = loop {
            let found = lines
                .lock()
                .expect("lock is never poisoned")
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find_map(|v| {
                    v.get("metrics_addr")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
            if let Some(addr) = found {
                break addr.parse()?;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "worker exited with {status} before starting: {:?}",
                    lines.lock().expect("lock").clone()
                );
            }
            if start.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                bail!("worker did not report its metrics address");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Self {
            child,
            lines,
            reader: Some(reader),
            metrics_addr,
        })
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many log lines so far contain `needle` (cheap: no parsing, and
    /// unlike a `/metrics` scrape it costs the worker nothing).
    ///
    /// # Panics
    ///
    /// Never: the lock is only held to push or read lines.
    #[must_use]
    pub fn lines_containing(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .expect("lock is never poisoned")
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Every log line so far, parsed.
    ///
    /// # Panics
    ///
    /// When a line is not JSON (the worker must only write JSON lines).
    #[must_use]
    pub fn lines(&self) -> Vec<Value> {
        self.lines
            .lock()
            .expect("lock is never poisoned")
            .iter()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
            })
            .collect()
    }

    /// Every "Message processed." record so far.
    #[must_use]
    pub fn processed(&self) -> Vec<Processed> {
        processed(&self.lines())
    }

    /// Sends a signal (`TERM`, `KILL`, `INT`) with `kill`.
    ///
    /// # Errors
    ///
    /// When `kill` fails.
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} failed");
        }
        Ok(())
    }

    /// Waits for the process to exit.
    ///
    /// # Errors
    ///
    /// When it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<(ExitStatus, Duration)> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited()? {
                return Ok((status, start.elapsed()));
            }
            if start.elapsed() > timeout {
                bail!("worker still running after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status if the process has exited (every line it wrote is
    /// then in [`Self::lines`]), without waiting.
    ///
    /// # Errors
    ///
    /// When the status cannot be read.
    pub fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(status) = self.child.try_wait()? else {
            return Ok(None);
        };
        // The process is gone, so its stdout reaches EOF: the reader ends
        // after taking the last lines.
        if let Some(reader) = self.reader.take() {
            reader
                .join()
                .map_err(|_| anyhow::anyhow!("the log reader panicked"))?;
        }
        Ok(Some(status))
    }

    /// `GET path` on the metrics address: status code and body.
    ///
    /// # Errors
    ///
    /// When the request fails.
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.metrics_addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.metrics_addr
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no status line")?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// The (whole-number) value of one sample of `/metrics`, e.g.
    /// `sqsrt_messages_processed_total{outcome="success"}`; 0 when absent.
    ///
    /// # Errors
    ///
    /// When the scrape fails.
    pub fn metric(&self, sample: &str) -> anyhow::Result<i64> {
        let (_, body) = self.get("/metrics")?;
        Ok(body
            .lines()
            .find_map(|l| {
                l.strip_prefix(sample)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    }
}

impl WorkerProc {
    /// The sum of every sample of metric `name` (all label sets).
    ///
    /// # Errors
    ///
    /// When the scrape fails.
    pub fn metric_sum(&self, name: &str) -> anyhow::Result<f64> {
        let (_, body) = self.get("/metrics")?;
        Ok(body
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` copies of `body`.
#[must_use]
pub fn bodies(n: usize, body: &str) -> Vec<String> {
    (0..n).map(|_| body.to_owned()).collect()
}

/// The ids with a `success` outcome.
#[must_use]
pub fn successes(processed: &[Processed]) -> std::collections::HashSet<String> {
    processed
        .iter()
        .filter(|p| p.outcome == "success")
        .map(|p| p.message_id.clone())
        .collect()
}

/// The messages deleted (as the fault proxy saw the server confirm it) before
/// any `success` or `permanent` line of theirs was logged, or with none at
/// all: must be empty. Independent of the lost count: it reads the deletes
/// off the wire, not the log. A `permanent` line is logged only once the
/// dead-letter copy is stored, so it justifies a delete like a success.
///
/// # Panics
///
/// When an outcome line's timestamp is not RFC 3339 (sqsrt always writes one).
#[must_use]
pub fn deleted_before_success(deletes: &[Deleted], processed: &[Processed]) -> Vec<String> {
    let mut settled_at: std::collections::HashMap<&str, SystemTime> =
        std::collections::HashMap::new();
    for p in processed {
        if p.outcome != "success" && p.outcome != "permanent" {
            continue;
        }
        let at = SystemTime::from(
            chrono::DateTime::parse_from_rfc3339(&p.timestamp)
                .expect("outcome lines carry an RFC 3339 timestamp"),
        );
        settled_at
            .entry(p.message_id.as_str())
            .and_modify(|first| *first = (*first).min(at))
            .or_insert(at);
    }
    deletes
        .iter()
        .filter(|d| {
            settled_at
                .get(d.message_id.as_str())
                .is_none_or(|at| *at > d.at)
        })
        .map(|d| d.message_id.clone())
        .collect()
}

/// The delete accounting of a suite run through the fault proxy: the
/// messages deleted before their success line ([`deleted_before_success`]),
/// and how many of `sent` the proxy never saw deleted.
///
/// # Errors
///
/// When a delete named a receipt handle the proxy never saw received (the
/// observation itself is broken).
pub fn delete_accounting(
    observed: &Observed,
    processed: &[Processed],
    sent: impl IntoIterator<Item = impl AsRef<str>>,
) -> anyhow::Result<(Vec<String>, usize)> {
    anyhow::ensure!(
        observed.unknown_receipts() == 0,
        "{} deletes of receipt handles the proxy never saw received",
        observed.unknown_receipts()
    );
    let deletes = observed.deletes();
    let seen: std::collections::HashSet<&str> =
        deletes.iter().map(|d| d.message_id.as_str()).collect();
    let unseen = sent
        .into_iter()
        .filter(|id| !seen.contains(id.as_ref()))
        .count();
    Ok((deleted_before_success(&deletes, processed), unseen))
}

/// Waits until `done` holds, polling every 100 ms.
///
/// # Errors
///
/// When `done` fails or `timeout` passes first.
pub async fn until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while !done()? {
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The lines a process writes to `stdout`, read on a thread until EOF
/// (join the thread once the process has exited to have them all).
///
/// # Panics
///
/// Never: the lock is only held to push a line.
#[must_use]
pub fn read_lines(
    stdout: std::process::ChildStdout,
) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().expect("lock is never poisoned").push(line);
            }
        })
    };
    (lines, reader)
}

/// The "Message processed." records among parsed log lines (both modes
/// write the same fields).
#[must_use]
pub fn processed(lines: &[Value]) -> Vec<Processed> {
    lines
        .iter()
        .filter(|l| l.get("outcome").is_some())
        .map(|l| Processed {
            message_id: l["message_id"].as_str().unwrap_or_default().to_owned(),
            outcome: l["outcome"].as_str().unwrap_or_default().to_owned(),
            receive_count: l["receive_count"].as_u64().unwrap_or(0),
            reason: l.get("reason").and_then(Value::as_str).map(str::to_owned),
            timestamp: l["timestamp"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// Deliveries no worker logged: for each message, its highest
/// `ApproximateReceiveCount` minus the lines logged for it. Every delivery
/// that reaches a worker ends in exactly one line (`skipped` included), so
/// with no SIGKILL and no lost answers a positive count is a receive whose
/// messages reached no worker: stranded until their visibility timeout.
#[must_use]
pub fn unseen_deliveries(processed: &[Processed]) -> u64 {
    let mut per_message: std::collections::HashMap<&str, (u64, u64)> =
        std::collections::HashMap::new();
    for p in processed {
        let entry = per_message.entry(p.message_id.as_str()).or_default();
        entry.0 = entry.0.max(p.receive_count);
        entry.1 += 1;
    }
    per_message
        .values()
        .map(|(highest, lines)| highest.saturating_sub(*lines))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, outcome: &str, timestamp: &str) -> Processed {
        Processed {
            message_id: id.into(),
            outcome: outcome.into(),
            receive_count: 1,
            reason: None,
            timestamp: timestamp.into(),
        }
    }

    #[test]
    fn a_delete_counts_as_early_unless_a_success_was_logged_before_it() {
        let at = |micros: u64| {
            SystemTime::UNIX_EPOCH
                + Duration::from_secs(1_795_000_000)
                + Duration::from_micros(micros)
        };
        // 1_795_000_000 s since the epoch is 2026-11-18T11:06:40Z.
        let processed = [
            line("before", "success", "2026-11-18T11:06:40.000100Z"),
            line("after", "retry", "2026-11-18T11:06:40.000100Z"),
            line("after", "success", "2026-11-18T11:06:40.000900Z"),
            line("dead", "permanent", "2026-11-18T11:06:40.000100Z"),
        ];
        let deletes: Vec<Deleted> = ["before", "after", "dead", "never"]
            .into_iter()
            .map(|id| Deleted {
                message_id: id.into(),
                at: at(500),
            })
            .collect();
        assert_eq!(
            deleted_before_success(&deletes, &processed),
            ["after", "never"]
        );
    }

    #[test]
    fn a_delivery_without_a_line_is_unseen() {
        let mut second = line("a", "success", "2026-11-18T11:06:40.000100Z");
        second.receive_count = 3; // deliveries 1 and 3 logged, 2 reached no worker
        let processed = [
            line("a", "retry", "2026-11-18T11:06:40.000100Z"),
            second,
            line("b", "success", "2026-11-18T11:06:40.000100Z"),
        ];
        assert_eq!(unseen_deliveries(&processed), 1);
        assert_eq!(unseen_deliveries(&processed[2..]), 0);
    }
}
