//! The `auth_file` plugin through a running broker: files written by
//! Debian's `mosquitto_passwd` (installed by scripts/test.sh), the published
//! sample lines of hbmqtt and Mosquitto, reload when the file changes, and
//! passwords that never reach the log (captured at TRACE level).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use moth_protocol::packet::Packet;
use moth_tests::plugins::PluginDir;
use moth_tests::{EVENT_TIMEOUT, RawClient, TestBroker, connect_packet};

/// Everything this test binary logs, at every level.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Captured(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber of this binary");
        buf
    })
    .clone()
}

#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Connects with the given credentials and returns the CONNACK code.
async fn code(tb: &TestBroker, client_id: &str, user: &str, pass: &str) -> u8 {
    let mut c = RawClient::connect(tb.addr).await;
    let mut p = connect_packet(client_id, true);
    p.username = Some(user.to_string());
    p.password = Some(Bytes::copy_from_slice(pass.as_bytes()));
    c.send(&Packet::Connect(Box::new(p))).await;
    match c.recv().await {
        Some(Packet::Connack(a)) => a.code as u8,
        other => panic!("expected a CONNACK, got {other:?}"),
    }
}

async fn broker_with(passwd: &Path) -> TestBroker {
    TestBroker::start(&format!(
        "auth:\n  allow-anonymous: false\n  password-file: '{}'\n  plugins: [auth_file]\n",
        passwd.display()
    ))
    .await
}

fn mosquitto_passwd(args: &[&str]) {
    let out = Command::new("mosquitto_passwd").args(args).output().expect("mosquitto_passwd (apt package mosquitto)");
    assert!(out.status.success(), "mosquitto_passwd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_written_by_mosquitto_passwd_and_published_samples_are_accepted() {
    captured_log();
    let dir = PluginDir::with(&[]);
    let passwd = dir.path.join("mosquitto.passwd");
    let file = passwd.to_str().unwrap();
    mosquitto_passwd(&["-c", "-b", file, "u7", "secret7"]);
    mosquitto_passwd(&["-b", "-H", "sha512", file, "u6", "secret6"]);
    let written = std::fs::read_to_string(&passwd).unwrap();
    assert!(written.contains("u7:$7$") && written.contains("u6:$6$"), "{written}");
    let samples = "user6:$6$AAECAwQFBgcICQoL$JqsxEv/ucyxjA5DKsQ+Y8CDWaQDNQI9FpAkmfwAqWfwZLk/JEGgM0EpylrJHAZKKyFQjJeZ3nFaHjPzOzPPmPw==\n\
        user7:$7$101$AAECAwQFBgcICQoL$Xr99N9ym9ys8TWxis5ajETJq6EVYzmc6nb8t3pUYnPBbCAbICS4xejTltonXWCtJNBvA+By+TXUqU6qCblO00w==\n\
        test:$6$l4zQEHEcowc1Pnv4$HHrh8xnsZoLItQ8BmpFHM4r6q5UqK3DnXp2GaTm5zp5buQ7NheY3Xt9f6godVKbEtA.hOC7IEDwnok3pbAOip.\n";
    std::fs::write(&passwd, format!("{written}{samples}")).unwrap();
    let tb = broker_with(&passwd).await;
    for (user, good) in
        [("u7", "secret7"), ("u6", "secret6"), ("user6", "secret"), ("user7", "secret"), ("test", "test")]
    {
        assert_eq!(code(&tb, &format!("ok-{user}"), user, good).await, 0, "{user}");
        assert_eq!(code(&tb, &format!("no-{user}"), user, "wrong").await, 4, "{user} with a wrong password");
    }
    assert_eq!(code(&tb, "nobody", "nobody", "secret").await, 4, "unknown user: the same code as a wrong password");
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_is_reread_when_it_changes() {
    captured_log();
    let dir = PluginDir::with(&[]);
    let passwd = dir.path.join("passwd");
    let file = passwd.to_str().unwrap();
    mosquitto_passwd(&["-c", "-b", file, "dev", "first"]);
    let tb = broker_with(&passwd).await;
    assert_eq!(code(&tb, "r0", "dev", "first").await, 0);
    mosquitto_passwd(&["-b", file, "dev", "second"]);
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let mut n = 0;
    while code(&tb, &format!("r{n}"), "dev", "second").await != 0 {
        assert!(Instant::now() < deadline, "the new password was not picked up");
        n += 1;
    }
    assert_eq!(code(&tb, "old", "dev", "first").await, 4, "the old password is gone");
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_the_log() {
    let log = captured_log();
    let dir = PluginDir::with(&[]);
    let passwd = dir.path.join("passwd");
    let file = passwd.to_str().unwrap();
    let (right, wrong, stranger) = ("Right-Horse-7431", "Wrong-Battery-9922", "Unknown-Staple-5521");
    mosquitto_passwd(&["-c", "-b", file, "logged-user", right]);
    std::fs::write(&passwd, format!("{}broken:plain-Text-Secret-1234\n", std::fs::read_to_string(&passwd).unwrap()))
        .unwrap();
    let tb = broker_with(&passwd).await;
    assert_eq!(code(&tb, "log-ok", "logged-user", right).await, 0);
    assert_eq!(code(&tb, "log-bad", "logged-user", wrong).await, 4);
    assert_eq!(code(&tb, "log-unknown", "stranger", stranger).await, 4);
    assert_eq!(code(&tb, "log-broken", "broken", "plain-Text-Secret-1234").await, 4);
    tb.broker.shutdown().await;
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    // The capture works: the connections and the broken line are in it.
    assert!(text.contains("log-bad") && text.contains("plain-text password"), "{text}");
    for secret in [right, wrong, stranger, "plain-Text-Secret-1234"] {
        assert!(!text.contains(secret), "`{secret}` is in the log");
    }
}

/// A 64 KiB password cost 13.6 s of sha-crypt CPU per CONNECT (quadratic in
/// the length), so four looping attackers made real logins time out. Now
/// each such CONNECT is refused without a hash (within the event timeout,
/// which the old code overran by seconds) and a real login still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_passwords_are_refused_without_hashing_and_real_logins_go_on() {
    captured_log();
    let dir = PluginDir::with(&[]);
    let passwd = dir.path.join("passwd");
    // hbmqtt's published sample (sha512-crypt, password `test`).
    std::fs::write(
        &passwd,
        "test:$6$l4zQEHEcowc1Pnv4$HHrh8xnsZoLItQ8BmpFHM4r6q5UqK3DnXp2GaTm5zp5buQ7NheY3Xt9f6godVKbEtA.hOC7IEDwnok3pbAOip.\n",
    )
    .unwrap();
    let tb = Arc::new(broker_with(&passwd).await);
    let long = "x".repeat(65_535);
    let attackers: Vec<_> = (0..4)
        .map(|i| {
            let (tb, long) = (tb.clone(), long.clone());
            tokio::spawn(async move {
                for j in 0..3 {
                    let user = if j % 2 == 0 { "test" } else { "nobody" };
                    assert_eq!(code(&tb, &format!("long-{i}-{j}"), user, &long).await, 4, "{user}");
                }
            })
        })
        .collect();
    assert_eq!(code(&tb, "real", "test", "test").await, 0, "a real login is not starved");
    for a in attackers {
        a.await.expect("attacker task");
    }
    assert_eq!(code(&tb, "limit", "test", &"x".repeat(1024)).await, 4, "1 KiB is checked, and wrong");
}
