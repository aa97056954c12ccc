//! Observability of the real `moth` program, as an operator sees it:
//! `mosquitto_sub -t '$SYS/#' -v`, `curl` on the metrics endpoint, `SIGHUP`
//! after editing the configuration file, and JSON log lines.
//!
//! The broker's stderr is read live by a thread, so a test can wait for a
//! log line (with a deadline) instead of sleeping.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use bytes::BytesMut;
use common::{TempDir, free_port};
use moth_protocol::codec;
use moth_protocol::packet::{Ack, Connect, ConnectReturnCode, Packet, Protocol, Publish, QoS};

const MOTH: &str = env!("CARGO_BIN_EXE_moth");
/// How long a command or an event may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(15);

/// A child process whose stdout or stderr lines arrive over a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    /// Spawns `cmd`, reading `stderr` (or stdout when `stdout` is set) line by line.
    fn spawn(mut cmd: Command, stdout: bool) -> Proc {
        cmd.stdin(Stdio::null());
        if stdout {
            cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        } else {
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let pipe: Box<dyn Read + Send> = if stdout {
            Box::new(child.stdout.take().expect("stdout"))
        } else {
            Box::new(child.stderr.take().expect("stderr"))
        };
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines, seen: Vec::new() }
    }

    /// Waits for a line containing every needle; fails after `DEADLINE`.
    fn wait_line(&mut self, needles: &[&str]) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if needles.iter().all(|n| line.contains(n)) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needles:?} within {DEADLINE:?}; seen:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then every remaining line and the exit code.
    fn stop(mut self) -> (Vec<String>, Option<i32>) {
        self.signal("TERM");
        let deadline = Instant::now() + DEADLINE;
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.seen.push(line);
        }
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status.code();
            }
            assert!(Instant::now() < deadline, "moth did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20)); // exit poll interval
        };
        (std::mem::take(&mut self.seen), code)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moth(config: &PathBuf, extra: &[&str]) -> Proc {
    let mut c = Command::new(MOTH);
    c.arg("-c").arg(config).args(extra).env("NO_COLOR", "1").env_remove("RUST_LOG");
    Proc::spawn(c, false)
}

/// Connects with retries until the broker listens (readiness poll).
fn connect_when_ready(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            s.set_read_timeout(Some(DEADLINE)).unwrap();
            return s;
        }
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20)); // readiness poll interval
    }
}

/// A blocking raw MQTT client.
struct Mqtt {
    s: TcpStream,
    buf: BytesMut,
}

impl Mqtt {
    fn connect(addr: SocketAddr, client_id: &str, username: Option<&str>) -> (Mqtt, ConnectReturnCode) {
        let mut m = Mqtt { s: connect_when_ready(addr), buf: BytesMut::new() };
        m.send(&Packet::Connect(Box::new(Connect {
            protocol: Protocol::V311,
            clean_session: true,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: username.map(Into::into),
            password: None,
            properties: Default::default(),
        })));
        match m.recv() {
            Some(Packet::Connack(a)) => (m, a.code),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        codec::encode(p, Protocol::V311, &mut out);
        self.s.write_all(&out).expect("write");
    }

    fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(p) = codec::decode(&mut self.buf, 1 << 20, Protocol::V311).expect("well-formed packet") {
                return Some(p);
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn publish_qos1(&mut self, id: u16) {
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "obs/t".into(),
            packet_id: id,
            payload: "x".into(),
            properties: None,
            topic_alias: None,
            subscription_ids: Vec::new(),
        }));
        assert_eq!(self.recv(), Some(Packet::Puback(Ack::new(id))), "the connection keeps working");
    }
}

fn run_tool(cmd: &mut Command) -> std::process::Output {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}); scripts/test.sh installs mosquitto-clients and curl"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(DEADLINE).unwrap_or_else(|_| panic!("{what} did not finish in time")).expect("wait")
}

/// hbmqtt's `$SYS/broker/` topics (anchors.md section 4), plus `uptime/formatted`.
const HBMQTT_TOPICS: &[&str] = &[
    "version",
    "load/bytes/received",
    "load/bytes/sent",
    "messages/received",
    "messages/sent",
    "time",
    "uptime",
    "uptime/formated",
    "uptime/formatted",
    "clients/connected",
    "clients/disconnected",
    "clients/maximum",
    "clients/total",
    "messages/inflight",
    "messages/inflight/in",
    "messages/inflight/out",
    "messages/inflight/stored",
    "messages/publish/received",
    "messages/publish/sent",
    "messages/retained/count",
    "messages/subscriptions/count",
];

#[test]
fn mosquitto_sub_on_sys_shows_hbmqtt_topics_with_correct_figures_and_curl_gets_metrics() {
    let dir = TempDir::new("sys");
    let (port, mport) = (free_port(), free_port());
    let config = dir.file(
        "moth.yaml",
        &format!(
            "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\nsys_interval: 0.5\n\
             metrics:\n  bind: 127.0.0.1:{mport}\n"
        ),
    );
    let mut broker = moth(&config, &[]);
    broker.wait_line(&["moth started"]);
    // Three publishers: CONNECT, PUBLISH, DISCONNECT each.
    for i in 0..3 {
        let out = run_tool(Command::new("mosquitto_pub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "obs/data",
            "-m",
            &format!("m{i}"),
        ]));
        assert!(out.status.success(), "mosquitto_pub: {}", String::from_utf8_lossy(&out.stderr));
        // mosquitto_pub exits once its DISCONNECT is sent; the broker ends the
        // connection a moment later. Wait for that, so the next publisher
        // never overlaps it (clients/maximum must stay 1 on a busy machine).
        let deadline = Instant::now() + DEADLINE;
        loop {
            let metrics = run_tool(Command::new("curl").args([
                "-sS",
                "--max-time",
                "10",
                &format!("http://127.0.0.1:{mport}/metrics"),
            ]));
            if String::from_utf8_lossy(&metrics.stdout).lines().any(|l| l == "moth_clients_connected 0") {
                break;
            }
            assert!(Instant::now() < deadline, "publisher {i} never counted as disconnected");
            // Readiness poll interval, not a wait for an event.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let mut sub = Command::new("stdbuf");
    sub.args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", "$SYS/#", "-v", "-W", "20"]);
    let mut sub = Proc::spawn(sub, true);
    // The figures settle once mosquitto_sub's own SUBSCRIBE is counted.
    let want = [
        ("clients/connected", "1"),
        ("clients/disconnected", "3"),
        ("clients/total", "4"),
        ("clients/maximum", "1"),
        ("messages/publish/received", "3"),
        // 3 x (CONNECT, PUBLISH, DISCONNECT) + mosquitto_sub's CONNECT and SUBSCRIBE.
        ("messages/received", "11"),
        ("messages/subscriptions/count", "1"),
        ("messages/retained/count", "1"),
    ];
    let mut values = std::collections::HashMap::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let line = sub.wait_line(&["$SYS/broker/"]);
        let (topic, payload) = line.split_once(' ').unwrap_or((&line, ""));
        values.insert(topic.trim_start_matches("$SYS/broker/").to_string(), payload.to_string());
        let all_seen = HBMQTT_TOPICS.iter().all(|t| values.contains_key(*t));
        if all_seen && want.iter().all(|(k, v)| values.get(*k).map(String::as_str) == Some(*v)) {
            break;
        }
        assert!(Instant::now() < deadline, "mosquitto_sub never showed the expected figures: {values:?}");
    }
    assert_eq!(values["version"], format!("moth version {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(values["uptime/formated"].matches(':').count(), 2, "{values:?}");

    let out =
        run_tool(Command::new("curl").args(["-sS", "--max-time", "10", &format!("http://127.0.0.1:{mport}/metrics")]));
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    let body = String::from_utf8_lossy(&out.stdout);
    for line in [
        "moth_publish_received_total 3\n",
        "moth_clients_disconnected_total 3\n",
        "# TYPE moth_clients_connected gauge\n",
    ] {
        assert!(body.contains(line), "metrics should contain `{line}`:\n{body}");
    }
    drop(sub);
    let (log, code) = broker.stop();
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert!(log.iter().any(|l| l.contains("metrics endpoint listening") && l.contains(&mport.to_string())));
}

#[test]
fn sighup_applies_auth_and_log_level_keeps_connections_and_reports_what_needs_a_restart() {
    let dir = TempDir::new("hup");
    let port = free_port();
    let yaml = |anonymous: bool, level: &str, bind_port: u16| {
        format!(
            "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{bind_port}\nlog-level: {level}\n\
             auth:\n  plugins: [auth_anonymous]\n  allow-anonymous: {anonymous}\n"
        )
    };
    let config = dir.file("moth.yaml", &yaml(true, "warn", port));
    let mut broker = moth(&config, &[]);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let (mut early, code) = Mqtt::connect(addr, "early-client", None);
    assert_eq!(code, ConnectReturnCode::Accepted);

    // Anonymous clients off, log level info, and a listener change that needs a restart.
    std::fs::write(&config, yaml(false, "info", free_port())).unwrap();
    broker.signal("HUP");
    broker.wait_line(&["reload applied", "auth.allow-anonymous", "true -> false"]);
    broker.wait_line(&["needs a restart", "listeners"]);

    let (_refused, code) = Mqtt::connect(addr, "late-anonymous", None);
    assert_eq!(code, ConnectReturnCode::NotAuthorized, "a new anonymous CONNECT is refused after SIGHUP");
    broker.wait_line(&["connection refused", "late-anonymous", "auth_anonymous"]);
    early.publish_qos1(1);

    // A broken file changes nothing and says where it is broken.
    std::fs::write(&config, "listeners:\n  default:\n    type: tcp\n    bind: [oops\n").unwrap();
    broker.signal("HUP");
    let line = broker.wait_line(&["reload failed"]);
    assert!(line.contains(&config.display().to_string()), "{line}");
    early.publish_qos1(2);
    let (_refused, code) = Mqtt::connect(addr, "still-refused", None);
    assert_eq!(code, ConnectReturnCode::NotAuthorized);

    let (log, code) = broker.stop();
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    assert!(
        !log.iter().any(|l| l.contains("client connected") && l.contains("early-client")),
        "log-level warn was in force when early-client connected:\n{}",
        log.join("\n")
    );
}

#[test]
fn json_log_lines_are_one_object_each_with_structured_fields() {
    let dir = TempDir::new("json");
    let port = free_port();
    let config = dir.file("moth.yaml", &format!("listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n"));
    let mut broker = moth(&config, &["--log-format", "json"]);
    let (mut c, code) = Mqtt::connect(([127, 0, 0, 1], port).into(), "json-client", None);
    assert_eq!(code, ConnectReturnCode::Accepted);
    c.publish_qos1(1);
    broker.wait_line(&["client connected", "json-client"]);
    // A user name without a password file is refused (hbmqtt's rule): its
    // log line names the user as plain text.
    let (_refused, code) = Mqtt::connect(([127, 0, 0, 1], port).into(), "json-user", Some("alice"));
    assert_ne!(code, ConnectReturnCode::Accepted);
    broker.wait_line(&["connection refused", "json-user"]);
    let (log, code) = broker.stop();
    assert_eq!(code, Some(0));
    let mut connected = None;
    let mut refused = None;
    for line in log.iter().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
        if v["fields"]["message"] == "client connected" {
            connected = Some(v);
        } else if v["fields"]["message"].as_str().is_some_and(|m| m.starts_with("connection refused")) {
            refused = Some(v);
        }
    }
    let v = connected.expect("a `client connected` line");
    assert_eq!(v["fields"]["client_id"], "json-client");
    assert_eq!(v["fields"]["plugin"], "auth_anonymous");
    assert_eq!(v["fields"]["listener"], "default");
    assert!(v["fields"]["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{v}");
    // Absent values are absent, not Rust's `None`.
    assert!(v["fields"].get("username").is_none() && v["fields"].get("tls_identity").is_none(), "{v}");
    let r = refused.expect("a `connection refused` line");
    assert_eq!(r["fields"]["username"], "alice", "the plain user name, not `Some(\"alice\")`: {r}");

    // The same from the configuration file.
    let config = dir.file(
        "json.yaml",
        &format!("listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\nlog-format: json\n"),
    );
    let mut broker = moth(&config, &[]);
    let line = broker.wait_line(&["moth started"]);
    serde_json::from_str::<serde_json::Value>(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    broker.stop();
}
