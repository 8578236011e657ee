//! Harness for sqsrt's end-to-end suites: locating the built binary and
//! tools, free loopback ports, and child processes that die with the test.
//!
//! The suites run the one static release binary `scripts/build.sh` builds
//! (`SQSRT_BIN`, default `$CARGO_TARGET_DIR/dist/<arch>/sqsrt`; CI also
//! points it at the container image's `/sqsrt` run in the image's root
//! filesystem) against real
//! local stand-ins: `cargo lambda watch` (the Lambda Runtime API emulator)
//! and this crate's own Runtime API stand-in ([`runtime_api`]) for Lambda
//! mode; LocalStack over the real SQS protocol ([`localstack`]) for worker
//! mode, with [`worker_proc`] driving the worker process.

pub mod esm;
pub mod fault_proxy;
pub mod function_proc;
pub mod http_app;
pub mod kafka;
pub mod localstack;
pub mod runtime_api;
pub mod summary;
pub mod worker_proc;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Path of the `sqsrt` binary under test.
///
/// # Errors
///
/// When it does not exist, saying how to build it.
pub fn sqsrt_bin() -> anyhow::Result<PathBuf> {
    let path = if let Some(p) = std::env::var_os("SQSRT_BIN") {
        PathBuf::from(p)
    } else {
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
            PathBuf::from,
        );
        target
            .join("dist")
            .join(std::env::consts::ARCH)
            .join("sqsrt")
    };
    if !path.is_file() {
        bail!(
            "sqsrt binary not found at {} (set SQSRT_BIN, or build it with scripts/build.sh)",
            path.display()
        );
    }
    Ok(path)
}

/// The `cargo` command that has the `lambda` subcommand (`SQSRT_CARGO`, default `cargo`).
#[must_use]
pub fn cargo() -> Command {
    Command::new(std::env::var_os("SQSRT_CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Starts a server that needs its port given up front (`cargo lambda watch
/// -P`): `command` builds it for a port free on 127.0.0.1 now, and the server
/// counts as started once the listener on that port is its own process or a
/// child of it (`scripts/ports.py listens`, the rule the scripts use). A port
/// taken by another process between the pick and the bind makes the server
/// exit or another process answer; then it is started again on a new port,
/// three times at most.
///
/// # Errors
///
/// When it cannot be spawned, or does not listen within `timeout` on any of
/// three ports.
pub fn spawn_on_free_port(
    name: &str,
    mut command: impl FnMut(u16) -> Command,
    timeout: Duration,
) -> anyhow::Result<(ChildGuard, u16)> {
    let ports_py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/ports.py");
    for attempt in 1..=3 {
        let port = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let mut child = ChildGuard::spawn(name, &mut command(port))?;
        let start = Instant::now();
        while start.elapsed() < timeout && child.check_running().is_ok() {
            let open = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok();
            if open
                && Command::new("python3")
                    .arg(&ports_py)
                    .args(["listens", &port.to_string(), &child.id().to_string()])
                    .status()?
                    .success()
            {
                return Ok((child, port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let Err(exited) = child.check_running() else {
            bail!("{name} did not listen on 127.0.0.1:{port} within {timeout:?}");
        };
        // Both causes look alike from here: say both.
        eprintln!(
            "{name} did not listen on 127.0.0.1:{port} ({exited}; attempt {attempt} of 3): the port \
             was taken by another process, or the program is missing (cargo-lambda: \
             $TOOLS_VENV/bin on PATH, scripts/lib.sh installs it)"
        );
    }
    bail!("{name} did not start on any of three ports")
}

/// A child process killed when dropped, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    name: String,
}

impl ChildGuard {
    /// Spawns `command`, naming it in errors.
    ///
    /// # Errors
    ///
    /// When it cannot be started.
    pub fn spawn(name: &str, command: &mut Command) -> anyhow::Result<Self> {
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Self {
            child,
            name: name.to_owned(),
        })
    }

    /// Guards an already spawned child.
    #[must_use]
    pub fn from_child(name: &str, child: Child) -> Self {
        Self {
            child,
            name: name.to_owned(),
        }
    }

    /// The child's process id.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the child already exited.
    ///
    /// # Errors
    ///
    /// When it exited, with its status.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early with {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Environment for an `sqsrt` under test: an AWS setup that fails fast
/// (nothing listens on port 9 of loopback, one attempt per call) so
/// best-effort SQS calls cannot slow the suite or reach the network.
#[must_use]
pub fn offline_aws_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_MAX_ATTEMPTS", "1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

/// Path of a fixture under `tests/fixtures`: of the checkout the scripts
/// run from (`SQSRT_ROOT`, exported by `scripts/lib.sh`), else of the one this
/// was compiled in. A target directory shared by two checkouts can leave a
/// measuring binary built in the other one, whose fixtures may be gone.
#[must_use]
pub fn fixture(name: &str) -> PathBuf {
    std::env::var_os("SQSRT_ROOT")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            |root| PathBuf::from(root).join("tests"),
        )
        .join("fixtures")
        .join(name)
}

/// A Lambda SQS event of `n` copies of `tests/fixtures/bench-record.json`,
/// each with its own `messageId` (10,000 of them: just under Lambda's 6 MiB
/// payload limit), every record's `body` replaced where `body` gives one.
/// Written as Lambda writes it: compact, the record's fields in the
/// fixture's (Lambda's) order, not sorted as a `serde_json::Value` would
/// sort them.
///
/// # Errors
///
/// When the fixture cannot be read or is not a record with an id and a body.
pub fn bench_event<'a>(
    n: usize,
    body: impl Fn(usize) -> Option<&'a str>,
) -> anyhow::Result<String> {
    let path = fixture("bench-record.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the bench record {}", path.display()))?;
    let template: serde_json::Value = serde_json::from_str(&text)?;
    let compact = compact_json(&text);
    // Each field as the compact text writes it, to be swapped per record.
    let written = |field: &str| -> anyhow::Result<String> {
        let value = template[field]
            .as_str()
            .with_context(|| format!("the bench record has no {field}"))?;
        Ok(format!("\"{field}\":{}", serde_json::to_string(value)?))
    };
    let (id_field, body_field) = (written("messageId")?, written("body")?);
    let mut out = String::with_capacity(n * (compact.len() + 8) + 16);
    out.push_str("{\"Records\":[");
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let mut record = compact.replacen(
            &id_field,
            &format!("\"messageId\":\"059f36b4-87a3-44ab-83d2-{i:012}\""),
            1,
        );
        if let Some(body) = body(i) {
            record = record.replacen(
                &body_field,
                &format!("\"body\":{}", serde_json::to_string(body)?),
                1,
            );
        }
        out.push_str(&record);
    }
    out.push_str("]}");
    Ok(out)
}

/// `text` (JSON) without the whitespace between tokens; strings untouched.
fn compact_json(text: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::with_capacity(text.len()), false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// The value after `name` in a bench binary's `args` (`--runs 3`), if given.
#[must_use]
pub fn flag_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The number after `name` in `args`, or `default` when absent.
///
/// # Errors
///
/// When the value is not a number, naming the flag.
pub fn number_flag(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    flag_value(args, name).map_or(Ok(default), |s| {
        s.parse()
            .with_context(|| format!("{name} {s}: not a number"))
    })
}

/// Peak resident memory (`VmHWM`) of a running process, in KiB.
///
/// # Errors
///
/// When `/proc/<pid>/status` cannot be read or has no `VmHWM`.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .with_context(|| format!("no VmHWM for {pid}"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(anyhow::Error::from)
}

/// User + system CPU time of a process so far, all its threads (exited ones
/// included), from `/proc/<pid>/stat`: in steps of 10 ms (`USER_HZ`), so
/// measure over many invocations.
///
/// # Errors
///
/// When `/proc/<pid>/stat` cannot be read or parsed.
pub fn cpu_time(pid: u32) -> anyhow::Result<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat format")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(std::time::Duration::from_millis(ticks * 10))
}

/// CPU time of each thread of a process, in nanoseconds, from
/// `/proc/PID/task/*/schedstat` (the scheduler's own sum, where
/// [`cpu_time`] reads 10 ms ticks): precise enough to time one
/// sub-millisecond Lambda invocation over a few hundred.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot(std::collections::HashMap<u32, u64>);

impl CpuSnapshot {
    /// Reads every live thread of `pid`.
    ///
    /// # Errors
    ///
    /// When the process is gone or `/proc` cannot be read.
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let mut threads = std::collections::HashMap::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let entry = entry?;
            let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            // A thread that ended since the listing has no file: skipped.
            let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
                continue;
            };
            let ns = text
                .split_whitespace()
                .next()
                .context("empty schedstat")?
                .parse::<u64>()
                .context("schedstat format")?;
            threads.insert(tid, ns);
        }
        Ok(Self(threads))
    }

    /// All CPU time of the live threads.
    #[must_use]
    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.0.values().sum())
    }

    /// CPU time used since `earlier`: each thread's growth, and the whole
    /// of threads started since. A thread that ended in between loses its
    /// share (runtimes here keep their threads; a helper thread of a DNS
    /// lookup would be microseconds).
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Duration {
        Duration::from_nanos(
            self.0
                .iter()
                .map(|(tid, ns)| ns.saturating_sub(earlier.0.get(tid).copied().unwrap_or(0)))
                .sum(),
        )
    }
}

/// A loopback server that accepts connections and never answers (an SQS
/// endpoint in a VPC without a route, where a call hangs); counts the
/// connections. Holds at most 10,000 of them; stops when dropped.
pub struct BlackHole {
    addr: std::net::SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    /// Listens on 127.0.0.1 at a free port.
    ///
    /// # Errors
    ///
    /// When it cannot bind.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = std::sync::Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while held.len() < 10_000 {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        Ok(Self {
            addr,
            accepted,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    #[must_use]
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_events_are_compact_in_lambdas_order_with_their_own_ids_and_bodies() {
        let event = super::bench_event(3, |i| (i == 1).then_some("{\"action\":\"fail\"}"))
            .expect("the fixture");
        assert!(event.starts_with("{\"Records\":[{\"messageId\":\"059f36b4-87a3-44ab-83d2-000000000000\",\"receiptHandle\":"));
        assert!(!event.contains(' ') && !event.contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&event).expect("JSON");
        let records = parsed["Records"].as_array().expect("records");
        assert_eq!(records.len(), 3);
        assert_eq!(
            records[2]["messageId"],
            "059f36b4-87a3-44ab-83d2-000000000002"
        );
        assert_eq!(records[1]["body"], "{\"action\":\"fail\"}");
        assert_eq!(
            records[0]["body"],
            "{\"orderId\":12345,\"sku\":\"ABC-123\",\"qty\":1}"
        );
        assert_eq!(records[0]["attributes"]["SentTimestamp"], "1545082649183");
    }
}
