//! Logging from a plugin into the broker's log.
//!
//! A plugin library has its own copy of `tracing` whose subscriber is never
//! set, so its `tracing` events go nowhere. Instead, the broker passes a
//! logging callback in [`crate::HostContext`]; [`crate::export_plugin!`]
//! keeps it, and these functions call it. Before construction (or in a unit
//! test without a broker) lines go to stderr.

use std::sync::OnceLock;

use abi_stable::StableAbi;
use abi_stable::std_types::RStr;

/// The level of a log line. An integer newtype; the broker logs a level it
/// does not know as `INFO`.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogLevel(pub u8);

impl LogLevel {
    /// Logged at the broker's `error` level.
    pub const ERROR: LogLevel = LogLevel(1);
    /// Logged at the broker's `warn` level.
    pub const WARN: LogLevel = LogLevel(2);
    /// Logged at the broker's `info` level.
    pub const INFO: LogLevel = LogLevel(3);
    /// Logged at the broker's `debug` level.
    pub const DEBUG: LogLevel = LogLevel(4);
    /// (1.1) Logged at the broker's `trace` level; a 1.0 broker logs it as
    /// `INFO`. There is no `trace()` shorthand: call [`log()`] with it.
    pub const TRACE: LogLevel = LogLevel(5);
}

/// The broker's logging callback: level, the plugin's name (a field of the
/// broker's log line), the message. Safe to call from any thread, at any
/// time after construction.
pub type LogFn = extern "C" fn(LogLevel, RStr<'_>, RStr<'_>);

struct Sink {
    log: LogFn,
    plugin: &'static str,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Called by the export glue with the callback the broker passed. The first
/// call wins: one library is one plugin.
#[doc(hidden)]
pub fn install(log: LogFn, plugin: &'static str) {
    let _ = SINK.set(Sink { log, plugin });
}

/// Logs one line at `level` through the broker, under the name the plugin
/// exported. Before the broker constructed the plugin (or in a unit test
/// without a broker) the line goes to stderr as `[plugin N] message`, `N`
/// being the level's number.
pub fn log(level: LogLevel, message: &str) {
    match SINK.get() {
        Some(sink) => (sink.log)(level, RStr::from_str(sink.plugin), RStr::from_str(message)),
        None => eprintln!("[plugin {:?}] {message}", level.0),
    }
}

/// Logs `message` at [`LogLevel::ERROR`]; see [`log()`].
pub fn error(message: &str) {
    log(LogLevel::ERROR, message)
}

/// Logs `message` at [`LogLevel::WARN`]; see [`log()`].
pub fn warn(message: &str) {
    log(LogLevel::WARN, message)
}

/// Logs `message` at [`LogLevel::INFO`]; see [`log()`].
pub fn info(message: &str) {
    log(LogLevel::INFO, message)
}

/// Logs `message` at [`LogLevel::DEBUG`]; see [`log()`].
pub fn debug(message: &str) {
    log(LogLevel::DEBUG, message)
}
