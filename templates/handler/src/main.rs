//! {{ project_name }}: an SQS message handler on sqsrt, one binary for AWS
//! Lambda (SQS event source, partial batch failures) and for a worker
//! container on Kubernetes (KEDA). The mode is picked at start: Lambda when
//! `AWS_LAMBDA_RUNTIME_API` is set, worker otherwise; `--help` lists the flags.

mod orders;

use std::process::ExitCode;

// A library cannot pick the allocator: mimalloc (its v2 line, Cargo.toml)
// is what the sqsrt binary uses (large batches decode much faster than with
// musl's allocator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Built once at start, before the first invocation or receive: a failure
    // here is reported to Lambda's init error route, or exits 1 in a pod.
    sqsrt::main_with(|| async { Ok(orders::Orders::from_env()?) })
}
