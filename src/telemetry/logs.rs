//! Logs: tracing lines on standard error, text or JSON, the level from
//! `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// lapin's dump of returned messages, kept to errors.
const SILENCED: &str = "lapin::returned_messages=error";

/// Installs the global log subscriber writing to standard error. Standard
/// output is kept for what a command answers.
pub fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // lapin warns of every returned message with the whole message,
        // body included (a 10 MB reply makes a 40 MB line); the worker logs
        // its own bounded warning for an unroutable reply instead.
        .add_directive(SILENCED.parse().expect("a valid directive"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_silencing_directive_parses() {
        SILENCED
            .parse::<tracing_subscriber::filter::Directive>()
            .unwrap();
    }
}
