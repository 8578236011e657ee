//! A Kafka-compatible broker for the `kafka` forwarder's suites: tansu
//! (crates.io, Apache-2.0), one process with in-memory storage, installed
//! by `install_tansu` of `scripts/lib.sh` (`SQSRT_TANSU`), on a free port
//! of 127.0.0.1;
//! and a consumer that reads a topic back with krafka.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use krafka::Kafka;
use krafka::admin::{CreateTopicsOptions, NewTopic};
use krafka::consumer::ConsumerRecord;

use crate::{ChildGuard, spawn_on_free_port};

/// The tansu binary (`SQSRT_TANSU`, which `install_tansu` of
/// `scripts/lib.sh` sets).
///
/// # Errors
///
/// When it is not set or not there, saying how to install it.
pub fn tansu_bin() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("SQSRT_TANSU")
        .map(PathBuf::from)
        .context("SQSRT_TANSU is not set: source scripts/lib.sh && install_tansu")?;
    if !path.is_file() {
        bail!(
            "the tansu broker is not at {} (SQSRT_TANSU; install it: source scripts/lib.sh && install_tansu)",
            path.display()
        );
    }
    Ok(path)
}

/// A running broker; killed when dropped.
pub struct Broker {
    child: ChildGuard,
    /// `127.0.0.1:PORT`, for `--kafka-brokers`.
    pub addr: String,
}

impl Broker {
    /// Starts a broker on a free port and waits until it answers metadata.
    ///
    /// # Errors
    ///
    /// When it cannot start or does not answer within 30 s.
    pub async fn start() -> anyhow::Result<Self> {
        let tansu = tansu_bin()?;
        let (child, port) = spawn_on_free_port(
            "tansu",
            |port| {
                let url = format!("tcp://127.0.0.1:{port}");
                let mut command = Command::new(&tansu);
                command
                    .args([
                        "broker",
                        "--listener-url",
                        &url,
                        "--advertised-listener-url",
                        &url,
                        "--storage-engine",
                        "memory://tansu/",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                command
            },
            Duration::from_secs(30),
        )?;
        let broker = Self {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let began = Instant::now();
        loop {
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), broker.connect()).await
            {
                return Ok(broker);
            }
            if began.elapsed() > Duration::from_secs(30) {
                bail!("tansu did not answer on {} within 30 s", broker.addr);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn connect(&self) -> krafka::Result<Kafka> {
        Kafka::builder(self.addr.clone())
            .connect_timeout(Duration::from_secs(1))
            .request_timeout(Duration::from_secs(5))
            .connect()
            .await
    }

    /// Creates `topic` with `partitions` partitions.
    ///
    /// # Errors
    ///
    /// When the broker refuses.
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        let kafka = self.connect().await?;
        let created = kafka
            .admin()
            .create_topics(
                [NewTopic::new(topic, partitions, 1)?],
                CreateTopicsOptions::default(),
            )
            .await?;
        for (name, result) in created {
            result.with_context(|| format!("creating topic {name}"))?;
        }
        Ok(())
    }

    /// Every record of `topic` (all its partitions, from the start), once
    /// at least `at_least` arrived or `timeout` passed.
    ///
    /// # Errors
    ///
    /// When the broker cannot be read.
    pub async fn read_all(
        &self,
        topic: &str,
        at_least: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ConsumerRecord>> {
        let kafka = self.connect().await?;
        let consumer = kafka.consumer_without_group().build().await?;
        let partitions: Vec<i32> = consumer
            .fetch_metadata(Some(topic))
            .await?
            .topics
            .iter()
            .filter(|t| t.name == topic)
            .flat_map(|t| t.partitions.keys().copied())
            .collect();
        consumer.assign(topic, partitions.clone()).await?;
        for partition in &partitions {
            consumer.seek_to_beginning(topic, *partition).await?;
        }
        let began = Instant::now();
        let mut records = Vec::new();
        while records.len() < at_least && began.elapsed() < timeout {
            records.extend(consumer.poll(Duration::from_millis(500)).await?);
        }
        consumer.close().await?;
        Ok(records)
    }

    /// Pauses the broker (`SIGSTOP`): connections stay open, nothing answers.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal("STOP")
    }

    /// Resumes a paused broker (`SIGCONT`).
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} tansu failed");
        }
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // A paused process is killed all the same; resumed first so that
        // it exits at once.
        let _ = self.signal("CONT");
    }
}

/// The value of header `name` of `record`, as text.
#[must_use]
pub fn header<'a>(record: &'a ConsumerRecord, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| std::str::from_utf8(value.as_ref()?).ok())
}

/// Records by the SQS message id in their `sqsrt-message-id` header.
#[must_use]
pub fn by_message_id(records: &[ConsumerRecord]) -> HashMap<String, Vec<&ConsumerRecord>> {
    let mut by_id: HashMap<String, Vec<&ConsumerRecord>> = HashMap::new();
    for record in records {
        if let Some(id) = header(record, "sqsrt-message-id") {
            by_id.entry(id.to_owned()).or_default().push(record);
        }
    }
    by_id
}
