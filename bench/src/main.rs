//! `loadgen`: the load generator and report of moth's benchmarks.
//!
//! `loadgen run` drives one scenario against one broker and prints one
//! tab-separated result line; `loadgen report` reads those lines from several
//! rounds and brokers and prints the table of medians with ratios, and writes
//! it as Markdown and an SVG chart. `scripts/bench.sh` runs the whole thing.
//!
//! The generator speaks MQTT itself with pre-encoded packets, checks every
//! count, and reports its own CPU use next to the broker's, because both
//! share the same cores.

mod churn;
mod paced;
mod report;
mod scenarios;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use moth_protocol::packet::QoS;

use scenarios::{Outcome, Target};

#[derive(Parser)]
#[command(name = "loadgen", about = "MQTT load generator for moth's benchmarks")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario and print one result line.
    Run {
        /// Broker address.
        #[arg(long, default_value = "127.0.0.1:1883")]
        addr: SocketAddr,
        /// Name of the broker, for the report.
        #[arg(long)]
        broker: String,
        /// The broker's pid, for its CPU and memory figures.
        #[arg(long)]
        pid: Option<u32>,
        /// Loopback source addresses to spread connections over (127.0.0.1..).
        #[arg(long, default_value_t = 1)]
        sources: u8,
        /// One of: fanin-qos0 fanin-qos1 fanout-qos0 fanout-qos1 pairs-qos1 latency connect idle connect-auth
        #[arg(long)]
        scenario: String,
        /// Connections to hold (idle) or clients with passwords (connect-auth).
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
    },
    /// Summarise result lines into a table, Markdown and an SVG chart.
    Report {
        /// File of result lines from `run`.
        input: PathBuf,
        #[arg(long)]
        markdown: Option<PathBuf>,
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

/// Connections in the connect scenario: about a second of work, long
/// enough that starting up is not what is measured; or as many as start in
/// `CONNECT_LIMIT` (rumqttd takes a minute for 30,000).
const CONNECT_TOTAL: usize = 30_000;
const CONNECT_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Client threads of the connect scenario: one per CPU. With one thread the
/// client used all of it and set the rate for moth (27k/s either broker);
/// with two it uses about one core of two and the broker is what runs out.
fn connect_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The password of every `userN` in the connect-auth scenario's password files.
const AUTH_PASSWORD: &str = "bench-secret";

/// Scenario name -> (unit, higher is better).
pub fn unit(scenario: &str) -> (&'static str, bool) {
    // A `-v5` or `-persistent` row has its plain row's unit.
    match scenario.replace("-v5", "").replace("-persistent", "").as_str() {
        "latency" => ("p99 µs at 5k msg/s", false),
        "latency-p999" => ("p99.9 µs at 5k msg/s", false),
        "latency-cpu" => ("broker CPU µs per message at 5k msg/s", false),
        "connect" => ("CONNECT/s", true),
        "connect-cpu" => ("broker CPU µs per CONNECT", false),
        "idle" => ("bytes/idle conn", false),
        "connect-auth" => ("s until 5k clients with passwords are in", false),
        s if s.starts_with("fanout") => ("deliveries/s", true),
        _ => ("msg/s", true),
    }
}

async fn run_scenario(t: &Target, scenario: &str, pid: Option<u32>, connections: usize) -> std::io::Result<Outcome> {
    // `fanout-qos0-v5` is `fanout-qos0` with MQTT 5 clients.
    let (scenario, v5) = scenario.strip_suffix("-v5").map_or((scenario, false), |base| (base, true));
    wire::set_v5(v5);
    // `fanin-qos1-persistent`: every client has a persistent session, which
    // a broker with persistence on keeps on disk.
    let (scenario, persistent) = scenario.strip_suffix("-persistent").map_or((scenario, false), |base| (base, true));
    wire::set_persistent(persistent);
    match scenario {
        "fanin-qos0" => scenarios::fan_in(t, 8, 50_000, QoS::AtMostOnce).await,
        "fanin-qos1" => scenarios::fan_in(t, 8, 20_000, QoS::AtLeastOnce).await,
        "fanout-qos0" => scenarios::fan_out(t, 32, 20_000, QoS::AtMostOnce).await,
        "fanout-qos1" => scenarios::fan_out(t, 32, 5_000, QoS::AtLeastOnce).await,
        "pairs-qos1" => scenarios::pairs(t, 16, 10_000, QoS::AtLeastOnce).await,
        "latency" => scenarios::latency(t, 5_000, 20).await,
        "connect" => scenarios::connect_rate(t, CONNECT_TOTAL, CONNECT_LIMIT, 32, connect_threads()).await,
        "idle" => scenarios::idle(t, connections, pid).await,
        "connect-auth" => scenarios::connect_auth(t, connections, 500, AUTH_PASSWORD, pid).await,
        other => Err(std::io::Error::other(format!("unknown scenario `{other}`"))),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Report { input, markdown, svg } => match report::report(&input, markdown.as_deref(), svg.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadgen report: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run { addr, broker, pid, sources, scenario, connections } => {
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("loadgen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let target = Target { addr, sources };
            let (gen0, broker0) = (scenarios::cpu_seconds(None), scenarios::cpu_seconds(pid));
            let wall = std::time::Instant::now();
            let result = runtime.block_on(run_scenario(&target, &scenario, pid, connections));
            let secs = wall.elapsed().as_secs_f64();
            let pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => 100.0 * (b - a) / secs,
                _ => f64::NAN,
            };
            let gen_cpu = pct(gen0, scenarios::cpu_seconds(None));
            let broker_cpu = pct(broker0, scenarios::cpu_seconds(pid));
            match result {
                Ok(o) => {
                    let extra: Vec<String> = o.extra.iter().map(|(k, v)| format!("{k}={v:.1}")).collect();
                    println!(
                        "{broker}\t{scenario}\t{:.1}\t{}\t{}\t{gen_cpu:.1}\t{broker_cpu:.1}\t{}\t{}",
                        o.value,
                        o.sent,
                        o.received,
                        o.error.as_deref().unwrap_or("-"),
                        extra.join(";")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("{broker}\t{scenario}\tNaN\t0\t0\t{gen_cpu:.1}\t{broker_cpu:.1}\t{e}\t");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
