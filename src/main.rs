//! `lcm-worker`: see README.md and docs/protocol.md section 10.

/// mimalloc rather than glibc's malloc: allocation was a fifth of the
/// instructions a request cost (README, Performance). Set here, in the
/// binary, so that the library and the `echo` yardstick keep the system's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lcm_worker::cli::main()
}
