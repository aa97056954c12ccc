//! Log output of the `moth` program: text or JSON lines on stderr, and a
//! filter that a configuration reload can change.
//!
//! Which filter wins: `RUST_LOG` when set, else `-v`/`-vv`, else the
//! configuration's `log-level`, else `info`. Only the last two come from the
//! file, so only they follow a reload (SIGHUP); an operator who set
//! `RUST_LOG` or `-v` keeps what they asked for.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::LogFormat;

/// Where the log filter came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterSource {
    /// `RUST_LOG`.
    Environment,
    /// `-v` on the command line.
    Verbose,
    /// The configuration's `log-level` (or its default, `info`).
    Config,
}

/// Lets the program change the log filter after start.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// Where the filter in force came from; only `FilterSource::Config` follows a reload.
    pub source: FilterSource,
}

impl LogControl {
    /// Applies the configuration's `log-level` (`None` = `info`) when the
    /// filter comes from the configuration. Returns what happened, for the log.
    pub fn apply_config_level(&self, level: Option<&str>) -> Result<(), String> {
        if self.source != FilterSource::Config {
            return Err(format!("log-level is overridden by {:?}", self.source));
        }
        let filter =
            EnvFilter::builder().parse(with_quiet_rustls(level.unwrap_or("info"))).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())
    }
}

/// `level` with rustls held to errors unless `level` names it: at warning
/// level rustls reports what clients normally do (an IP address sent as
/// the TLS server name, by every client that connects by address) once per
/// connection; moth logs the TLS failures that matter itself.
fn with_quiet_rustls(level: &str) -> String {
    if level.contains("rustls") { level.to_string() } else { format!("{level},rustls=error") }
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(verbose: u8, config_level: Option<&str>, format: LogFormat) -> LogControl {
    let (filter, source) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => (EnvFilter::new(v), FilterSource::Environment),
        _ => match verbose {
            0 => {
                // The configuration was validated, so the filter parses.
                let filter = EnvFilter::builder()
                    .parse(with_quiet_rustls(config_level.unwrap_or("info")))
                    .unwrap_or_else(|_| EnvFilter::new("info"));
                (filter, FilterSource::Config)
            }
            1 => (EnvFilter::new("debug"), FilterSource::Verbose),
            _ => (EnvFilter::new("trace"), FilterSource::Verbose),
        },
    };
    let (filter, handle) = reload::Layer::new(filter);
    // Logs go to stderr, as a server's should; colours only on a terminal.
    let output: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Text => Box::new(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()),
        ),
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_target(false)
                .with_writer(std::io::stderr),
        ),
    };
    tracing_subscriber::registry().with(filter).with(output).init();
    LogControl { handle, source }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rustls_is_held_to_errors_unless_the_level_names_it() {
        assert_eq!(super::with_quiet_rustls("info"), "info,rustls=error");
        assert_eq!(super::with_quiet_rustls("moth=debug,rustls=warn"), "moth=debug,rustls=warn");
    }
}
