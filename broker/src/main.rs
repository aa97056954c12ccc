//! The `moth` program: runs the broker from a configuration file, or from the
//! embedded default (one TCP listener on 0.0.0.0:1883, anonymous access),
//! like hbmqtt's `hbmqtt` command.
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM) or a passing
//! `--check`; 2 for a configuration error; 1 when the broker cannot start
//! (a port already in use, say).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use moth::{Broker, Config};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(name = "moth", version, about = "An MQTT 3.1.1 broker configured like hbmqtt")]
struct Args {
    /// Configuration file (hbmqtt YAML). Without it, the embedded default is used.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
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
    if args.check {
        let listeners: Vec<String> = broker
            .config()
            .listeners
            .iter()
            .map(|l| {
                let transport = match (l.kind, l.tls.is_some()) {
                    (moth::config::ListenerKind::Tcp, false) => "tcp",
                    (moth::config::ListenerKind::Tcp, true) => "tls",
                    (moth::config::ListenerKind::Ws, false) => "ws",
                    (moth::config::ListenerKind::Ws, true) => "wss",
                };
                format!("{} ({transport} on {})", l.name, l.bind)
            })
            .collect();
        println!("{origin}: configuration OK; listeners: {}", listeners.join(", "));
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
        wait_for_signal().await;
        broker.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
                    _ = term.recv() => info!("SIGTERM received"),
                }
            }
            Err(e) => {
                warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        info!("Ctrl-C received");
    }
}
