//! store-choice: redb versus fjall on moth's persistence write pattern.
//!
//! Models what a broker's durable session store does:
//! 1. group commit: one writer (the main thread) queues messages for subscribers
//!    (a put of a 200-byte value under `[u16 BE len]["client-000042"][u64 BE seq]`,
//!    1,000 client ids round robin) and deletes each one when it is acknowledged, 500
//!    puts later, so the live set stays at 500 records. Each group of N puts +
//!    N deletes is one atomic commit, durable (fsync) before the next one starts;
//! 2. start-up: bulk-load 1,000,000 records (100,000 clients x 10 seqs) in
//!    durable commits of 10,000, close, reopen and scan everything, then remove
//!    one client's session (prefix scan + delete of its 10 records).
//!
//! Values are pseudo-random bytes, so fjall's LZ4 cannot shrink them.
//! Usage: `store-choice <redb|fjall> [data-dir] [seconds-per-group]`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{ReadableDatabase as _, ReadableTable as _};

const VALUE_LEN: usize = 200;
const ACK_LAG: usize = 500;
const GROUP_SIZES: [usize; 4] = [1, 10, 100, 1000];
const MIN_COMMITS: usize = 50;
const BULK_CLIENTS: u64 = 100_000;
const BULK_SEQS: u64 = 10;
const BULK_GROUP: usize = 10_000;

enum Op {
    Put(Vec<u8>, Vec<u8>),
    Del(Vec<u8>),
}

/// The few things the broker needs from a store.
trait Store {
    /// Applies `ops` in order as one atomic commit, durable when this returns.
    fn commit(&mut self, ops: &[Op]);
    /// Full scan: (records, sum of value lengths).
    fn scan_all(&self) -> (u64, u64);
    /// Deletes every record whose key starts with `prefix` in one durable commit.
    fn remove_prefix(&mut self, prefix: &[u8]) -> usize;
}

// ---------------------------------------------------------------- redb

const TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("queue");

struct Redb(redb::Database);

impl Redb {
    fn open(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("create redb dir");
        let db = redb::Database::create(dir.join("moth.redb")).expect("open redb database");
        let store = Redb(db);
        store.apply(&[]); // create the table so a read transaction can open it
        store
    }

    fn apply(&self, ops: &[Op]) {
        let mut tx = self.0.begin_write().expect("redb begin_write");
        tx.set_durability(redb::Durability::Immediate).expect("redb set_durability");
        {
            let mut table = tx.open_table(TABLE).expect("redb open_table");
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        table.insert(k.as_slice(), v.as_slice()).expect("redb insert");
                    }
                    Op::Del(k) => {
                        table.remove(k.as_slice()).expect("redb remove");
                    }
                }
            }
        }
        tx.commit().expect("redb commit");
    }
}

impl Store for Redb {
    fn commit(&mut self, ops: &[Op]) {
        self.apply(ops);
    }

    fn scan_all(&self) -> (u64, u64) {
        let tx = self.0.begin_read().expect("redb begin_read");
        let table = tx.open_table(TABLE).expect("redb open_table (read)");
        let (mut n, mut bytes) = (0, 0);
        for row in table.iter().expect("redb iter") {
            let (_k, v) = row.expect("redb read row");
            n += 1;
            bytes += v.value().len() as u64;
        }
        (n, bytes)
    }

    fn remove_prefix(&mut self, prefix: &[u8]) -> usize {
        let mut tx = self.0.begin_write().expect("redb begin_write");
        tx.set_durability(redb::Durability::Immediate).expect("redb set_durability");
        let removed;
        {
            let mut table = tx.open_table(TABLE).expect("redb open_table");
            let keys: Vec<Vec<u8>> = table
                .range(prefix..)
                .expect("redb range")
                .map(|row| row.expect("redb read row").0.value().to_vec())
                .take_while(|k| k.starts_with(prefix))
                .collect();
            for k in &keys {
                table.remove(k.as_slice()).expect("redb remove");
            }
            removed = keys.len();
        }
        tx.commit().expect("redb commit");
        removed
    }
}

// ---------------------------------------------------------------- fjall

struct Fjall {
    db: fjall::Database,
    ks: fjall::Keyspace,
}

impl Fjall {
    fn open(dir: &Path) -> Self {
        let db = fjall::Database::builder(dir).open().expect("open fjall database");
        let ks = db.keyspace("queue", fjall::KeyspaceCreateOptions::default).expect("open fjall keyspace");
        Fjall { db, ks }
    }

    fn durable_batch(&self) -> fjall::OwnedWriteBatch {
        self.db.batch().durability(Some(fjall::PersistMode::SyncAll))
    }
}

impl Store for Fjall {
    fn commit(&mut self, ops: &[Op]) {
        // A write batch is atomic; a put and a delete of the same key in one batch
        // resolve in batch order (the later item replaces the earlier one).
        let mut batch = self.durable_batch();
        for op in ops {
            match op {
                Op::Put(k, v) => batch.insert(&self.ks, k.as_slice(), v.as_slice()),
                Op::Del(k) => batch.remove(&self.ks, k.as_slice()),
            }
        }
        batch.commit().expect("fjall batch commit");
    }

    fn scan_all(&self) -> (u64, u64) {
        let (mut n, mut bytes) = (0, 0);
        for guard in self.ks.iter() {
            let (_k, v) = guard.into_inner().expect("fjall read row");
            n += 1;
            bytes += v.len() as u64;
        }
        (n, bytes)
    }

    fn remove_prefix(&mut self, prefix: &[u8]) -> usize {
        let keys: Vec<fjall::UserKey> = self.ks.prefix(prefix).map(|g| g.key().expect("fjall read key")).collect();
        let mut batch = self.durable_batch();
        for k in &keys {
            batch.remove(&self.ks, k.clone());
        }
        batch.commit().expect("fjall batch commit");
        keys.len()
    }
}

// ---------------------------------------------------------------- workload

fn open(engine: &str, dir: &Path) -> Box<dyn Store> {
    match engine {
        "redb" => Box::new(Redb::open(dir)),
        "fjall" => Box::new(Fjall::open(dir)),
        other => panic!("unknown engine {other:?}: expected redb or fjall"),
    }
}

fn client_prefix(client: u64) -> Vec<u8> {
    let id = format!("client-{client:06}");
    let mut key = Vec::with_capacity(2 + id.len() + 8);
    key.extend_from_slice(&(id.len() as u16).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

fn key(client: u64, seq: u64) -> Vec<u8> {
    let mut key = client_prefix(client);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// xorshift64: cheap incompressible payloads, the same for both engines.
struct Payload(u64);

impl Payload {
    fn next(&mut self) -> Vec<u8> {
        let mut v = Vec::with_capacity(VALUE_LEN);
        while v.len() < VALUE_LEN {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            v.extend_from_slice(&self.0.to_le_bytes());
        }
        v.truncate(VALUE_LEN);
        v
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Runs the group-commit phase; returns the on-disk size after closing.
fn group_commit(engine: &str, dir: &Path, secs: f64) -> u64 {
    let mut store = open(engine, dir);
    let mut payload = Payload(0x9E37_79B9_7F4A_7C15);
    let mut queued: VecDeque<Vec<u8>> = VecDeque::new();
    let mut n: u64 = 0; // message counter: client n % 1000, seq n / 1000
    let mut next_put = |payload: &mut Payload| {
        let k = key(n % 1000, n / 1000);
        n += 1;
        (k, payload.next())
    };

    // Warm-up: fill the queue to the ack lag in one untimed commit.
    let warm: Vec<Op> = (0..ACK_LAG)
        .map(|_| {
            let (k, v) = next_put(&mut payload);
            queued.push_back(k.clone());
            Op::Put(k, v)
        })
        .collect();
    store.commit(&warm);

    println!("| engine | group | commits | commits/s | ops/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for group in GROUP_SIZES {
        let mut lat = Vec::new();
        let start = Instant::now();
        while lat.len() < MIN_COMMITS || start.elapsed().as_secs_f64() < secs {
            let mut ops = Vec::with_capacity(2 * group);
            for _ in 0..group {
                let (k, v) = next_put(&mut payload);
                queued.push_back(k.clone());
                ops.push(Op::Put(k, v));
                let acked = queued.pop_front().expect("queue holds ACK_LAG keys");
                ops.push(Op::Del(acked));
            }
            let t = Instant::now();
            store.commit(&ops);
            lat.push(t.elapsed());
        }
        let wall = start.elapsed().as_secs_f64();
        lat.sort();
        let commits = lat.len();
        println!(
            "| {engine} | {group} | {commits} | {:.0} | {:.0} | {:.2} | {:.2} |",
            commits as f64 / wall,
            (commits * 2 * group) as f64 / wall,
            ms(percentile(&lat, 50)),
            ms(percentile(&lat, 99)),
        );
    }
    let (live, _) = store.scan_all();
    assert_eq!(live, ACK_LAG as u64, "live set after group commits");
    drop(store);
    disk_usage(dir)
}

/// What `du -s` reports: allocated blocks, in bytes.
fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).expect("stat data file");
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).expect("read data dir") {
            total += disk_usage(&entry.expect("read dir entry").path());
        }
    }
    total
}

fn bulk_and_startup(engine: &str, dir: &Path) {
    let mut payload = Payload(0xD1B5_4A32_D192_ED03);
    let mut store = open(engine, dir);
    let start = Instant::now();
    let mut ops = Vec::with_capacity(BULK_GROUP);
    // Arrival order: every client gets seq 0, then every client seq 1, ...
    for seq in 0..BULK_SEQS {
        for client in 0..BULK_CLIENTS {
            ops.push(Op::Put(key(client, seq), payload.next()));
            if ops.len() == BULK_GROUP {
                store.commit(&ops);
                ops.clear();
            }
        }
    }
    store.commit(&ops);
    let load = start.elapsed();
    drop(store); // close
    let du = disk_usage(dir);

    let start = Instant::now();
    let mut store = open(engine, dir);
    let reopen = start.elapsed();
    let (records, bytes) = store.scan_all();
    let startup = start.elapsed();
    assert_eq!(records, BULK_CLIENTS * BULK_SEQS, "records after reopen");
    assert_eq!(bytes, records * VALUE_LEN as u64, "value bytes after reopen");

    let t = Instant::now();
    let removed = store.remove_prefix(&client_prefix(42_042));
    let session_delete = t.elapsed();
    assert_eq!(removed, BULK_SEQS as usize, "records of one session");

    println!();
    println!("| engine | load 1M s | du MiB | reopen ms | reopen+scan s | scanned | session delete ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {engine} | {:.2} | {:.1} | {:.1} | {:.3} | {records} | {:.2} |",
        load.as_secs_f64(),
        du as f64 / (1 << 20) as f64,
        ms(reopen),
        startup.as_secs_f64(),
        ms(session_delete),
    );
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line in /proc/self/status")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let engine = args.get(1).map(String::as_str).unwrap_or("");
    if engine != "redb" && engine != "fjall" {
        eprintln!("usage: store-choice <redb|fjall> [data-dir] [seconds-per-group]");
        std::process::exit(2);
    }
    let base = PathBuf::from(args.get(2).map_or("store-choice-data", String::as_str));
    let secs: f64 = args.get(3).map_or(Ok(5.0), |s| s.parse()).expect("seconds-per-group must be a number");
    let run_dir = base.join(format!("{engine}-{}", std::process::id()));
    std::fs::create_dir_all(&run_dir).expect("create data dir");

    let du_group = group_commit(engine, &run_dir.join("group"), secs);
    let hwm_group = vm_hwm_kib();
    bulk_and_startup(engine, &run_dir.join("bulk"));
    let hwm_end = vm_hwm_kib();
    println!();
    println!("| engine | du after group commit MiB | peak RSS after group commit MiB | peak RSS whole run MiB |");
    println!("|---|---:|---:|---:|");
    println!(
        "| {engine} | {:.1} | {:.1} | {:.1} |",
        du_group as f64 / (1 << 20) as f64,
        hwm_group as f64 / 1024.0,
        hwm_end as f64 / 1024.0
    );

    std::fs::remove_dir_all(&run_dir).expect("remove data dir");
}
