//! The process around a run: the async runtime, signals, and what Lambda's
//! environment must provide before the runtime starts.

use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::settings::ConfigProblem;

/// The async runtime for `threads` (`None`: one per CPU available to the
/// process, cgroup quota included). One thread runs a current-thread
/// runtime: no hand-offs and wake-ups between threads (docs/performance.md).
///
/// # Errors
///
/// When the OS refuses the runtime's threads or its I/O driver.
pub fn build_runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.enable_all().build()
}

/// Lambda's memory size at and above which a function has one full vCPU
/// (AWS Lambda developer guide, "Configuring Lambda function memory": "at
/// 1,769 MB, a function has the equivalent of one vCPU"); below it, a share
/// of one.
const MB_PER_VCPU: u64 = 1_769;

/// Runtime threads on Lambda when `--threads` is not set: one below
/// 1,769 MB (a share of one vCPU, whatever CPU count the VM shows: a second
/// thread only adds hand-offs), else one per full vCPU the memory buys,
/// `ceil(memory / 1769)`, at most the CPUs shown. `None` (one per CPU
/// shown) under Managed Instances (`AWS_LAMBDA_MAX_CONCURRENCY` above 1,
/// where the vCPUs shown are the instance's own) or when the memory is
/// unknown.
pub(crate) fn lambda_threads(
    memory_mb: Option<u64>,
    max_concurrency: Option<u32>,
    cpus: usize,
) -> Option<usize> {
    if max_concurrency.is_some_and(|n| n > 1) {
        return None;
    }
    let memory = memory_mb?;
    if memory < MB_PER_VCPU {
        return Some(1);
    }
    let vcpus = usize::try_from(memory.div_ceil(MB_PER_VCPU)).unwrap_or(usize::MAX);
    Some(vcpus.min(cpus.max(1)))
}

/// [`lambda_threads`] from this process's environment.
pub(crate) fn lambda_threads_from_env() -> Option<usize> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse().ok());
    lambda_threads(
        var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        var("AWS_LAMBDA_MAX_CONCURRENCY").and_then(|n: u64| u32::try_from(n).ok()),
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
    )
}

/// Tells Lambda why this environment cannot start (when there is a Runtime
/// API to tell); the error is also logged and returned by the caller.
pub(crate) async fn report_lambda_init_error(error_type: &str, error: &Error) {
    let Some(api) = std::env::var("AWS_LAMBDA_RUNTIME_API")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        return;
    };
    if let Err(report) = sqsrt_lambda::report_init_error(&api, error_type, &error.to_string()).await
    {
        tracing::warn!(error = %report, "Cannot report the init error to the Runtime API.");
    }
}

/// SIGTERM or SIGINT cancels `shutdown` (the worker drains); with
/// `second_exits`, a second one exits at once with status 1 (the queue
/// redelivers what was held).
pub(crate) fn shutdown_on_signal(shutdown: CancellationToken, second_exits: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("Cannot install signal handlers; the worker stops only when killed.");
        return;
    };
    tokio::spawn(async move {
        for n in 0..2 {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if n == 0 {
                tracing::info!(
                    signal = name,
                    "Signal received: draining (a second signal exits at once)."
                );
                shutdown.cancel();
            } else if second_exits {
                tracing::warn!(
                    signal = name,
                    "Second signal: exiting now; held messages return after their visibility timeout."
                );
                std::process::exit(1);
            }
        }
    });
}

/// The variables the Lambda service sets and the runtime needs; checked up
/// front so a missing one is a named configuration error, not a panic.
pub(crate) fn lambda_environment_problems(
    var: impl Fn(&str) -> Option<String>,
) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    for name in [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    ] {
        match var(name) {
            None => problems.push(ConfigProblem(format!(
                "{name} is not set: Lambda sets it; locally, use `cargo lambda watch` or set it yourself"
            ))),
            Some(v) if name == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" && v.trim().parse::<i32>().is_err() => {
                problems.push(ConfigProblem(format!("{name}={v:?} is not a whole number of megabytes")));
            }
            Some(v) if name == "AWS_LAMBDA_RUNTIME_API" => {
                problems.extend(sqsrt_lambda::runtime_api_problem(&v).map(ConfigProblem));
            }
            Some(_) => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_threads_follow_memory_not_the_cpus_shown() {
        // Below 1,769 MB: one thread, even where the VM shows two CPUs.
        assert_eq!(lambda_threads(Some(128), None, 2), Some(1));
        assert_eq!(lambda_threads(Some(256), None, 2), Some(1));
        assert_eq!(lambda_threads(Some(1_768), None, 2), Some(1));
        assert_eq!(lambda_threads(Some(1_769), None, 2), Some(1));
        assert_eq!(lambda_threads(Some(2_048), None, 2), Some(2));
        assert_eq!(lambda_threads(Some(10_240), None, 6), Some(6));
        assert_eq!(
            lambda_threads(Some(10_240), None, 2),
            Some(2),
            "at most the CPUs shown"
        );
        assert_eq!(lambda_threads(Some(3_538), Some(1), 4), Some(2));
        // Managed Instances: the vCPUs shown are real.
        assert_eq!(lambda_threads(Some(2_048), Some(4), 8), None);
        assert_eq!(lambda_threads(None, None, 2), None);
    }

    #[test]
    fn missing_lambda_variables_are_named() {
        let all = |name: &str| {
            Some(
                if name.ends_with("MEMORY_SIZE") {
                    "128"
                } else {
                    "x"
                }
                .to_owned(),
            )
        };
        assert!(lambda_environment_problems(all).is_empty());
        let problems = lambda_environment_problems(|name: &str| match name {
            "AWS_LAMBDA_RUNTIME_API" => Some("127.0.0.1:9001/no-scheme".to_owned()),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("lots".to_owned()),
            _ => None,
        });
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(
            text[0].starts_with(
                "AWS_LAMBDA_RUNTIME_API=\"127.0.0.1:9001/no-scheme\" is not host:port"
            )
        );
        assert!(text[1].starts_with("AWS_LAMBDA_FUNCTION_NAME is not set"));
        assert!(text[3].contains("\"lots\" is not a whole number"));
    }
}
