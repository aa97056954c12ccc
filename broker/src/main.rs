//! The `moth` program: runs the broker from a configuration file, or from the
//! embedded default (one TCP listener on 0.0.0.0:1883, anonymous access),
//! like hbmqtt's `hbmqtt` command.
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM) or a passing
//! `--check`; 2 for a configuration error; 1 when the broker cannot start
//! (a port already in use, say).
//!
//! SIGHUP re-reads the configuration file and applies what can change
//! without a restart (see `Broker::reload`): the plugin chains, their options
//! and libraries, and the log level; a file or plugin that fails keeps what
//! is in force. `moth plugins [-c FILE]` lists the plugin registry;
//! `moth passwd` creates and edits password files (see `broker/src/cli/passwd_cmd.rs`).

/// jemalloc rather than glibc's malloc (feature `jemalloc`, on by default;
/// the library sets no allocator): the tokio task and socket state of every
/// connection are 128-byte-aligned allocations, which glibc serves with
/// about 150 bytes of padding each, a fifth of an idle connection's cost;
/// jemalloc's size classes hold them without padding. It also keeps freed
/// memory of the blocking threads reusable instead of stranding it in
/// per-thread arenas. mimalloc was measured too and held more per
/// connection. (`bench/src/bin/connheap.rs` measures this.)
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use moth::internal::{
    LogControl, PasswdArgs, ignore_file_size_signal, init_logging, raise_fd_limit, run_passwd, transport_name,
};
use moth::{Broker, BrokerError, Config, LogFormat};
use tracing::{error, info, warn};

#[derive(Parser, Debug)]
#[command(name = "moth", version, about = "An MQTT 3.1.1 broker configured like hbmqtt")]
struct Args {
    /// Configuration file (hbmqtt YAML). Without it, the embedded default is used.
    // Not global: `moth passwd -c` means "create", as in mosquitto_passwd.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
    /// Check the configuration and exit: 0 when valid, 2 otherwise.
    #[arg(long)]
    check: bool,
    /// More log output: -v for debug, -vv for trace. RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Log line format: `text` or `json` (one JSON object per line).
    /// Overrides the configuration's `log-format`.
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the plugins the configuration can use: name, built-in or file,
    /// plugin version, plugin-api version, description, and the chains that
    /// use it. Exits 2 when the configuration's chains cannot be built.
    Plugins {
        /// Configuration file (hbmqtt YAML), as `moth -c FILE plugins`.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Create or edit a password file for `auth.password-file` (argon2id).
    Passwd(PasswdArgs),
}

fn main() -> ExitCode {
    // A file size limit fails the store's writes (retried), not the broker.
    ignore_file_size_signal();
    let mut args = Args::parse();
    if let Some(Command::Passwd(p)) = &args.command {
        return match run_passwd(p) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("moth passwd: {e}");
                ExitCode::from(e.exit_code())
            }
        };
    }
    if let Some(Command::Plugins { config: Some(path) }) = &args.command {
        args.config = Some(path.clone());
    }
    if args.print_default_config {
        print!("{}", moth::DEFAULT_YAML);
        return ExitCode::SUCCESS;
    }
    let config = match &args.config {
        None => Config::default(),
        Some(path) => match Config::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("moth: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let format = match args.log_format.as_deref() {
        Some("json") => LogFormat::Json,
        Some(_) => LogFormat::Text,
        None => config.log_format,
    };
    let origin = args.config.as_ref().map_or_else(|| "embedded default".to_string(), |p| p.display().to_string());
    // The program serves clients: a file that binds nothing is a mistake
    // (a misspelt `listeners:`, say), not a broker to start. An embedding
    // application may run one without listeners; `moth plugins` only looks.
    let plugins_only = matches!(args.command, Some(Command::Plugins { .. }));
    if config.listeners.is_empty() && !plugins_only {
        eprintln!("moth: {origin}: no listener has a `bind`, so no client could connect");
        for w in &config.warnings {
            eprintln!("moth: {w}");
        }
        return ExitCode::from(2);
    }
    let log = init_logging(args.verbose, config.log_level.as_deref(), format);
    for w in &config.warnings {
        warn!(config = %origin, "{w}");
    }
    // `--check` and `moth plugins` run beside a running broker: they must
    // not take its store (which a running moth holds locked), only check
    // that the directory can hold one.
    let mut config = config;
    let inspect_only = args.check || matches!(args.command, Some(Command::Plugins { .. }));
    let persistence = if inspect_only { config.persistence.take() } else { None };
    let persistence_line = match persistence.as_ref().map(check_store_dir) {
        None => String::new(),
        Some(Ok(line)) => line,
        Some(Err(e)) => {
            eprintln!("moth: {origin}: persistence: {e}");
            return ExitCode::FAILURE;
        }
    };
    let broker = match Broker::new(config) {
        Ok(b) => b,
        Err(e @ BrokerError::Store(_)) => {
            // The configuration is fine; the store cannot be used.
            eprintln!("moth: {origin}: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("moth: {origin}: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(args.command, Some(Command::Plugins { .. })) {
        print_plugins(&broker);
        return ExitCode::SUCCESS;
    }
    if args.check {
        print_check(&broker, &origin, &persistence_line);
        return ExitCode::SUCCESS;
    }

    serve(broker, args.config.as_ref(), &origin, &log)
}

/// Runs the broker until SIGINT or SIGTERM, re-reading `config` on SIGHUP.
fn serve(broker: Broker, config: Option<&PathBuf>, origin: &str, log: &LogControl) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("moth: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Before the broker starts: a signal that arrives once clients can
        // connect must find its handler, not the default that kills.
        let signals = Signals::install();
        match raise_fd_limit() {
            Ok((was, now)) if was != now => info!(was, now, "open-file limit raised (one per client connection)"),
            Ok((_, now)) => info!(limit = now, "open-file limit (one per client connection)"),
            Err(e) => warn!("cannot raise the open-file limit: {e}"),
        }
        if let Err(e) = broker.start().await {
            // One line (the log goes to stderr too: not both).
            eprintln!("moth: {e}");
            return ExitCode::FAILURE;
        }
        info!(version = env!("CARGO_PKG_VERSION"), config = %origin, "moth started");
        serve_signals(signals, &broker, config, log).await;
        broker.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// `--check` of the persistence section: the store's directory exists or
/// can be made, and is writable. The store itself is not opened.
fn check_store_dir(p: &moth::PersistenceConfig) -> Result<String, String> {
    let dir = &p.path;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create the directory: {e}", dir.display()))?;
    let probe = dir.join(".moth-check");
    std::fs::write(&probe, b"").map_err(|e| format!("{}: not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    let sync = match p.sync {
        moth::SyncMode::Always => "always".to_string(),
        moth::SyncMode::Batch => "batch".to_string(),
        moth::SyncMode::Periodic(d) => format!("periodic every {} s", d.as_secs_f64()),
    };
    Ok(format!("; persistence: {} (sync {sync})", dir.display()))
}

/// `--check`: one line naming the listeners and the chains that will run.
fn print_check(broker: &Broker, origin: &str, persistence: &str) {
    let listeners: Vec<String> = broker
        .config()
        .listeners
        .iter()
        .map(|l| {
            let transport = transport_name(l.kind, l.tls.is_some());
            format!("{} ({transport} on {})", l.name, l.bind)
        })
        .collect();
    let plugins = broker.plugins();
    let topic = plugins.topic_chain.map_or_else(|| "off".to_string(), |t| t.join(", "));
    println!(
        "{origin}: configuration OK; listeners: {}; auth: {}; topic-check: {topic}{persistence}",
        listeners.join(", "),
        plugins.auth_chain.join(", ")
    );
}

/// Prints the registry and the chains, one plugin per line.
fn print_plugins(broker: &Broker) {
    let listing = broker.plugins();
    let rows: Vec<[String; 6]> = listing
        .plugins
        .iter()
        .map(|p| {
            let mut chains = Vec::new();
            if listing.auth_chain.contains(&p.name) {
                chains.push("auth");
            }
            if listing.topic_chain.as_ref().is_some_and(|t| t.contains(&p.name)) {
                chains.push("topic-check");
            }
            let chains = if chains.is_empty() { "-".to_string() } else { chains.join(",") };
            [
                p.name.clone(),
                p.plugin_version.clone(),
                p.api_version.to_string(),
                p.origin.to_string(),
                chains,
                p.description.clone(),
            ]
        })
        .collect();
    for line in aligned(&rows) {
        println!("{line}");
    }
    for f in &listing.failures {
        println!("skipped: {f}");
    }
}

/// The plugin table's lines: a header, then the rows, each column as wide
/// as its widest cell, so no value pushes the next one out of line.
fn aligned(rows: &[[String; 6]]) -> Vec<String> {
    let header = ["NAME", "VERSION", "API", "ORIGIN", "CHAINS", "DESCRIPTION"].map(String::from);
    let mut width = [0usize; 5];
    for row in std::iter::once(&header).chain(rows) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    std::iter::once(&header)
        .chain(rows)
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if let Some(w) = width.get(i) {
                    line.push_str(&" ".repeat(w - cell.chars().count() + 1));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

/// The signal streams the program reacts to, registered once at start.
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}
#[cfg(not(unix))]
struct Signals;

impl Signals {
    /// `None` when the handlers cannot be registered (logged); the program
    /// then stops on Ctrl-C only.
    #[cfg(unix)]
    fn install() -> Option<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let all = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()));
        match all {
            (Ok(term), Ok(int), Ok(hup)) => Some(Signals { term, int, hup }),
            (t, i, h) => {
                for e in [t.err(), i.err(), h.err()].into_iter().flatten() {
                    warn!("cannot listen for SIGTERM/SIGINT/SIGHUP: {e}");
                }
                None
            }
        }
    }
    #[cfg(not(unix))]
    fn install() -> Option<Signals> {
        Some(Signals)
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM; reloads the configuration on each SIGHUP meanwhile.
async fn serve_signals(signals: Option<Signals>, broker: &Broker, path: Option<&PathBuf>, log: &LogControl) {
    #[cfg(unix)]
    {
        let Some(Signals { mut term, mut int, mut hup }) = signals else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                // A SIGHUP sent before a SIGTERM is handled before it.
                biased;
                _ = hup.recv() => {
                    info!("SIGHUP received");
                    reload(broker, path, log).await;
                }
                _ = int.recv() => { info!("SIGINT received"); return; }
                _ = term.recv() => { info!("SIGTERM received"); return; }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (signals, broker, path, log);
        let _ = tokio::signal::ctrl_c().await;
        info!("Ctrl-C received");
    }
}

/// Re-reads the configuration file and applies what can change while running.
/// A broken file changes nothing; it is logged with its position.
#[cfg_attr(not(unix), allow(dead_code))]
async fn reload(broker: &Broker, path: Option<&PathBuf>, log: &LogControl) {
    let Some(path) = path else {
        warn!("reload: running on the embedded default configuration; there is no file to re-read");
        return;
    };
    let file = path.clone();
    // Reading may resolve host names (blocking).
    let new = match tokio::task::spawn_blocking(move || Config::from_file(&file)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            error!("reload failed, the running configuration is kept: {e}");
            return;
        }
        Err(e) => {
            error!("reload failed, the running configuration is kept: {e}");
            return;
        }
    };
    for w in &new.warnings {
        warn!(config = %path.display(), "{w}");
    }
    let level = new.log_level.clone();
    // Loading libraries and constructing plugins may block: not on a network thread.
    let reloading = broker.clone();
    let outcome = match tokio::task::spawn_blocking(move || reloading.reload(&new)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the reload did not complete: {e}")),
    };
    match outcome {
        Err(e) => error!(config = %path.display(), "reload failed, the running configuration is kept: {e}"),
        Ok(report) => {
            if report.applied.iter().any(|c| c.starts_with("log-level"))
                && let Err(why) = log.apply_config_level(level.as_deref())
            {
                warn!("log-level not applied: {why}");
            }
            for change in &report.applied {
                info!(config = %path.display(), "reload applied: {change}");
            }
            for change in &report.needs_restart {
                warn!(config = %path.display(), "reload: needs a restart, not applied: {change}");
            }
            if report.applied.is_empty() && report.needs_restart.is_empty() {
                info!(config = %path.display(), "reload: no setting changed (plugin chains rebuilt)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_plugin_table_lines_up_whatever_the_cells() {
        let row = |name: &str, chains: &str| {
            [name, "1.0.0", "1.3", "/usr/lib/moth/libx.so", chains, "what it does"].map(String::from)
        };
        let lines = super::aligned(&[row("a", "-"), row("a_long_plugin_name", "auth,topic-check")]);
        let at: Vec<Option<usize>> =
            lines.iter().map(|l| l.find("DESCRIPTION").or_else(|| l.find("what it does"))).collect();
        assert!(at.iter().all(|a| a.is_some() && *a == at[0]), "{lines:#?}");
    }
}
