//! Helpers shared by the tests that drive the `moth` binary: a temporary
//! directory, a free port, and `moth` processes waited for with a deadline
//! (a thread does the blocking wait and reports over a channel, so a broker
//! that ignores a signal fails the test instead of hanging it).
// Not every test binary uses every helper.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "moth-test-{tag}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Writes `text` to `name` in this directory and returns its path.
    pub(crate) fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write config file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on right now: bind port 0, read it, let it go.
pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().unwrap().port()
}

pub(crate) const MOTH: &str = env!("CARGO_BIN_EXE_moth");
/// How long a command or an event may take before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Helpers: temp files, processes with deadlines, a tiny blocking MQTT client.

pub(crate) fn moth() -> Command {
    let mut c = Command::new(MOTH);
    // Plain log lines, whatever the environment says.
    c.env("NO_COLOR", "1").env_remove("RUST_LOG");
    c
}

pub(crate) fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// A spawned process whose exit is reported over a channel.
pub(crate) struct Running {
    pub pid: u32,
    exited: mpsc::Receiver<std::io::Result<Output>>,
    finished: bool,
}

impl Running {
    pub(crate) fn spawn(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child: Child = cmd.spawn().expect("spawn moth");
        let pid = child.id();
        let (tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        Running { pid, exited, finished: false }
    }

    /// The output if the process has already exited.
    pub(crate) fn try_output(&mut self) -> Option<Output> {
        match self.exited.try_recv() {
            Ok(r) => {
                self.finished = true;
                Some(r.expect("wait for moth"))
            }
            Err(_) => None,
        }
    }

    /// Waits for the exit; kills the process and fails after `DEADLINE`.
    pub(crate) fn wait(mut self, what: &str) -> Output {
        match self.exited.recv_timeout(DEADLINE) {
            Ok(r) => {
                self.finished = true;
                r.expect("wait for moth")
            }
            Err(_) => panic!("moth did not exit within {DEADLINE:?} ({what}); killed it"),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished && self.exited.try_recv().is_err() {
            let _ = Command::new("kill").arg("-KILL").arg(self.pid.to_string()).status();
        }
    }
}

/// Runs moth with `args` to completion (with a deadline).
pub(crate) fn run(args: &[&str]) -> Output {
    let mut cmd = moth();
    cmd.args(args);
    Running::spawn(cmd).wait(&format!("moth {}", args.join(" ")))
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn describe(out: &Output) -> String {
    format!("status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}", out.status, text(&out.stdout), text(&out.stderr))
}

/// Retries a TCP connect until it succeeds, `moth` exits, or the deadline passes.
pub(crate) fn wait_until_listening(proc: &mut Running, addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            return s;
        }
        if let Some(out) = proc.try_output() {
            panic!("moth exited before listening on {addr}:\n{}", describe(&out));
        }
        assert!(Instant::now() < deadline, "moth did not listen on {addr} within {DEADLINE:?}");
        // Readiness poll interval, not a wait for an event.
        std::thread::sleep(Duration::from_millis(20));
    }
}
