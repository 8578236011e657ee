//! A `sqsrt` process in Lambda mode under the Runtime API stand-in, with
//! LocalStack as its SQS (for backoff, release and dead-letter calls), and
//! its log lines.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use serde_json::Value;

use crate::runtime_api::RuntimeApi;
use crate::worker_proc::{Processed, processed, read_lines};
use crate::{localstack, sqsrt_bin};

/// A running function; killed when dropped.
pub struct FunctionProc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl FunctionProc {
    /// Starts `sqsrt` with the scripted handler (unless `env` names one),
    /// polling `api`, its SQS calls going to LocalStack, with `env` added.
    ///
    /// # Errors
    ///
    /// When it cannot start.
    pub fn start(api: &RuntimeApi, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut command = Command::new(sqsrt_bin()?);
        command
            .envs(localstack::aws_env()?)
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "sqsrt")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("SQSRT_HANDLER", "scripted")
            .envs(env.iter().copied())
            .stdout(Stdio::piped());
        let mut child = command.spawn().context("cannot start sqsrt")?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let (lines, reader) = read_lines(stdout);
        Ok(Self {
            child,
            lines,
            reader: Some(reader),
        })
    }

    /// Every JSON log line so far, parsed (EMF documents included).
    ///
    /// # Panics
    ///
    /// Never: the lock is only held to push or read lines.
    #[must_use]
    pub fn lines(&self) -> Vec<Value> {
        self.lines
            .lock()
            .expect("lock is never poisoned")
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Every "Message processed." record so far.
    #[must_use]
    pub fn processed(&self) -> Vec<Processed> {
        processed(&self.lines())
    }

    /// Kills the function and returns every "Message processed." record it
    /// wrote (outcome lines are written before each response, so all of
    /// the answered invocations').
    ///
    /// # Errors
    ///
    /// When the process cannot be killed or its log reader panicked.
    pub fn stop(mut self) -> anyhow::Result<Vec<Processed>> {
        self.child.kill()?;
        self.child.wait()?;
        // Gone: its stdout is at EOF and the reader ends.
        if let Some(reader) = self.reader.take() {
            reader
                .join()
                .map_err(|_| anyhow::anyhow!("the log reader panicked"))?;
        }
        Ok(self.processed())
    }
}

impl Drop for FunctionProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
