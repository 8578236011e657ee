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
    let handler = Builtin::from(match &cli.mode {
        sqsrt::cli::Mode::Lambda(a) => a.common.handler,
        sqsrt::cli::Mode::Worker(a) => a.common.handler,
    });
    // Lambda functions below 1,769 MB get less than one vCPU (the cgroup
    // quota `available_parallelism` reads): there a current-thread runtime
    // saves the hand-off to worker threads, ~45 us per small invocation
    // (`cargo bench -p sqsrt-core --bench engine`). With more CPUs, and in
    // worker mode, handlers run in parallel on the multi-thread runtime.
    let one_cpu = std::thread::available_parallelism().map_or(true, |n| n.get() == 1);
    let mut builder = if one_cpu && matches!(cli.mode, sqsrt::cli::Mode::Lambda(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
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
