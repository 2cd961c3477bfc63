//! What a panic means for the process (docs/protocol.md section 7).
//!
//! Every request is handled on the threads of the worker's runtime, where
//! a panic is contained: the service catches one while deciding (the
//! request is dead-lettered), tokio catches one in any other task, and the
//! worker goes on serving. A panic on any other thread (lapin's I/O loop,
//! the log writer, a library's helper) is caught by no one, and whatever
//! that thread did is gone: a connection that will never deliver again
//! while `/readyz`, which cannot see it, says ready. Such a panic ends the
//! process with [`EXIT_PANIC`], so that an orchestrator replaces it; what
//! was in hand is redelivered by RabbitMQ.
//!
//! Every panic is logged through the log subscriber, never with a write to
//! standard error that could block or fail.

use std::cell::Cell;
use std::panic::PanicHookInfo;
use std::time::Duration;

use crate::telemetry;

/// The exit status after a panic that the worker cannot contain (70,
/// `EX_SOFTWARE` of sysexits.h).
pub const EXIT_PANIC: u8 = 70;

/// How long the last log lines may take to be written before the exit.
const FLUSH_BEFORE_EXIT: Duration = Duration::from_secs(1);

/// A panic message is cut to this many bytes: it may quote a value of any
/// size.
const MAX_MESSAGE_BYTES: usize = 1024;

thread_local! {
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one whose panics are caught and survived:
/// the runtime's threads.
pub fn contained_here() {
    CONTAINED.with(|contained| contained.set(true));
}

/// Installs the process's panic hook: log every panic; end the process on
/// one outside the threads marked by [`contained_here`].
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        let message = message(info);
        if CONTAINED.with(Cell::get) {
            tracing::error!(thread, location, "panicked: {message}");
            return;
        }
        tracing::error!(
            thread,
            location,
            exit_status = EXIT_PANIC,
            "a thread outside the request handling panicked: {message}; \
             exiting so that the process is replaced"
        );
        telemetry::flush_logs(FLUSH_BEFORE_EXIT);
        std::process::exit(i32::from(EXIT_PANIC));
    }));
}

fn message<'a>(info: &'a PanicHookInfo<'_>) -> &'a str {
    let payload = info.payload();
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)");
    let mut end = text.len().min(MAX_MESSAGE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::settings::LogFormat;

    /// Set in the copy of this test binary that a test starts.
    const CHILD: &str = "LCM_PANICS_TEST_CHILD";

    /// Runs `test` alone in a fresh copy of this test binary, with
    /// [`CHILD`] set: a panic hook is process-wide, and ending the process
    /// is the behaviour under test.
    fn in_child(test: &str) -> std::process::Output {
        Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    }

    #[test]
    fn a_panic_off_the_runtime_threads_is_logged_and_ends_the_process_with_exit_panic() {
        if std::env::var_os(CHILD).is_some() {
            telemetry::init_logs(LogFormat::Text, &[]);
            install();
            // The test's own thread stands for a runtime thread: contained.
            contained_here();
            let caught = std::panic::catch_unwind(|| panic!("contained {}", "x".repeat(5000)));
            assert!(caught.is_err());
            tracing::info!("survived the contained panic");
            let io_loop = std::thread::Builder::new()
                .name("lapin-io-loop".to_owned())
                .spawn(|| panic!("the I/O loop failed"))
                .unwrap();
            let _ = io_loop.join();
            // Reached only if the hook let the process live on.
            std::process::exit(0);
        }
        let output = in_child(
            "panics::tests::a_panic_off_the_runtime_threads_is_logged_and_ends_the_process_with_exit_panic",
        );
        let logs = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(i32::from(EXIT_PANIC)), "{logs}");
        let contained = logs
            .lines()
            .find(|line| line.contains("panicked: contained"))
            .unwrap_or_else(|| panic!("{logs}"));
        assert!(contained.len() < MAX_MESSAGE_BYTES + 200, "{contained}");
        assert!(logs.contains("survived the contained panic"), "{logs}");
        assert!(
            logs.contains("a thread outside the request handling panicked: the I/O loop failed"),
            "{logs}"
        );
        assert!(logs.contains("thread=\"lapin-io-loop\""), "{logs}");
    }
}
