//! `lcm-worker`: see README.md and docs/protocol.md section 10.

fn main() -> std::process::ExitCode {
    lcm_worker::cli::main()
}
