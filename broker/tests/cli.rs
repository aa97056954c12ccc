//! The `moth` program, driven as a user would: real binary, real config
//! files, real sockets, real signals.
//!
//! Every child process is waited for with a deadline (a thread does the
//! blocking wait and reports over a channel), so a broker that ignores
//! `--check` or a signal makes the test fail instead of hanging.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

mod common;

use bytes::BytesMut;
use common::{DEADLINE, Running, TempDir, describe, free_port, moth, run, send_signal, text, wait_until_listening};
use moth_protocol::codec;
use moth_protocol::packet::{
    Ack, Connect, ConnectReturnCode, Packet, Protocol, Publish, QoS, Subscribe, SubscribeFilter,
};

/// The non-empty lines of stderr; a configuration error must be exactly one.
fn stderr_lines(out: &Output) -> Vec<String> {
    text(&out.stderr).lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
}

/// A blocking MQTT client on a std socket, enough to prove a broker works.
struct Mqtt {
    stream: TcpStream,
    buf: BytesMut,
}

impl Mqtt {
    fn new(stream: TcpStream) -> Mqtt {
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Mqtt { stream, buf: BytesMut::new() }
    }

    fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        codec::encode(p, Protocol::V311, &mut out);
        self.stream.write_all(&out).expect("write to moth");
    }

    /// The next packet, `None` on EOF. Fails after `DEADLINE`.
    fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(p) =
                codec::decode(&mut self.buf, 1 << 20, Protocol::V311).expect("moth sent a well-formed packet")
            {
                return Some(p);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    panic!("no packet from moth within {DEADLINE:?}")
                }
                Err(_) => return None,
            }
        }
    }

    /// CONNECT, expect CONNACK 0, SUBSCRIBE, PUBLISH QoS 1 and get it back.
    fn prove_broker_works(&mut self, client_id: &str) {
        self.send(&Packet::Connect(Box::new(Connect {
            protocol: Protocol::V311,
            clean_session: true,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: Default::default(),
        })));
        match self.recv() {
            Some(Packet::Connack(c)) => assert_eq!(c.code, ConnectReturnCode::Accepted),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        self.send(&Packet::Subscribe(Subscribe::new(1, vec![SubscribeFilter::new("cli/+", QoS::AtLeastOnce)])));
        match self.recv() {
            Some(Packet::Suback(s)) => assert_eq!(s.packet_id, 1),
            other => panic!("expected SUBACK, got {other:?}"),
        }
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "cli/hello".into(),
            packet_id: 2,
            payload: "from the cli test".into(),
            properties: None,
            topic_alias: None,
            subscription_ids: Vec::new(),
        }));
        let (mut acked, mut delivered) = (false, false);
        while !(acked && delivered) {
            match self.recv() {
                Some(Packet::Puback(Ack { packet_id: 2, .. })) => acked = true,
                Some(Packet::Publish(p)) => {
                    assert_eq!(&*p.topic, "cli/hello");
                    assert_eq!(&p.payload[..], b"from the cli test");
                    if p.qos != QoS::AtMostOnce {
                        self.send(&Packet::Puback(Ack::new(p.packet_id)));
                    }
                    delivered = true;
                }
                other => panic!("expected PUBACK or PUBLISH, got {other:?}"),
            }
        }
    }
}

/// Asserts `out` is a configuration error: exit code 2 and exactly one
/// stderr line, which contains every string of `must_contain`.
fn assert_config_error(out: &Output, must_contain: &[&str]) -> String {
    assert_eq!(out.status.code(), Some(2), "a configuration error exits with code 2\n{}", describe(out));
    let lines = stderr_lines(out);
    assert_eq!(lines.len(), 1, "a configuration error is one stderr line\n{}", describe(out));
    let line = lines.into_iter().next().unwrap();
    for s in must_contain {
        assert!(line.contains(s), "the error line should contain `{s}`: {line}");
    }
    line
}

/// Asserts `line` contains `path:LINE:COL:` with the given line number.
fn assert_names_file_line(line: &str, path: &Path, line_no: u32) {
    let prefix = format!("{}:{line_no}:", path.display());
    let at = line.find(&prefix).unwrap_or_else(|| panic!("the error should name `{prefix}<col>:`: {line}"));
    let rest = &line[at + prefix.len()..];
    let col: String = rest.chars().take_while(char::is_ascii_digit).collect();
    assert!(!col.is_empty() && rest[col.len()..].starts_with(':'), "expected `{prefix}<col>:` in: {line}");
}

// ---------------------------------------------------------------------------
// Informational flags.

#[test]
fn version_prints_the_package_version() {
    let out = run(&["--version"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.trim(), format!("moth {}", env!("CARGO_PKG_VERSION")), "{}", describe(&out));
}

#[test]
fn help_lists_the_config_and_check_options() {
    let out = run(&["--help"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    for s in ["Usage", "--config", "-c", "--check", "--version"] {
        assert!(stdout.contains(s), "--help should mention `{s}`:\n{stdout}");
    }
}

#[test]
fn print_default_config_is_one_tcp_listener_on_port_1883() {
    let out = run(&["--print-default-config"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("listeners:"), "{stdout}");
    assert!(stdout.contains("0.0.0.0:1883"), "{stdout}");
    // It is itself a valid configuration.
    let dir = TempDir::new("printed-default");
    let path = dir.file("default.yaml", &stdout);
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "the printed default config must pass --check\n{}", describe(&out));
}

// ---------------------------------------------------------------------------
// --check.

#[test]
fn check_accepts_a_valid_config_and_names_its_listeners() {
    let dir = TempDir::new("check-ok");
    let path = dir.file(
        "ok.yaml",
        "listeners:\n  default:\n    type: tcp\n    max-connections: 10\n  my-tcp:\n    bind: 127.0.0.1:1883\n\
         timeout-disconnect-delay: 2\nauth:\n  allow-anonymous: true\n",
    );
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("my-tcp"), "--check should name the listener:\n{stdout}");
    assert!(stdout.contains("127.0.0.1:1883"), "--check should show the bind address:\n{stdout}");
    // No `auth.plugins`: hbmqtt asks every plugin it has, and so does moth.
    assert!(
        stdout.contains("auth: auth_anonymous, auth_file; topic-check: off"),
        "--check should show the chains:\n{stdout}"
    );
    assert!(stderr_lines(&out).is_empty(), "a valid config prints nothing on stderr\n{}", describe(&out));
}

#[test]
fn check_accepts_hbmqtt_default_broker_yaml_and_warns_about_top_level_plugins() {
    let dir = TempDir::new("hb-default");
    // hbmqtt's scripts/default_broker.yaml, as shipped.
    let path = dir.file(
        "default_broker.yaml",
        "listeners:\n    default:\n        type: tcp\n        bind: 0.0.0.0:1883\nsys_interval: 20\nauth:\n    \
         allow-anonymous: true\nplugins:\n    - auth_file\n    - auth_anonymous\n\ntopic-check:\n    enabled: False\n",
    );
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let warning = format!("{}:8:", path.display());
    assert!(
        log.lines().any(|l| l.contains(&warning) && l.contains("plugins")),
        "expected a warning naming `{warning}` and `plugins`:\n{log}"
    );
}

#[test]
fn check_without_config_checks_the_embedded_default() {
    let out = run(&["--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text(&out.stdout).contains("0.0.0.0:1883"), "{}", describe(&out));
}

#[test]
fn a_misspelt_listeners_key_stops_check_and_start_with_the_likely_fix() {
    let dir = TempDir::new("typo");
    let path = dir.file("typo.yaml", "listners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:1883\n");
    for args in [&["--check", "-c", path.to_str().unwrap()][..], &["-c", path.to_str().unwrap()][..]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?} must fail\n{}", describe(&out));
        let err = text(&out.stderr);
        assert!(err.contains("no listener has a `bind`"), "{err}");
        assert!(err.contains("listners: unknown key") && err.contains("did you mean `listeners`?"), "{err}");
        assert!(!text(&out.stdout).contains("configuration OK"), "{}", describe(&out));
    }
}

#[test]
fn check_reports_bad_yaml_with_file_and_line() {
    let dir = TempDir::new("bad-yaml");
    // Line 4 is indented less than its siblings and more than its parent.
    let path = dir.file("bad.yaml", "listeners:\n  default:\n    type: tcp\n   bind: 127.0.0.1:1883\n");
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    let line = assert_config_error(&out, &[path.to_str().unwrap()]);
    let prefix = format!("{}:", path.display());
    let after = &line[line.find(&prefix).unwrap() + prefix.len()..];
    let line_no: String = after.chars().take_while(char::is_ascii_digit).collect();
    let line_no: u32 = line_no.parse().unwrap_or_else(|_| panic!("the error should name `file:line:col`: {line}"));
    assert!((3..=5).contains(&line_no), "the YAML error is around line 4, the message says {line_no}: {line}");
}

#[test]
fn check_reports_wrong_type_of_max_connections_with_key_and_line() {
    let dir = TempDir::new("wrong-type");
    let path = dir.file(
        "lots.yaml",
        "listeners:\n  default:\n    type: tcp\n    max-connections: lots\n  my-tcp:\n    bind: 127.0.0.1:1883\n",
    );
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    let line = assert_config_error(&out, &["listeners.default.max-connections"]);
    assert_names_file_line(&line, &path, 4);
}

#[test]
fn check_reports_unknown_listener_type_with_key_and_line() {
    let dir = TempDir::new("bad-type");
    let path = dir.file("udp.yaml", "listeners:\n  default:\n    type: udp\n    bind: 127.0.0.1:1883\n");
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    let line = assert_config_error(&out, &["listeners.default.type", "udp"]);
    assert_names_file_line(&line, &path, 3);
}

#[test]
fn check_reports_bad_bind_address_with_key_and_line() {
    let dir = TempDir::new("bad-bind");
    let path = dir.file(
        "bind.yaml",
        "listeners:\n  default:\n    type: tcp\n  my-tcp:\n    max-connections: 5\n    bind: 127.0.0.1:99999\n",
    );
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    let line = assert_config_error(&out, &["listeners.my-tcp.bind", "127.0.0.1:99999"]);
    assert_names_file_line(&line, &path, 6);

    let path = dir.file("host.yaml", "listeners:\n  default:\n    type: tcp\n    bind: not an address\n");
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    let line = assert_config_error(&out, &["listeners.default.bind"]);
    assert_names_file_line(&line, &path, 4);
}

#[test]
fn check_reports_a_missing_config_file() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("does-not-exist.yaml");
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    let line = assert_config_error(&out, &[path.to_str().unwrap()]);
    let lower = line.to_lowercase();
    assert!(
        lower.contains("no such file") || lower.contains("not found") || lower.contains("cannot read"),
        "the error should say the file cannot be read: {line}"
    );
}

#[test]
fn running_with_a_missing_config_file_exits_2() {
    let dir = TempDir::new("missing-run");
    let path = dir.0.join("nope.yaml");
    let out = run(&["-c", path.to_str().unwrap()]);
    assert_config_error(&out, &[path.to_str().unwrap()]);
}

#[test]
fn check_accepts_ws_and_wss_listeners() {
    let dir = TempDir::new("ws");
    let path = dir
        .file("ws.yaml", "listeners:\n  default:\n    type: tcp\n  my-ws:\n    bind: 127.0.0.1:8080\n    type: ws\n");
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(text(&out.stdout).contains("my-ws (ws on 127.0.0.1:8080)"), "{}", describe(&out));
}

#[test]
fn check_reports_a_missing_certificate_naming_listener_and_file() {
    let dir = TempDir::new("ssl");
    let path = dir.file(
        "ssl.yaml",
        "listeners:\n  default:\n    type: tcp\n  my-tls:\n    bind: 127.0.0.1:8883\n    ssl: on\n    \
         certfile: /some/certfile\n    keyfile: /some/key\n",
    );
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    let line = assert_config_error(&out, &["my-tls", "certfile", "/some/certfile"]);
    assert!(line.contains("No such file"), "the error should say why: {line}");
}

#[test]
fn check_loads_valid_tls_material_and_names_the_transports() {
    let dir = TempDir::new("tls-ok");
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let cert = dir.file("server.pem", &generated.cert.pem());
    let key = dir.file("server.key", &generated.signing_key.serialize_pem());
    let path = dir.file(
        "tls.yaml",
        &format!(
            "listeners:\n  default:\n    certfile: {}\n    keyfile: {}\n  secure:\n    bind: 127.0.0.1:8883\n    \
             ssl: on\n  secure-ws:\n    bind: 127.0.0.1:8443\n    type: ws\n    ssl: yes\n",
            cert.display(),
            key.display()
        ),
    );
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("secure (tls on 127.0.0.1:8883)"), "{}", describe(&out));
    assert!(stdout.contains("secure-ws (wss on 127.0.0.1:8443)"), "{}", describe(&out));
    // The same file with the key of another certificate is refused.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    std::fs::write(&key, other.signing_key.serialize_pem()).expect("write key");
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    assert_config_error(&out, &["does not match", "server.key"]);
}

/// The binary serves a ws listener: a hand-written upgrade request gets
/// `101 Switching Protocols` with the `mqtt` subprotocol echoed.
#[test]
fn running_a_ws_listener_answers_the_websocket_upgrade() {
    let dir = TempDir::new("ws-run");
    let port = free_port();
    let path = dir.file("ws.yaml", &format!("listeners:\n  default:\n    type: ws\n    bind: 127.0.0.1:{port}\n"));
    let mut cmd = moth();
    cmd.arg("-c").arg(&path);
    let mut proc = Running::spawn(cmd);
    let mut stream = wait_until_listening(&mut proc, ([127, 0, 0, 1], port).into());
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    write!(
        stream,
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    )
    .expect("send upgrade");
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => reply.push(byte[0]),
            other => panic!("upgrade reply cut short ({other:?}): {}", text(&reply)),
        }
    }
    let reply = text(&reply).to_lowercase();
    assert!(reply.starts_with("http/1.1 101"), "{reply}");
    assert!(reply.contains("sec-websocket-protocol: mqtt"), "{reply}");
    send_signal(proc.pid, "TERM");
    let out = proc.wait("after SIGTERM");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

// ---------------------------------------------------------------------------
// Running.

#[test]
fn runs_a_config_serves_mqtt_and_stops_cleanly_on_sigterm() {
    let dir = TempDir::new("run");
    let port = free_port();
    let path = dir.file(
        "broker.yaml",
        &format!(
            "listeners:\n  default:\n    type: tcp\n    max-connections: 10\n  cli-listener:\n    \
             bind: 127.0.0.1:{port}\ntimeout-disconnect-delay: 2\nauth:\n  allow-anonymous: true\n"
        ),
    );
    let mut cmd = moth();
    cmd.arg("-c").arg(&path);
    let mut proc = Running::spawn(cmd);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let stream = wait_until_listening(&mut proc, addr);
    let mut client = Mqtt::new(stream);
    client.prove_broker_works("cli-client");

    send_signal(proc.pid, "TERM");
    // The connected client is closed by the shutdown.
    assert!(client.recv().is_none(), "the broker should close client connections when it stops");
    let out = proc.wait("after SIGTERM");
    assert_eq!(out.status.code(), Some(0), "SIGTERM is a clean shutdown\n{}", describe(&out));
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(log.contains("SIGTERM"), "the log should say SIGTERM was received:\n{log}");
    assert!(log.contains("stopped"), "the log should say the broker stopped:\n{log}");
    assert!(log.contains("cli-listener"), "the log should name the listener:\n{log}");
    assert!(TcpStream::connect(addr).is_err(), "nothing may listen on {addr} after the exit");
}

#[test]
fn sigint_also_stops_cleanly() {
    let dir = TempDir::new("sigint");
    let port = free_port();
    let path = dir.file("broker.yaml", &format!("listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n"));
    let mut cmd = moth();
    cmd.arg("--config").arg(&path);
    let mut proc = Running::spawn(cmd);
    drop(wait_until_listening(&mut proc, ([127, 0, 0, 1], port).into()));
    send_signal(proc.pid, "INT");
    let out = proc.wait("after SIGINT");
    assert_eq!(out.status.code(), Some(0), "SIGINT is a clean shutdown\n{}", describe(&out));
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(log.contains("stopped"), "the log should say the broker stopped:\n{log}");
}

#[test]
fn port_in_use_exits_non_zero_naming_the_listener() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new("in-use");
    let path = dir.file(
        "busy.yaml",
        &format!("listeners:\n  default:\n    type: tcp\n  busy-listener:\n    bind: 127.0.0.1:{port}\n"),
    );
    let out = run(&["-c", path.to_str().unwrap()]);
    assert!(!out.status.success(), "moth must fail when its port is taken\n{}", describe(&out));
    assert_ne!(out.status.code(), Some(2), "a taken port is not a configuration error\n{}", describe(&out));
    let err = text(&out.stderr);
    assert!(err.contains("busy-listener"), "stderr should name the listener\n{}", describe(&out));
    assert!(err.contains(&port.to_string()), "stderr should name the address\n{}", describe(&out));
    drop(taken);
}

#[test]
fn no_arguments_runs_the_embedded_default_on_port_1883() {
    if let Err(e) = TcpListener::bind("0.0.0.0:1883") {
        panic!(
            "port 1883 is not free ({e}): this test runs `moth` without arguments, which listens on \
             0.0.0.0:1883. Stop whatever listens there (another MQTT broker?) and run again."
        );
    }
    let dir = TempDir::new("default");
    let mut cmd = moth();
    cmd.current_dir(&dir.0);
    let mut proc = Running::spawn(cmd);
    let addr: SocketAddr = ([127, 0, 0, 1], 1883).into();
    let stream = wait_until_listening(&mut proc, addr);
    let mut client = Mqtt::new(stream);
    client.prove_broker_works("cli-default");
    send_signal(proc.pid, "TERM");
    let out = proc.wait("after SIGTERM");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(log.contains("embedded default"), "the log should say which config was used:\n{log}");
    assert!(log.contains("0.0.0.0:1883"), "the log should show the bound address:\n{log}");
}

/// Connects anonymously and returns the CONNACK code (the connection is dropped).
fn anonymous_connack(addr: SocketAddr, client_id: &str) -> ConnectReturnCode {
    let mut c = Mqtt::new(TcpStream::connect(addr).expect("connect to moth"));
    c.send(&Packet::Connect(Box::new(Connect {
        protocol: Protocol::V311,
        clean_session: true,
        keep_alive: 60,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    })));
    match c.recv() {
        Some(Packet::Connack(a)) => a.code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn sighup_reloads_the_plugin_chains_and_keeps_connections() {
    let dir = TempDir::new("sighup");
    let port = free_port();
    let head = format!("listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n");
    let path = dir.file("broker.yaml", &format!("{head}auth:\n  allow-anonymous: true\n"));
    let mut cmd = moth();
    cmd.arg("-c").arg(&path);
    let mut proc = Running::spawn(cmd);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut kept = Mqtt::new(wait_until_listening(&mut proc, addr));
    kept.prove_broker_works("kept");

    dir.file("broker.yaml", &format!("{head}auth:\n  allow-anonymous: false\n"));
    send_signal(proc.pid, "HUP");
    // Readiness by retry with a deadline: the reload happens on the broker's own time.
    let deadline = Instant::now() + DEADLINE;
    let mut n = 0;
    while anonymous_connack(addr, &format!("probe-{n}")) != ConnectReturnCode::NotAuthorized {
        assert!(Instant::now() < deadline, "SIGHUP did not put allow-anonymous: false in force within {DEADLINE:?}");
        n += 1;
        std::thread::sleep(Duration::from_millis(20));
    }

    // A broken configuration keeps the chains in force.
    dir.file("broker.yaml", &format!("{head}auth:\n  plugins: [auth_nope]\n  allow-anonymous: true\n"));
    send_signal(proc.pid, "HUP");
    // The connection opened before the reloads still works. (moth handles a
    // pending SIGHUP before a SIGTERM, so the failed reload is in the log.)
    kept.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "cli/again".into(),
        packet_id: 0,
        payload: "still here".into(),
        properties: None,
        topic_alias: None,
        subscription_ids: Vec::new(),
    }));
    match kept.recv() {
        Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"still here"),
        other => panic!("expected the message back, got {other:?}"),
    }
    send_signal(proc.pid, "TERM");
    let out = proc.wait("after SIGTERM");
    let log = text(&out.stderr);
    assert!(log.contains("SIGHUP received"), "{log}");
    assert!(log.contains("reload failed") && log.contains("auth_nope"), "the failed reload is logged:\n{log}");
    assert!(TcpStream::connect(addr).is_err(), "nothing may listen on {addr} after the exit");
}

#[test]
fn plugins_lists_the_registry_and_the_chains() {
    let out = run(&["plugins"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = text(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("auth_anonymous")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("built-in") && line.contains(" auth "), "{line}");
    assert!(stdout.contains("topic_acl") && stdout.contains("auth_file"), "{stdout}");

    let dir = TempDir::new("plugins-bad");
    let path = dir.file(
        "broker.yaml",
        "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:0\nauth:\n  plugins: [auth_nope]\n",
    );
    let out = run(&["plugins", "-c", path.to_str().unwrap()]);
    assert_config_error(&out, &["auth_nope", "auth_anonymous"]);
}
