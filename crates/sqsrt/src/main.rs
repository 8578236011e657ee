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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
