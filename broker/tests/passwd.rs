//! `moth passwd`, driven as a user would: the real binary, real files, the
//! password on standard input (no terminal), and a running moth with the
//! `auth_file` plugin that must accept what the tool wrote.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;

use bytes::BytesMut;
use common::{TempDir, free_port};
use moth::{Broker, Config};
use moth_protocol::codec;
use moth_protocol::packet::{Connect, ConnectReturnCode, Packet, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MOTH: &str = env!("CARGO_BIN_EXE_moth");
/// How long a command or an event may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(15);
/// Cheap argon2 parameters: a test login should not cost 40 ms each.
const CHEAP: [&str; 4] = ["--memory", "64", "-I", "1"];

/// Runs `moth passwd ARGS` with `stdin` as its standard input, with a deadline.
fn passwd(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(MOTH)
        .arg("passwd")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn moth passwd");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("moth passwd {args:?} did not exit within {DEADLINE:?}"))
        .unwrap()
}

/// The exit code and stderr, for assertions and failure messages.
fn outcome(out: &Output) -> (i32, String) {
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ok(out: &Output) {
    let (code, err) = outcome(out);
    assert_eq!(code, 0, "moth passwd failed: {err}");
    assert!(out.stdout.is_empty() && err.is_empty(), "a successful run prints nothing");
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// The `user:hash` lines of a file, as (user, hash).
fn entries(p: &Path) -> Vec<(String, String)> {
    read(p)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (u, h) = l.split_once(':').unwrap();
            (u.to_string(), h.to_string())
        })
        .collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn create_add_update_and_delete_users() {
    let dir = TempDir::new("passwd-edit");
    let f = dir.0.join("passwd");
    let file = f.to_str().unwrap();
    ok(&passwd(&[&CHEAP[..], &["-c", "-b", file, "alice", "wonderland"]].concat(), ""));
    assert_eq!(mode(&f), 0o600, "a new password file is private");
    let alice = entries(&f);
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].0, "alice");
    assert!(alice[0].1.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{}", alice[0].1);
    assert!(!read(&f).contains("wonderland"), "the password itself is never stored");

    // Prompted (stdin, no terminal): the password and its confirmation.
    ok(&passwd(&[&CHEAP[..], &[file, "bob"]].concat(), "builder\nbuilder\n"));
    // Operators' comments survive edits; the mode they chose is kept.
    let text = read(&f);
    std::fs::write(&f, format!("# moth users\n{text}")).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(&passwd(&[&CHEAP[..], &["-b", file, "alice", "looking-glass"]].concat(), ""));
    let after = entries(&f);
    assert_eq!(after.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["alice", "bob"], "updated in place");
    assert_ne!(after[0].1, alice[0].1, "alice has a new hash");
    assert!(read(&f).starts_with("# moth users\n"));
    assert_eq!(mode(&f), 0o640, "an existing file keeps its mode");

    ok(&passwd(&[&["-D"][..], &[file, "alice"]].concat(), ""));
    assert_eq!(entries(&f).iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["bob"]);
    let (code, err) = outcome(&passwd(&["-D", file, "alice"], ""));
    assert_eq!((code, err.trim()), (1, format!("moth passwd: {file}: user `alice` is not in the file").as_str()));

    // -c overwrites.
    ok(&passwd(&[&CHEAP[..], &["-c", "-b", file, "carol", "x"]].concat(), ""));
    assert_eq!(entries(&f).iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["carol"]);
}

#[test]
fn mismatched_or_missing_passwords_are_refused_and_the_file_is_unchanged() {
    let dir = TempDir::new("passwd-mismatch");
    let f = dir.file("passwd", "# empty\n");
    let file = f.to_str().unwrap();
    let (code, err) = outcome(&passwd(&[&CHEAP[..], &[file, "alice"]].concat(), "secret\nsecreT\n"));
    assert_eq!((code, err.trim()), (1, "moth passwd: the passwords do not match"));
    assert!(!err.contains("secret"), "a password never appears in a message");
    let (code, err) = outcome(&passwd(&[&CHEAP[..], &[file, "alice"]].concat(), ""));
    assert_eq!((code, err.trim()), (1, "moth passwd: no password given on standard input"));
    let (code, err) = outcome(&passwd(&[&CHEAP[..], &[file, "alice"]].concat(), "\n"));
    assert_eq!((code, err.trim()), (2, "moth passwd: the password is empty"));
    assert_eq!(read(&f), "# empty\n");
}

#[test]
fn bad_usage_exits_2_and_io_errors_exit_1_with_one_line_naming_the_file() {
    let dir = TempDir::new("passwd-usage");
    let f = dir.file("passwd", "alice:x\n");
    let file = f.to_str().unwrap();
    let usage: &[&[&str]] = &[
        &["-b", file, "alice"],
        &["-b", file, "a:b", "pw"],
        &["-U", file, "alice"],
        &["-c", "-D", file, "alice"],
        &["-H", "sha512", "-b", file, "alice", "pw"],
        &["--memory", "1", "-b", file, "alice", "pw"],
        &["-H", "sha512-pbkdf2", "--memory", "64", "-b", file, "alice", "pw"],
        &["-H", "sha512-pbkdf2", "-I", "0", "-b", file, "alice", "pw"],
        &[file],
    ];
    for args in usage {
        let (code, err) = outcome(&passwd(args, ""));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.contains("pw\n"), "{err}");
    }
    let missing = dir.0.join("nope");
    let (code, err) = outcome(&passwd(&["-b", missing.to_str().unwrap(), "alice", "pw"], ""));
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with(&format!("moth passwd: {}: cannot read:", missing.display())), "{err}");
    assert!(err.contains("use -c to create it"), "{err}");
    assert_eq!(read(&f), "alice:x\n");
}

#[test]
fn a_failed_write_leaves_the_target_intact_and_no_temporary_file() {
    // A non-empty directory where the file should go: the temporary file is
    // written, the rename fails, and nothing is left behind. (Tests may run
    // as root, for whom a read-only directory is no obstacle.)
    let dir = TempDir::new("passwd-atomic");
    let target = dir.0.join("passwd");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), "x").unwrap();
    let (code, err) = outcome(&passwd(&[&CHEAP[..], &["-c", "-b", target.to_str().unwrap(), "a", "pw"]].concat(), ""));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot write (the file is unchanged)"), "{err}");
    assert_eq!(read(&target.join("keep")), "x");
    let names: Vec<_> = std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["passwd"], "no temporary file is left behind");
}

#[test]
fn upgrade_hashes_a_plain_text_file_once_and_refuses_a_second_run() {
    let dir = TempDir::new("passwd-upgrade");
    let f = dir.file("passwd", "# plain\nalice:wonderland\nbob:builder\n");
    let file = f.to_str().unwrap();
    ok(&passwd(&[&CHEAP[..], &["-U", file]].concat(), ""));
    let hashed = read(&f);
    assert!(hashed.starts_with("# plain\n"), "{hashed}");
    let e = entries(&f);
    assert_eq!(e.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
    assert!(e.iter().all(|(_, h)| h.starts_with("$argon2id$")), "{hashed}");
    assert!(!hashed.contains("wonderland") && !hashed.contains("builder"));

    let (code, err) = outcome(&passwd(&[&CHEAP[..], &["-U", file]].concat(), ""));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{file}: line 2: user `alice` already has a $argon2id$ hash")),
        "the second run names the line: {err}"
    );
    assert_eq!(read(&f), hashed, "a refused upgrade changes nothing");
}

/// CONNECT with a username and password; the CONNACK return code.
/// A broker on an ephemeral port whose only authentication is `auth_file` on `file`.
async fn auth_file_broker(file: &str) -> (Broker, std::net::SocketAddr) {
    let yaml = format!(
        "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:0\n\
         auth:\n  allow-anonymous: false\n  password-file: '{file}'\n  plugins: [auth_file]\n"
    );
    let broker = Broker::new(Config::from_yaml_str(&yaml).unwrap()).expect("broker builds from the file");
    broker.start().await.expect("broker starts");
    let addr = broker.local_addrs()[0].1;
    (broker, addr)
}

async fn connack(addr: std::net::SocketAddr, user: &str, password: &str) -> ConnectReturnCode {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to moth");
    let mut out = BytesMut::new();
    codec::encode(
        &Packet::Connect(Box::new(Connect {
            protocol: Protocol::V311,
            clean_session: true,
            keep_alive: 30,
            client_id: format!("pw-{user}"),
            will: None,
            username: Some(user.to_string()),
            password: Some(password.as_bytes().to_vec().into()),
            properties: Default::default(),
        })),
        Protocol::V311,
        &mut out,
    );
    stream.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let read = async {
        loop {
            if let Some(p) = codec::decode(&mut buf, 1 << 16, Protocol::V311).expect("well-formed packet") {
                return p;
            }
            let mut chunk = [0u8; 256];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "moth closed the connection without a CONNACK");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    match tokio::time::timeout(DEADLINE, read).await.expect("CONNACK in time") {
        Packet::Connack(c) => c.code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_by_moth_passwd_is_accepted_by_auth_file() {
    let dir = TempDir::new("passwd-roundtrip");
    let f = dir.0.join("passwd");
    let file = f.to_str().unwrap();
    // Default (OWASP) parameters for one user, cheap ones for the rest, one upgraded from plain text.
    ok(&passwd(&["-c", "-b", file, "alice", "wonderland"], ""));
    ok(&passwd(&[&CHEAP[..], &[file, "bob"]].concat(), "builder\nbuilder\n"));
    let plain = dir.file("plain", "carol:s3cret\n");
    ok(&passwd(&[&CHEAP[..], &["-U", plain.to_str().unwrap()]].concat(), ""));
    std::fs::write(&f, format!("{}{}", read(&f), read(&plain))).unwrap();

    let (broker, addr) = auth_file_broker(file).await;
    assert_eq!(connack(addr, "alice", "wonderland").await, ConnectReturnCode::Accepted);
    assert_eq!(connack(addr, "bob", "builder").await, ConnectReturnCode::Accepted);
    assert_eq!(connack(addr, "carol", "s3cret").await, ConnectReturnCode::Accepted);
    assert_eq!(connack(addr, "alice", "builder").await, ConnectReturnCode::BadUsernameOrPassword);
    assert_eq!(connack(addr, "carol", "s3cret ").await, ConnectReturnCode::BadUsernameOrPassword);
    broker.shutdown().await;
}

/// A real Mosquitto (Debian's, installed by scripts/test.sh) on `port`,
/// reading `conf`; killed when dropped.
struct Mosquitto(std::process::Child);

impl Mosquitto {
    fn start(conf: &Path, port: u16) -> Mosquitto {
        let child = Command::new("mosquitto")
            .args(["-c", conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (apt package mosquitto; scripts/test.sh installs it)");
        let m = Mosquitto(child);
        // Readiness by retry with a deadline.
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "mosquitto did not listen on {port} within {DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mosquitto_pub` as `user`/`password`: its exit code is the CONNACK code
/// (0 accepted, 5 not authorised), 1 for other failures.
fn mosquitto_pub(port: u16, user: &str, password: &str) -> i32 {
    let out = Command::new("mosquitto_pub")
        .args(["-p", &port.to_string(), "-u", user, "-P", password, "-t", "pbkdf2/test", "-m", "hello"])
        .output()
        .expect("mosquitto_pub (apt package mosquitto-clients)");
    out.status.code().unwrap_or(-1)
}

/// `moth passwd -H sha512-pbkdf2` writes Mosquitto's `$7$`, so one file
/// serves both brokers: a real Mosquitto 2.0 accepts the users moth wrote
/// (and refuses a wrong password), and so does moth's auth_file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pbkdf2_file_written_by_moth_passwd_works_in_mosquitto_and_in_moth() {
    let dir = TempDir::new("passwd-pbkdf2");
    let f = dir.0.join("passwd");
    let file = f.to_str().unwrap();
    ok(&passwd(&["-H", "sha512-pbkdf2", "-c", "-b", file, "owasp", "Default-Rounds-1"], ""));
    ok(&passwd(&["-H", "sha512-pbkdf2", "-I", "101", file, "dev"], "s3cret\ns3cret\n"));
    let plain = dir.file("plain", "carol:plain-Text-1\n");
    ok(&passwd(&["-H", "sha512-pbkdf2", "-I", "1000", "-U", plain.to_str().unwrap()], ""));
    std::fs::write(&f, format!("{}{}", read(&f), read(&plain))).unwrap();
    let e = entries(&f);
    assert!(e[0].1.starts_with("$7$210000$"), "the default count: {}", e[0].1);
    assert!(e[1].1.starts_with("$7$101$"), "-I sets the count: {}", e[1].1);
    assert!(e[2].1.starts_with("$7$1000$"), "-U with -H sha512-pbkdf2: {}", e[2].1);

    let port = free_port();
    // As root, Mosquitto would drop to its own user, which cannot read a 0600 file.
    let conf = dir.file(
        "mosquitto.conf",
        &format!("user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {file}\n"),
    );
    let mosquitto = Mosquitto::start(&conf, port);
    assert_eq!(mosquitto_pub(port, "dev", "s3cret"), 0, "Mosquitto accepts moth's $7$ line");
    assert_eq!(mosquitto_pub(port, "owasp", "Default-Rounds-1"), 0, "and the one with 210000 rounds");
    assert_eq!(mosquitto_pub(port, "carol", "plain-Text-1"), 0, "and the upgraded one");
    assert_eq!(mosquitto_pub(port, "dev", "wrong"), 5, "Mosquitto refuses a wrong password");
    drop(mosquitto);

    let (broker, addr) = auth_file_broker(file).await;
    assert_eq!(connack(addr, "dev", "s3cret").await, ConnectReturnCode::Accepted);
    assert_eq!(connack(addr, "owasp", "Default-Rounds-1").await, ConnectReturnCode::Accepted);
    assert_eq!(connack(addr, "carol", "plain-Text-1").await, ConnectReturnCode::Accepted);
    assert_eq!(connack(addr, "dev", "wrong").await, ConnectReturnCode::BadUsernameOrPassword);
    broker.shutdown().await;
}

#[test]
fn concurrent_runs_on_one_file_lose_no_edit() {
    let dir = TempDir::new("passwd-concurrent");
    let f = dir.file("passwd", "");
    let file = f.to_str().unwrap().to_string();
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let file = file.clone();
            std::thread::spawn(move || passwd(&[&CHEAP[..], &["-b", &file, &format!("user{i}"), "pw"]].concat(), ""))
        })
        .collect();
    for r in runs {
        ok(&r.join().unwrap());
    }
    let mut users: Vec<String> = entries(&f).into_iter().map(|e| e.0).collect();
    users.sort();
    assert_eq!(users, (0..8).map(|i| format!("user{i}")).collect::<Vec<_>>(), "every run's user is in the file");
}

/// `moth passwd ARGS` on a pseudo-terminal (util-linux `script`), so the
/// prompts go through the terminal as they do for an operator. `script`
/// reads a pipe here, so it leaves the terminal's echo on (`--echo auto`):
/// whatever moth does not hide is shown back, as on a real terminal.
struct OnTty {
    child: std::process::Child,
    out: mpsc::Receiver<Vec<u8>>,
    /// Not yet matched by `expect`.
    seen: String,
    /// Everything the terminal showed, from the start.
    transcript: String,
}

impl OnTty {
    fn spawn(args: &str) -> OnTty {
        let mut child = Command::new("script")
            .args(["-qec", &format!("{MOTH} passwd {args}"), "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run script(1) from util-linux (scripts/test.sh installs it)");
        let mut stdout = child.stdout.take().unwrap();
        let (tx, out) = mpsc::channel();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 1024];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut chunk) {
                if n == 0 || tx.send(chunk[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        OnTty { child, out, seen: String::new(), transcript: String::new() }
    }

    /// Waits until the terminal has shown `text` (after what was already awaited).
    fn expect(&mut self, text: &str) {
        let deadline = std::time::Instant::now() + DEADLINE;
        while !self.seen.contains(text) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.out.recv_timeout(left) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    self.seen.push_str(&text);
                    self.transcript.push_str(&text);
                }
                Err(_) => panic!("the terminal did not show {text:?} within {DEADLINE:?}; it showed {:?}", self.seen),
            }
        }
        let at = self.seen.find(text).unwrap() + text.len();
        self.seen.drain(..at);
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\r").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// The exit code of `moth passwd` (script -e passes it on) and the whole
    /// transcript of the terminal, read to its end; with a deadline.
    fn finish(mut self) -> (i32, String) {
        drop(self.child.stdin.take());
        let (tx, rx) = mpsc::channel();
        let mut child = self.child;
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = rx.recv_timeout(DEADLINE).expect("moth passwd exits in time").unwrap();
        // The reader thread ends at the end of script's output.
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.out.recv_timeout(left) {
                Ok(bytes) => self.transcript.push_str(&String::from_utf8_lossy(&bytes)),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("the terminal output did not end"),
            }
        }
        (status.code().unwrap_or(-1), self.transcript)
    }
}

#[test]
fn on_a_terminal_the_password_is_asked_twice() {
    let dir = TempDir::new("passwd-tty");
    let f = dir.0.join("passwd");
    let file = f.to_str().unwrap();
    let cheap = CHEAP.join(" ");

    let mut tty = OnTty::spawn(&format!("{cheap} -c {file} alice"));
    tty.expect("Password: ");
    tty.type_line("wonderland");
    tty.expect("Reenter password: ");
    tty.type_line("wonderland");
    let (code, shown) = tty.finish();
    assert_eq!(code, 0);
    // The terminal echoes what is typed unless moth turned echo off first.
    assert!(shown.contains("Password: ") && shown.contains("Reenter password: "), "{shown:?}");
    assert!(!shown.contains("wonderland"), "the password was echoed: {shown:?}");
    let e = entries(&f);
    assert_eq!(e.len(), 1);
    let hash = argon2::PasswordHash::new(&e[0].1).unwrap();
    use argon2::PasswordVerifier;
    assert!(argon2::Argon2::default().verify_password(b"wonderland", &hash).is_ok(), "the typed password was stored");

    let before = read(&f);
    let mut tty = OnTty::spawn(&format!("{cheap} {file} alice"));
    tty.expect("Password: ");
    tty.type_line("first-Try-1");
    tty.expect("Reenter password: ");
    tty.type_line("second-Try-2");
    tty.expect("the passwords do not match");
    let (code, shown) = tty.finish();
    assert_eq!(code, 1);
    assert!(!shown.contains("Try-"), "a password was echoed: {shown:?}");
    assert_eq!(read(&f), before, "a mismatch changes nothing");
}

/// `-H scram-sha-256` writes PostgreSQL's SCRAM-SHA-256 form, which Python's
/// hashlib, computing RFC 5802's keys on its own, agrees with; `-U` will
/// not hash such a line again.
#[test]
fn scram_sha_256_credentials_are_what_rfc_5802_derives() {
    let dir = TempDir::new("passwd-scram");
    let f = dir.0.join("scram");
    let file = f.to_str().unwrap();
    ok(&passwd(&["-c", "-b", "-H", "scram-sha-256", "-I", "4096", file, "alice", "pencil"], ""));
    let e = entries(&f);
    assert_eq!(e.len(), 1);
    let entry = &e[0].1;
    assert!(entry.starts_with("SCRAM-SHA-256$4096:"), "{entry}");
    let check = "import base64,hashlib,hmac,sys\n\
        head, keys = sys.argv[1].split('$')[1:]\n\
        iterations, salt = head.split(':')\n\
        stored, server = keys.split(':')\n\
        salted = hashlib.pbkdf2_hmac('sha256', b'pencil', base64.b64decode(salt), int(iterations))\n\
        client = hmac.new(salted, b'Client Key', 'sha256').digest()\n\
        ok = base64.b64decode(stored) == hashlib.sha256(client).digest() and \
             base64.b64decode(server) == hmac.new(salted, b'Server Key', 'sha256').digest()\n\
        print('ok' if ok else 'mismatch')\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(check)
        .arg(entry)
        .output()
        .expect("python3 (scripts/test.sh installs it)");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{}", String::from_utf8_lossy(&out.stderr));
    // Fewer iterations than RFC 7677 allows are refused, as a usage error.
    let (code, err) = outcome(&passwd(&["-b", "-H", "scram-sha-256", "-I", "100", file, "bob", "pw"], ""));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("4096"), "{err}");
    let (code, err) = outcome(&passwd(&["-U", file], ""));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already has a SCRAM-SHA-256$ hash"), "{err}");
}
