//! The `moth` program: runs the broker from a configuration file, or from the
//! embedded default (one TCP listener on 0.0.0.0:1883, anonymous access),
//! like hbmqtt's `hbmqtt` command.
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM) or a passing
//! `--check`; 2 for a configuration error; 1 when the broker cannot start
//! (a port already in use, say).
//!
//! SIGHUP re-reads the configuration file and reloads the plugin chains
//! ([`Broker::reload`]); a file or plugin that fails keeps the chains in
//! force. `moth plugins [-c FILE]` lists the plugin registry.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use moth::{Broker, Config};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(name = "moth", version, about = "An MQTT 3.1.1 broker configured like hbmqtt")]
struct Args {
    /// Configuration file (hbmqtt YAML). Without it, the embedded default is used.
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
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
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the plugins the configuration can use: name, built-in or file,
    /// plugin version, plugin-api version, description, and the chains that
    /// use it. Exits 2 when the configuration's chains cannot be built.
    Plugins,
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    // Logs go to stderr, as a server's should; colours only on a terminal.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_default_config {
        print!("{}", moth::config::DEFAULT_YAML);
        return ExitCode::SUCCESS;
    }
    init_logging(args.verbose);

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
    let origin = args.config.as_ref().map_or_else(|| "embedded default".to_string(), |p| p.display().to_string());
    for w in &config.warnings {
        warn!(config = %origin, "{w}");
    }
    let broker = match Broker::new(config) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("moth: {origin}: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(args.command, Some(Command::Plugins)) {
        print_plugins(&broker);
        return ExitCode::SUCCESS;
    }
    if args.check {
        let listeners: Vec<String> = broker
            .config()
            .listeners
            .iter()
            .map(|l| format!("{} ({:?} on {})", l.name, l.kind, l.bind).to_lowercase())
            .collect();
        let plugins = broker.plugins();
        let topic = plugins.topic_chain.map_or_else(|| "off".to_string(), |t| t.join(", "));
        println!(
            "{origin}: configuration OK; listeners: {}; auth: {}; topic-check: {topic}",
            listeners.join(", "),
            plugins.auth_chain.join(", ")
        );
        return ExitCode::SUCCESS;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("moth: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        if let Err(e) = broker.start().await {
            error!("{e}");
            eprintln!("moth: {e}");
            return ExitCode::FAILURE;
        }
        info!(version = env!("CARGO_PKG_VERSION"), config = %origin, "moth started");
        wait_for_signal(|| reload(&broker, args.config.as_deref())).await;
        broker.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Prints the registry and the chains, one plugin per line.
fn print_plugins(broker: &Broker) {
    let listing = broker.plugins();
    println!("{:<20} {:<9} {:<6} {:<40} {:<12} DESCRIPTION", "NAME", "VERSION", "API", "ORIGIN", "CHAINS");
    for p in &listing.plugins {
        let mut chains = Vec::new();
        if listing.auth_chain.contains(&p.name) {
            chains.push("auth");
        }
        if listing.topic_chain.as_ref().is_some_and(|t| t.contains(&p.name)) {
            chains.push("topic-check");
        }
        let chains = if chains.is_empty() { "-".to_string() } else { chains.join(",") };
        println!(
            "{:<20} {:<9} {:<6} {:<40} {:<12} {}",
            p.name,
            p.plugin_version,
            p.api_version.to_string(),
            p.origin.to_string(),
            chains,
            p.description
        );
    }
    for f in &listing.failures {
        println!("skipped: {f}");
    }
}

/// SIGHUP: re-reads the configuration and reloads the plugin chains.
fn reload(broker: &Broker, path: Option<&std::path::Path>) {
    let config = match path {
        None => Config::default(),
        Some(p) => match Config::from_file(p) {
            Ok(c) => c,
            Err(e) => {
                error!("reload failed, the plugin chains in force are kept: {e}");
                return;
            }
        },
    };
    if let Err(e) = broker.reload(&config) {
        error!("reload failed, the plugin chains in force are kept: {e}");
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM; calls `on_hup` on every SIGHUP.
async fn wait_for_signal(on_hup: impl Fn()) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::hangup())) {
            (Ok(mut term), Ok(mut hup)) => loop {
                tokio::select! {
                    // A SIGHUP sent before a SIGTERM is handled before it.
                    biased;
                    _ = hup.recv() => { info!("SIGHUP received: reloading plugins"); on_hup(); }
                    _ = tokio::signal::ctrl_c() => { info!("SIGINT received"); return; }
                    _ = term.recv() => { info!("SIGTERM received"); return; }
                }
            },
            (term, hup) => {
                if let Err(e) = term.and(hup) {
                    warn!("cannot listen for SIGTERM/SIGHUP: {e}");
                }
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = on_hup;
        let _ = tokio::signal::ctrl_c().await;
        info!("Ctrl-C received");
    }
}
