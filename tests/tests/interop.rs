//! Third-party MQTT clients against an in-process moth: the mosquitto
//! command-line clients (Debian `mosquitto-clients`) and Python paho-mqtt.
//!
//! A missing tool fails the test with what to install; nothing is skipped.
//! Every child process has a deadline (`-W` for mosquitto_sub, its own
//! timeout for the Python scripts, and `tokio::time::timeout` around all).

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use moth::QoS;
use moth_tests::{EVENT_TIMEOUT, TestBroker};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Deadline for one client process; above the clients' own timeouts.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(20);

const MOSQUITTO_HINT: &str =
    "install the Debian package `mosquitto-clients` (apt-get install mosquitto-clients); scripts/test.sh does it";
const PAHO_HINT: &str = "install paho-mqtt for python3 (python3 -m pip install paho-mqtt); scripts/test.sh does it";

fn require_mosquitto() {
    if let Err(e) = std::process::Command::new("stdbuf").arg("--version").stdout(Stdio::null()).status() {
        panic!("`stdbuf` cannot be run ({e}): install the Debian package `coreutils`");
    }
    for tool in ["mosquitto_pub", "mosquitto_sub"] {
        match std::process::Command::new(tool).arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(_) => {}
            Err(e) => panic!("`{tool}` cannot be run ({e}): {MOSQUITTO_HINT}"),
        }
    }
}

fn require_paho() {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import paho.mqtt.client, sys; sys.exit(0 if hasattr(paho.mqtt.client, 'CallbackAPIVersion') else 1)",
        ])
        .output()
        .unwrap_or_else(|e| panic!("`python3` cannot be run ({e}): install python3, then {PAHO_HINT}"));
    assert!(
        out.status.success(),
        "python3 has no paho-mqtt >= 2: {PAHO_HINT}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Runs a command to completion with a deadline.
async fn run(cmd: &mut Command) -> Finished {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let what = format!("{cmd:?}");
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {what}: {e}"));
    let out = tokio::time::timeout(PROCESS_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {PROCESS_TIMEOUT:?}"))
        .expect("wait for the child");
    Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn mosquitto_pub(port: u16, args: &[&str]) -> Command {
    let mut c = Command::new("mosquitto_pub");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args);
    c
}

/// Publishes with mosquitto_pub and asserts it succeeded.
async fn publish(port: u16, args: &[&str]) {
    let out = run(&mut mosquitto_pub(port, args)).await;
    assert!(out.status.success(), "mosquitto_pub {args:?} failed\n{out}");
}

/// One message as printed by mosquitto_sub with `-F 'MSG|%t|%q|%r|%p'`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Received {
    topic: String,
    qos: u8,
    retain: bool,
    payload: String,
}

/// A running mosquitto_sub in debug mode, read line by line, so the test
/// knows when the SUBACK arrived and what each message was.
struct MosquittoSub {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
}

impl MosquittoSub {
    /// Spawns `mosquitto_sub -d -F ... -W <timeout> ARGS`.
    fn spawn(port: u16, args: &[&str]) -> MosquittoSub {
        Self::spawn_format(port, "MSG|%t|%q|%r|%p", args)
    }

    /// Like [`MosquittoSub::spawn`] with another `-F` format; read the
    /// messages with [`MosquittoSub::line_starting`].
    fn spawn_format(port: u16, format: &str, args: &[&str]) -> MosquittoSub {
        // mosquitto_sub's stdout is block-buffered on a pipe; line-buffer it
        // (coreutils `stdbuf`) so each line is seen when it is printed.
        let mut c = Command::new("stdbuf");
        c.args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", &port.to_string(), "-d", "-F", format, "-W", "15"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = c.spawn().unwrap_or_else(|e| panic!("cannot spawn mosquitto_sub: {e}: {MOSQUITTO_HINT}"));
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        MosquittoSub { child, lines, seen: Vec::new() }
    }

    async fn next_line(&mut self, waiting_for: &str) -> Option<String> {
        match tokio::time::timeout(EVENT_TIMEOUT, self.lines.next_line()).await {
            Err(_) => panic!(
                "mosquitto_sub printed nothing for {EVENT_TIMEOUT:?} while waiting for {waiting_for}; so far:\n{}",
                self.seen.join("\n")
            ),
            Ok(r) => {
                let line = r.expect("read mosquitto_sub output");
                if let Some(l) = &line {
                    self.seen.push(l.clone());
                }
                line
            }
        }
    }

    /// Waits for the SUBACK; returns the granted QoS codes (128 = failure).
    async fn subscribed(&mut self) -> Vec<u8> {
        loop {
            let Some(line) = self.next_line("the SUBACK").await else {
                panic!("mosquitto_sub exited before its SUBACK:\n{}", self.seen.join("\n"));
            };
            if line.contains("received CONNACK") && !line.contains("CONNACK (0)") {
                panic!("mosquitto_sub was refused: {line}");
            }
            // "Subscribed (mid: 1): 2" or "Subscribed (mid: 1): 0, 1"
            if let Some(rest) = line.strip_prefix("Subscribed (mid: ") {
                let codes = rest.split_once("): ").expect("SUBACK line").1;
                return codes.split(',').map(|c| c.trim().parse().expect("granted QoS")).collect();
            }
        }
    }

    /// The next message printed.
    async fn message(&mut self) -> Received {
        loop {
            let Some(line) = self.next_line("a message").await else {
                panic!("mosquitto_sub exited while a message was expected:\n{}", self.seen.join("\n"));
            };
            if let Some(m) = parse_message(&line) {
                return m;
            }
        }
    }

    /// The next line that starts with `prefix` (a message in a custom format).
    async fn line_starting(&mut self, prefix: &str) -> String {
        loop {
            let Some(line) = self.next_line(prefix).await else {
                panic!("mosquitto_sub exited while `{prefix}...` was expected:\n{}", self.seen.join("\n"));
            };
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Waits for the exit; returns the status and the messages printed
    /// after the ones already read.
    async fn finish(mut self) -> (ExitStatus, Vec<Received>, String) {
        let mut rest = Vec::new();
        while let Some(line) = self.next_line("the end of output").await {
            if let Some(m) = parse_message(&line) {
                rest.push(m);
            }
        }
        let status = tokio::time::timeout(PROCESS_TIMEOUT, self.child.wait())
            .await
            .expect("mosquitto_sub exits after closing stdout")
            .expect("wait for mosquitto_sub");
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr).await;
        }
        (status, rest, format!("{stderr}\n--- stdout ---\n{}", self.seen.join("\n")))
    }
}

fn parse_message(line: &str) -> Option<Received> {
    let rest = line.strip_prefix("MSG|")?;
    let mut f = rest.splitn(4, '|');
    Some(Received {
        topic: f.next()?.to_string(),
        qos: f.next()?.parse().ok()?,
        retain: f.next()? == "1",
        payload: f.next()?.to_string(),
    })
}

fn msg(topic: &str, qos: u8, retain: bool, payload: &str) -> Received {
    Received { topic: topic.into(), qos, retain, payload: payload.into() }
}

/// Polls a broker counter until it has the wanted value (bounded).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn python(script: &str) -> Command {
    let mut c = Command::new("python3");
    c.arg(format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR")));
    c
}

// ---------------------------------------------------------------------------
// mosquitto_pub / mosquitto_sub

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_exchange_qos_0_1_2() {
    require_mosquitto();
    let b = TestBroker::start("").await;
    let port = b.port();
    let mut sub = MosquittoSub::spawn(port, &["-q", "2", "-C", "3", "-t", "interop/qos/#"]);
    assert_eq!(sub.subscribed().await, vec![2], "QoS 2 is granted");
    for q in ["0", "1", "2"] {
        publish(port, &["-q", q, "-t", &format!("interop/qos/{q}"), "-m", &format!("payload {q}")]).await;
    }
    let (status, got, log) = sub.finish().await;
    assert!(status.success(), "mosquitto_sub should exit 0 after 3 messages\n{log}");
    assert_eq!(
        got,
        vec![
            msg("interop/qos/0", 0, false, "payload 0"),
            msg("interop/qos/1", 1, false, "payload 1"),
            msg("interop/qos/2", 2, false, "payload 2"),
        ],
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_qos2_publish_to_qos1_subscriber_is_downgraded() {
    require_mosquitto();
    let b = TestBroker::start("").await;
    let mut sub = MosquittoSub::spawn(b.port(), &["-q", "1", "-C", "1", "-t", "interop/down"]);
    assert_eq!(sub.subscribed().await, vec![1]);
    publish(b.port(), &["-q", "2", "-t", "interop/down", "-m", "two"]).await;
    assert_eq!(sub.message().await, msg("interop/down", 1, false, "two"));
    let (status, _, log) = sub.finish().await;
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_retained_message_reaches_a_later_subscriber_and_empty_payload_clears_it() {
    require_mosquitto();
    let b = TestBroker::start("").await;
    let port = b.port();
    publish(port, &["-q", "1", "-r", "-t", "interop/retained", "-m", "kept"]).await;
    until("the retained message is stored", || b.broker.retained_count() == 1).await;

    let sub = MosquittoSub::spawn(port, &["-q", "1", "-C", "1", "-t", "interop/retained"]);
    let (status, got, log) = sub.finish().await;
    assert!(status.success(), "{log}");
    assert_eq!(got, vec![msg("interop/retained", 1, true, "kept")], "{log}");

    publish(port, &["-q", "1", "-r", "-n", "-t", "interop/retained"]).await;
    until("the empty retained payload clears it", || b.broker.retained_count() == 0).await;
    // A new subscriber gets the next live message first, not a stale retained one.
    let mut sub = MosquittoSub::spawn(port, &["-q", "1", "-C", "1", "-t", "interop/retained"]);
    sub.subscribed().await;
    publish(port, &["-q", "1", "-t", "interop/retained", "-m", "live"]).await;
    assert_eq!(sub.message().await, msg("interop/retained", 1, false, "live"));
    let (status, _, log) = sub.finish().await;
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_will_is_published_when_the_client_dies() {
    require_mosquitto();
    let b = TestBroker::start("").await;
    let mut watcher = b.broker.subscribe("interop/will/#", QoS::AtLeastOnce).expect("subscribe");
    let mut dying = MosquittoSub::spawn(
        b.port(),
        &["-t", "interop/nothing", "--will-topic", "interop/will/dying", "--will-payload", "gone", "--will-qos", "1"],
    );
    dying.subscribed().await;
    dying.child.start_kill().expect("kill mosquitto_sub");
    let m = tokio::time::timeout(EVENT_TIMEOUT, watcher.recv())
        .await
        .expect("the will is published")
        .expect("the broker is running");
    assert_eq!(&*m.topic, "interop/will/dying");
    assert_eq!(&m.payload[..], b"gone");
    assert_eq!(m.qos, QoS::AtLeastOnce);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_will_is_not_published_after_a_clean_disconnect() {
    require_mosquitto();
    let b = TestBroker::start("").await;
    let mut watcher = b.broker.subscribe("interop/will/#", QoS::AtLeastOnce).expect("subscribe");
    let mut polite = MosquittoSub::spawn(
        b.port(),
        &["-C", "1", "-t", "interop/go", "--will-topic", "interop/will/polite", "--will-payload", "gone"],
    );
    polite.subscribed().await;
    assert_eq!(b.broker.session_count(), 1);
    b.broker.publish("interop/go", "bye", QoS::AtMostOnce, false).expect("publish");
    let (status, _, log) = polite.finish().await;
    assert!(status.success(), "{log}");
    // The clean session ends with the DISCONNECT; by then a will would have been sent.
    until("the session is gone", || b.broker.session_count() == 0).await;
    b.broker.publish("interop/will/marker", "marker", QoS::AtMostOnce, false).expect("publish");
    let m = tokio::time::timeout(EVENT_TIMEOUT, watcher.recv())
        .await
        .expect("the marker arrives")
        .expect("the broker is running");
    assert_eq!(&*m.topic, "interop/will/marker", "no will after DISCONNECT, got {m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_mqtt31_clients_publish_and_subscribe() {
    require_mosquitto();
    let b = TestBroker::start("").await;
    let port = b.port();
    let mut sub =
        MosquittoSub::spawn(port, &["-V", "mqttv31", "-i", "v31-sub", "-q", "2", "-C", "2", "-t", "interop/v31/+"]);
    assert_eq!(sub.subscribed().await, vec![2]);
    publish(port, &["-V", "mqttv31", "-i", "v31-pub", "-q", "1", "-t", "interop/v31/a", "-m", "one"]).await;
    publish(port, &["-V", "mqttv31", "-i", "v31-pub", "-q", "2", "-t", "interop/v31/b", "-m", "two"]).await;
    let (status, got, log) = sub.finish().await;
    assert!(status.success(), "{log}");
    assert_eq!(got, vec![msg("interop/v31/a", 1, false, "one"), msg("interop/v31/b", 2, false, "two")], "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_hash_subscription_does_not_receive_dollar_topics() {
    require_mosquitto();
    let b = TestBroker::start("").await;
    let port = b.port();
    let mut all = MosquittoSub::spawn(port, &["-C", "1", "-t", "#"]);
    all.subscribed().await;
    // -R: skip the broker's retained `$SYS/broker/version`.
    let mut sys = MosquittoSub::spawn(port, &["-C", "1", "-R", "-t", "$SYS/#"]);
    sys.subscribed().await;
    // The $ message first: if `#` matched it, it would be the first one printed.
    b.broker.publish("$SYS/broker/interop-test", "dollar", QoS::AtMostOnce, false).expect("publish");
    publish(port, &["-t", "interop/plain", "-m", "plain"]).await;
    assert_eq!(all.message().await, msg("interop/plain", 0, false, "plain"), "`#` must not match `$SYS/...`");
    assert_eq!(sys.message().await, msg("$SYS/broker/interop-test", 0, false, "dollar"));
    for s in [all, sys] {
        let (status, _, log) = s.finish().await;
        assert!(status.success(), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_is_refused_when_anonymous_access_is_off() {
    require_mosquitto();
    let b = TestBroker::start("auth:\n  allow-anonymous: false\n").await;
    let out = run(&mut mosquitto_pub(b.port(), &["-t", "interop/x", "-m", "x"])).await;
    assert!(!out.status.success(), "an anonymous mosquitto_pub must be refused\n{out}");
    let all = format!("{}{}", out.stdout, out.stderr).to_lowercase();
    assert!(all.contains("not authori"), "mosquitto_pub should report `not authorised`\n{out}");
}

// ---------------------------------------------------------------------------
// Python paho-mqtt

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_mqtt311_roundtrip_qos_0_1_2_and_retained() {
    require_paho();
    let b = TestBroker::start("").await;
    let out = run(python("paho_roundtrip.py").arg(b.port().to_string())).await;
    assert!(out.status.success(), "paho roundtrip failed\n{out}");
    for line in ["OK qos 0 1 2 (3.1.1)", "OK retained", "OK retained cleared"] {
        assert!(out.stdout.contains(line), "missing `{line}`\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_mqtt31_roundtrip_qos_0_1_2_and_retained() {
    require_paho();
    let b = TestBroker::start("").await;
    let out = run(python("paho_roundtrip.py").args([&b.port().to_string(), "--protocol", "3.1"])).await;
    assert!(out.status.success(), "paho MQTT 3.1 roundtrip failed\n{out}");
    assert!(out.stdout.contains("OK qos 0 1 2 (3.1)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_anonymous_client_gets_not_authorized_when_anonymous_access_is_off() {
    require_paho();
    let b = TestBroker::start("auth:\n  allow-anonymous: false\n").await;
    let out = run(python("paho_refused.py").arg(b.port().to_string())).await;
    assert!(out.status.success(), "paho should be refused with CONNACK 5\n{out}");
    assert!(out.stdout.contains("OK refused"), "{out}");
}

// ---------------------------------------------------------------------------
// MQTT 5

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_mqtt5_properties_options_aliases_reason_codes_and_sessions() {
    require_paho();
    let b = TestBroker::start("").await;
    let out = run(python("paho_v5.py").arg(b.port().to_string())).await;
    assert!(out.status.success(), "paho MQTT 5 checks failed\n{out}");
    for line in [
        "OK connack",
        "OK properties end to end, subscription identifier, v5 -> 3.1.1",
        "OK 3.1.1 -> v5",
        "OK no local",
        "OK retain as published, retain handling 1 and 2",
        "OK topic aliases",
        "OK unsuback reason codes",
        "OK session expiry and clean start",
    ] {
        assert!(out.stdout.contains(line), "missing `{line}`\n{out}");
    }
}

/// mosquitto_pub -V mqttv5 with properties; a v5 mosquitto_sub prints them
/// (`%P` user properties, `%C` content type, `%R` response topic, `%S` the
/// subscription identifier) and a 3.1.1 one gets the same payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_v5_properties_reach_a_v5_subscriber_and_a_v311_one_gets_the_message() {
    require_mosquitto();
    let b = TestBroker::start("").await;
    let port = b.port();
    let mut v5 = MosquittoSub::spawn_format(
        port,
        "V5|%S|%C|%R|%P|%t|%p",
        &[
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-C",
            "1",
            "-t",
            "interop/v5/#",
            "-D",
            "subscribe",
            "subscription-identifier",
            "7",
        ],
    );
    assert_eq!(v5.subscribed().await, vec![1]);
    let mut v311 = MosquittoSub::spawn(port, &["-V", "mqttv311", "-q", "1", "-C", "1", "-t", "interop/v5/#"]);
    assert_eq!(v311.subscribed().await, vec![1]);
    publish(
        port,
        &[
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-t",
            "interop/v5/a",
            "-m",
            "five",
            "-D",
            "publish",
            "user-property",
            "colour",
            "blue",
            "-D",
            "publish",
            "content-type",
            "text/x-test",
            "-D",
            "publish",
            "response-topic",
            "interop/reply",
        ],
    )
    .await;
    let line = v5.line_starting("V5|").await;
    assert_eq!(line, "V5|7|text/x-test|interop/reply|colour:blue|interop/v5/a|five");
    assert_eq!(v311.message().await, msg("interop/v5/a", 1, false, "five"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_v5_retained_message_reaches_a_new_subscriber() {
    require_mosquitto();
    let b = TestBroker::start("").await;
    let port = b.port();
    publish(port, &["-V", "mqttv5", "-q", "1", "-r", "-t", "interop/v5r", "-m", "kept"]).await;
    let sub = MosquittoSub::spawn(port, &["-V", "mqttv5", "-q", "1", "-C", "1", "-t", "interop/v5r"]);
    let (status, got, log) = sub.finish().await;
    assert!(status.success(), "{log}");
    assert_eq!(got, vec![msg("interop/v5r", 1, true, "kept")], "{log}");
}
