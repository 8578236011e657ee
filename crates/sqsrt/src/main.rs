//! The `sqsrt` binary: the built-in handlers (`--handler log|scripted`) on
//! Lambda or as a worker. See the `sqsrt` crate docs and README.

use std::process::ExitCode;

use sqsrt::handlers::Builtin;

// musl's allocator (the static builds) and glibc's spend most of a large
// batch's decode in malloc/free; mimalloc cuts that (README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = sqsrt::parse_args();
    let common = match &cli.mode {
        sqsrt::cli::Mode::Lambda(a) => &a.common,
        sqsrt::cli::Mode::Worker(a) => &a.common,
    };
    let handler = Builtin::from(common.handler);
    // One thread (`--threads 1`, or one CPU available: Lambda below 1,769 MB,
    // a pod limited to one CPU; `available_parallelism` reads the cgroup
    // quota) runs a current-thread runtime: no hand-offs and wake-ups between
    // threads, ~45 us less per small Lambda invocation and about half the
    // worker's CPU per message (README, Performance). More threads run
    // handlers in parallel.
    let threads = common.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sqsrt: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sqsrt::run_mode(cli.mode, handler)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ sqsrt::Error::Config(_)) => {
            eprintln!("sqsrt: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("sqsrt: {error}");
            ExitCode::FAILURE
        }
    }
}
