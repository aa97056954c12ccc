//! What one idle connection costs moth's heap, allocation by allocation.
//!
//! RSS per connection (the `idle` scenario of `loadgen`) says how much; this
//! says where. It runs moth in-process (the bench configuration, port 0)
//! under a counting global allocator that only counts the broker's own
//! threads, opens N idle MQTT connections with blocking std sockets from the
//! main thread (which allocates nothing per connection), and prints the live
//! heap bytes per connection and the allocations that grew by about N, by
//! size: the list to shrink.
//!
//! ```text
//! cargo run --release -p moth-bench --bin connheap -- 2000
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicI64, Ordering};

/// Sizes counted exactly up to this; larger ones share the last bucket.
const BUCKETS: usize = 16 * 1024;

struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BY_SIZE: [AtomicI64; BUCKETS + 1] = [const { AtomicI64::new(0) }; BUCKETS + 1];

thread_local! {
    /// Set on the broker runtime's threads: only their allocations count.
    static BROKER_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize, sign: i64) {
    if BROKER_THREAD.try_with(Cell::get).unwrap_or(false) {
        LIVE_BYTES.fetch_add(sign * size as i64, Ordering::Relaxed);
        LIVE_BY_SIZE[size.min(BUCKETS)].fetch_add(sign, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator; the counting touches only atomics
// and a const-initialised thread local (no allocation, no re-entrance).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout.size(), -1);
        count(new_size, 1);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn snapshot() -> (i64, Vec<i64>) {
    (LIVE_BYTES.load(Ordering::Relaxed), LIVE_BY_SIZE.iter().map(|c| c.load(Ordering::Relaxed)).collect())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(|| BROKER_THREAD.with(|b| b.set(true)))
        .build()?;
    let config = moth::Config::from_yaml_str(
        "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:0\nauth:\n  allow-anonymous: true\n",
    )?;
    let broker = moth::Broker::new(config)?;
    runtime.block_on(broker.start())?;
    let addr = broker.local_addr("default").ok_or("no listener address")?;
    println!("future of one connection's task: {} bytes", moth::internal::serve_future_size());
    for (what, size) in moth::internal::state_sizes() {
        println!("{what}: {size} bytes");
    }

    // Warm up (lazily built tables, the first session), then measure.
    let mut held: Vec<TcpStream> = Vec::with_capacity(n + 100);
    let open = |i: usize| -> std::io::Result<TcpStream> {
        let mut s = TcpStream::connect(addr)?;
        s.write_all(&connect_packet(&format!("idle-{i:08}")))?;
        let mut connack = [0u8; 4];
        s.read_exact(&mut connack)?;
        if connack != [0x20, 2, 0, 0] {
            return Err(std::io::Error::other(format!("refused: {connack:?}")));
        }
        Ok(s)
    };
    for i in 0..100 {
        held.push(open(i)?);
    }
    let settle = || std::thread::sleep(std::time::Duration::from_millis(500));
    settle();
    let (bytes0, sizes0) = snapshot();
    let rss0 = rss_kib();
    for i in 100..100 + n {
        held.push(open(i)?);
    }
    settle();
    let (bytes1, sizes1) = snapshot();
    let rss1 = rss_kib();

    let per = |d: i64| d as f64 / n as f64;
    println!("{n} idle connections");
    println!("  live heap per connection: {:.0} bytes", per(bytes1 - bytes0));
    println!("  RSS per connection (whole process, clients included): {:.0} bytes", per((rss1 - rss0) as i64 * 1024));
    println!("  allocations per connection, by size (count per connection x size):");
    let mut rows: Vec<(usize, f64)> =
        (0..=BUCKETS).map(|size| (size, per(sizes1[size] - sizes0[size]))).filter(|(_, c)| c.abs() >= 0.05).collect();
    rows.sort_by(|a, b| (b.1 * b.0 as f64).total_cmp(&(a.1 * a.0 as f64)));
    let mut allocs = 0.0;
    for (size, c) in &rows {
        allocs += c;
        let label = if *size == BUCKETS { format!(">={BUCKETS}") } else { size.to_string() };
        println!("    {c:>6.2} x {label:>6} B = {:>7.0} B", c * *size as f64);
    }
    println!("  allocations per connection: {allocs:.1}");
    drop(held);
    runtime.block_on(broker.shutdown());
    Ok(())
}

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0x02, 0x58]);
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut out = vec![0x10, body.len() as u8];
    out.extend_from_slice(&body);
    out
}
