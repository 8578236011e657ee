//! The `sqsrt` binary: the built-in handlers (`--handler log|scripted|noop`)
//! on Lambda or as a worker. See the `sqsrt` crate docs and README.

use std::process::ExitCode;

// musl's allocator (the static builds) and glibc's spend most of a large
// batch's decode in malloc/free; mimalloc cuts that (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    sqsrt::builtin_main()
}
