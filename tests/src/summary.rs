//! The reliability suite's summary: each suite adds one row, and
//! `scripts/test.sh` / `scripts/reliability.sh` print them as one table
//! (`scripts/lib.sh`, `print_reliability_summary`). Rows go to the CSV file
//! named by `SQSRT_RELIABILITY_SUMMARY`; without it they are only printed.

use std::io::Write as _;

/// One suite's accounting.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// Which suite (and its main setting).
    pub suite: String,
    /// Rounds or phases run.
    pub rounds: u64,
    /// Worker processes stopped (SIGTERM or SIGKILL).
    pub kills: u64,
    /// Faults injected (errors, throttles, delays, resets).
    pub faults: u64,
    /// Messages sent.
    pub sent: u64,
    /// Distinct messages with a `success` outcome.
    pub succeeded: u64,
    /// Messages in the dead-letter queue at the end.
    pub dead_lettered: u64,
    /// Sent, gone from the queue, never succeeded (must be 0).
    pub lost: u64,
    /// Deleted (as the fault proxy saw it on the wire) before the message's
    /// success line was logged, or without one (must be 0).
    pub deleted_before_success: u64,
    /// Success lines beyond the first per message.
    pub duplicates: u64,
}

/// The table's header, as `scripts/lib.sh` prints it.
pub const COLUMNS: &str = "suite,rounds,kills,faults injected,messages sent,succeeded,dead-lettered,lost,deleted before success,duplicates";

/// Prints `row` and appends it to `SQSRT_RELIABILITY_SUMMARY` when set.
///
/// # Errors
///
/// When the file cannot be written.
pub fn record(row: &Row) -> anyhow::Result<()> {
    let line = format!(
        "{},{},{},{},{},{},{},{},{},{}",
        row.suite.replace(',', ";"),
        row.rounds,
        row.kills,
        row.faults,
        row.sent,
        row.succeeded,
        row.dead_lettered,
        row.lost,
        row.deleted_before_success,
        row.duplicates
    );
    println!("{COLUMNS}\n{line}");
    if let Some(path) = std::env::var_os("SQSRT_RELIABILITY_SUMMARY") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{line}")?;
    }
    Ok(())
}
