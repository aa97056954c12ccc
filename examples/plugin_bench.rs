//! Measures what the plugin ABI costs: one `authenticate` call through a
//! plugin library (abi_stable) against the built-in `auth_anonymous` behind
//! the same object type and a plain Rust call, then CONNECTs per second with
//! an allow-all plugin library against `auth_anonymous`.
//!
//! ```sh
//! cargo build --release -p scripted-a
//! cargo run --release -p moth-examples --example plugin_bench -- target/release
//! ```
//! (the argument is a directory holding `libscripted_a.so`).

use std::hint::black_box;
use std::time::Instant;

use bytes::BytesMut;
use moth::internal::{AuthInput, Registry, load_plugin_library};
use moth::{Broker, Config};
use moth_plugin_api::{AuthRequest, Decision, PluginBox};
use moth_protocol::codec;
use moth_protocol::packet::{Connect, Disconnect, Packet, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CALLS: u32 = 10_000_000;

fn per_call(object: &PluginBox, request: &AuthRequest<'_>) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..CALLS {
            black_box(object.authenticate(black_box(request)).is_ok());
        }
        best = best.min(t.elapsed().as_nanos() as f64 / f64::from(CALLS));
    }
    best
}

fn plain_rust(request: &AuthRequest<'_>) -> f64 {
    #[inline(never)]
    fn allow(r: &AuthRequest<'_>) -> Decision {
        if r.username().is_some() { Decision::allow() } else { Decision::ignore() }
    }
    let f: &dyn Fn(&AuthRequest<'_>) -> Decision = &allow;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..CALLS {
            black_box(black_box(f)(black_box(request)));
        }
        best = best.min(t.elapsed().as_nanos() as f64 / f64::from(CALLS));
    }
    best
}

async fn connects_per_second(yaml: &str, clients: usize, per_client: usize) -> f64 {
    let config = Config::from_yaml_str(yaml).expect("config");
    let broker = Broker::new(config).expect("broker");
    broker.start().await.expect("start");
    let addr = broker.local_addrs()[0].1;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                let mut s = TcpStream::connect(addr).await.expect("connect");
                s.set_nodelay(true).expect("nodelay");
                let mut out = BytesMut::new();
                let connect = Connect {
                    protocol: Protocol::V311,
                    clean_session: true,
                    keep_alive: 60,
                    client_id: format!("bench-{c}-{i}"),
                    will: None,
                    username: Some("user".into()),
                    password: Some(bytes::Bytes::from_static(b"pw")),
                    properties: Default::default(),
                };
                codec::encode(&Packet::Connect(Box::new(connect)), Protocol::V311, &mut out);
                codec::encode(&Packet::Disconnect(Disconnect::default()), Protocol::V311, &mut out);
                s.write_all(&out).await.expect("write");
                let mut ack = [0u8; 4];
                s.read_exact(&mut ack).await.expect("CONNACK");
                assert_eq!(ack[3], 0, "accepted");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let rate = (clients * per_client) as f64 / t.elapsed().as_secs_f64();
    broker.shutdown().await;
    rate
}

#[tokio::main]
async fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "target/release".into());
    let mut config = Config::from_yaml_str(&format!(
        "plugins-dir: '{dir}'\nplugins-config:\n  scripted_a: {{auth-default: allow}}\n"
    ))
    .expect("config");
    config.auth.allow_anonymous = true;
    let registry = Registry::scan(&config.plugins.dirs, moth_plugin_api::DEFAULT_NAMESPACE);
    let dynamic =
        registry.instantiate("scripted_a", &config).expect("libscripted_a.so in the directory").expect("builds");
    let builtin = registry.instantiate("auth_anonymous", &config).expect("built-in").expect("builds");
    let input = AuthInput {
        client_id: "bench".into(),
        username: Some("user".into()),
        password: Some(b"pw".to_vec()),
        peer_addr: "127.0.0.1:1".into(),
        listener: "default".into(),
        protocol_level: 4,
        tls: None,
        extra: Vec::new(),
    };
    let request = input.request();
    println!("authenticate, ns per call (best of 3 x {CALLS}):");
    println!("  plain Rust dyn Fn          {:6.1}", plain_rust(&request));
    println!("  built-in auth_anonymous    {:6.1}", per_call(&builtin, &request));
    println!("  plugin library (scripted_a){:6.1}", per_call(&dynamic, &request));

    let listener = "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:0\n";
    let (clients, per_client) = (8, 2000);
    let builtin_rate =
        connects_per_second(&format!("{listener}auth:\n  plugins: [auth_anonymous]\n"), clients, per_client).await;
    let dynamic_rate = connects_per_second(
        &format!("{listener}plugins-dir: '{dir}'\nauth:\n  plugins: [scripted_a]\nplugins-config:\n  scripted_a: {{auth-default: allow}}\n"),
        clients,
        per_client,
    )
    .await;
    println!("CONNECT+CONNACK per second ({clients} clients x {per_client}, new TCP connection each):");
    println!("  auth_anonymous             {builtin_rate:8.0}");
    println!("  scripted_a (plugin library){dynamic_rate:8.0}");

    // What a hot swap leaves behind: load a changed library N times.
    let swaps = 100;
    let scratch = std::env::temp_dir().join(format!("moth-swap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let lib = scratch.join("libscripted_a.so");
    let source = std::path::Path::new(&dir).join("libscripted_a.so");
    let before = rss_kib();
    for i in 0..swaps {
        let _ = std::fs::remove_file(&lib);
        std::fs::copy(&source, &lib).expect("copy library");
        // A different modification time makes it a changed file.
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i);
        std::fs::File::options().write(true).open(&lib).and_then(|f| f.set_modified(t)).expect("set mtime");
        load_plugin_library(&lib).expect("loads");
    }
    let after = rss_kib();
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "hot swap: {swaps} loads of a changed library: RSS +{} KiB ({} KiB per swap)",
        after - before,
        (after - before) / swaps
    );
}

/// Resident set size of this process, KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
