//! Logs: tracing lines on standard error, text or JSON, the level from
//! `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Installs the global log subscriber writing to standard error. Standard
/// output is kept for what a command answers. `quiet` are filter
/// directives that hold a dependency's own lines back whatever `RUST_LOG`
/// says (see `crate::amqp::QUIET_LOGS`).
pub fn init_logs(format: LogFormat, quiet: &[&str]) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in quiet {
        match directive.parse() {
            Ok(directive) => filter = filter.add_directive(directive),
            Err(error) => eprintln!("lcm-worker: log directive `{directive}`: {error}"),
        }
    }
    // Colour codes only for a person at a terminal: in a file or a log
    // collector they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second initialisation (a test calling twice) keeps the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}
