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
mod http_ok;
mod paced;
mod report;
mod restart;
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
    /// Serve HTTP/1.1 on loopback, answering every request `200
    /// {"ok": true}` at once (the connect-auth-http row's service).
    HttpOk {
        #[arg(long)]
        port: u16,
    },
    /// Give a broker with persistence a large acknowledged state (the
    /// restart row): retained messages, persistent sessions with a queued
    /// message each.
    Fill {
        #[arg(long, default_value = "127.0.0.1:1883")]
        addr: SocketAddr,
        #[arg(long, default_value_t = 1_000_000)]
        retained: u64,
        #[arg(long, default_value_t = 100_000)]
        sessions: u64,
    },
    /// Wait until a (re)started broker answers a CONNECT; print the restart
    /// row: seconds, with the broker's memory and its store's size.
    Ready {
        #[arg(long, default_value = "127.0.0.1:1883")]
        addr: SocketAddr,
        #[arg(long)]
        broker: String,
        #[arg(long)]
        pid: Option<u32>,
        /// The broker's store directory, for its size on disk.
        #[arg(long)]
        store: Option<PathBuf>,
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

/// The scenario a persistence variant runs (`fanin-qos1-disk-batch` ->
/// `fanin-qos1`); others as they are.
fn base_scenario(scenario: &str) -> &str {
    ["-persistent", "-disk-batch", "-disk-always"].iter().find_map(|s| scenario.strip_suffix(s)).unwrap_or(scenario)
}

/// The password of every `userN` in the connect-auth scenario's password files.
const AUTH_PASSWORD: &str = "bench-secret";

/// Scenario name -> (unit, higher is better).
pub fn unit(scenario: &str) -> (&'static str, bool) {
    // A `-v5`, `-persistent` or `-disk-...` row has its plain row's unit.
    match base_scenario(scenario).replace("-v5", "").as_str() {
        "latency" => ("p99 µs at 5k msg/s", false),
        "latency-p999" => ("p99.9 µs at 5k msg/s", false),
        "latency-cpu" => ("broker CPU µs per message at 5k msg/s", false),
        "connect" => ("CONNECT/s", true),
        "connect-cpu" => ("broker CPU µs per CONNECT", false),
        s if s.starts_with("fanout") && s.ends_with("-cpu") => ("broker CPU ns per delivery", false),
        s if s.ends_with("-cpu") => ("broker CPU ns per message", false),
        "idle" => ("bytes/idle conn", false),
        "connect-auth" | "connect-auth-http" => ("s until 5k clients with passwords are in", false),
        "connect-auth-http-warm" => ("s until the same 5k are in again, answers cached", false),
        "restart" => ("s from start to CONNACK, 1M retained + 100k sessions stored", false),
        "restart-rss" => ("MiB resident after that restart", false),
        "restart-store" => ("MiB of store on disk", false),
        s if s.starts_with("fanout") => ("deliveries/s", true),
        _ => ("msg/s", true),
    }
}

async fn run_scenario(t: &Target, scenario: &str, pid: Option<u32>, connections: usize) -> std::io::Result<Outcome> {
    // `fanout-qos0-v5` is `fanout-qos0` with MQTT 5 clients.
    let (scenario, v5) = scenario.strip_suffix("-v5").map_or((scenario, false), |base| (base, true));
    wire::set_v5(v5);
    // `fanin-qos1-persistent`: every client has a persistent session, which
    // a broker with persistence on keeps on disk; `-disk-batch` and
    // `-disk-always` are the same clients, against brokers that bench.sh
    // started with persistence (moth with that `sync`).
    let base = base_scenario(scenario);
    wire::set_persistent(base != scenario);
    // `sync: always` commits every change on its own (a few thousand a
    // second): a twentieth of the messages keeps its run under ten seconds.
    let share = if scenario.ends_with("-disk-always") { 20 } else { 1 };
    let scenario = base;
    // Five times these make moth's runs last a second, but they then
    // measure Mosquitto behind a queue it is slower to work through the
    // longer it grows (a third of its rate here): not the comparison these
    // rows are for.
    match scenario {
        "fanin-qos0" => scenarios::fan_in(t, 8, 50_000, QoS::AtMostOnce).await,
        "fanin-qos1" => scenarios::fan_in(t, 8, 20_000 / share, QoS::AtLeastOnce).await,
        "fanout-qos0" => scenarios::fan_out(t, 32, 20_000, QoS::AtMostOnce).await,
        "fanout-qos1" => scenarios::fan_out(t, 32, 5_000, QoS::AtLeastOnce).await,
        "pairs-qos1" => scenarios::pairs(t, 16, 10_000 / share, QoS::AtLeastOnce).await,
        "latency" => scenarios::latency(t, 5_000, 20).await,
        "connect" => scenarios::connect_rate(t, CONNECT_TOTAL, CONNECT_LIMIT, 32, connect_threads()).await,
        "idle" => scenarios::idle(t, connections, pid).await,
        "connect-auth" | "connect-auth-http" => scenarios::connect_auth(t, connections, 500, AUTH_PASSWORD, pid).await,
        other => Err(std::io::Error::other(format!("unknown scenario `{other}`"))),
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("loadgen: {e}");
            None
        }
    }
}

/// The exit code of a subcommand that prints nothing on success.
fn done(what: &str, result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Bytes of the files in `dir` and below.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Report { input, markdown, svg } => {
            done("report", report::report(&input, markdown.as_deref(), svg.as_deref()))
        }
        Command::Fill { addr, retained, sessions } => match runtime() {
            Some(rt) => done("fill", rt.block_on(restart::fill(addr, retained, sessions))),
            None => ExitCode::FAILURE,
        },
        Command::Ready { addr, broker, pid, store } => {
            let Some(rt) = runtime() else { return ExitCode::FAILURE };
            match rt.block_on(restart::ready(addr, std::time::Duration::from_secs(120))) {
                Ok(secs) => {
                    let rss = pid.and_then(scenarios::rss_bytes).map_or(f64::NAN, |b| b as f64 / 1048576.0);
                    let size = store.as_deref().map_or(f64::NAN, |d| dir_bytes(d) as f64 / 1048576.0);
                    println!("{broker}\trestart\t{secs:.3}\t1\t1\tNaN\tNaN\t-\trss_mb={rss:.1};store_mb={size:.1}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("{broker}\trestart\tNaN\t0\t0\tNaN\tNaN\t{e}\t");
                    ExitCode::FAILURE
                }
            }
        }
        Command::HttpOk { port } => done("http-ok", http_ok::serve(port)),
        Command::Run { addr, broker, pid, sources, scenario, connections } => {
            let Some(runtime) = runtime() else { return ExitCode::FAILURE };
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
                    let mut extra: Vec<String> = o.extra.iter().map(|(k, v)| format!("{k}={v:.1}")).collect();
                    // The span `broker_cpu` is a share of: with it the report
                    // turns the share back into CPU time per message.
                    extra.push(format!("wall={secs:.3}"));
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
