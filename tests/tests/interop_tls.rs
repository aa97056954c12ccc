//! The mosquitto command-line clients (OpenSSL inside) against moth's TLS
//! listeners: server verification with `--cafile`, mutual TLS with a client
//! certificate, and a client certificate the broker must reject.
//!
//! Messages are checked in-process (`Broker::subscribe`, retained messages
//! for mosquitto_sub), so no test waits on a subscription being ready.

use std::process::Stdio;
use std::time::Duration;

use moth::QoS;
use moth_tests::certs::{Ca, KeyKind, TempDir, tls_yaml};
use moth_tests::{EVENT_TIMEOUT, TestBroker};
use tokio::process::Command;

const PROCESS_TIMEOUT: Duration = Duration::from_secs(20);
const HINT: &str = "install the Debian package `mosquitto-clients`; scripts/test.sh does it";

struct Done {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn run(program: &str, args: &[&str]) -> Done {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run `{program}` ({e}): {HINT}"));
    let out = tokio::time::timeout(PROCESS_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish in {PROCESS_TIMEOUT:?}"))
        .expect("wait");
    Done {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

struct Setup {
    dir: TempDir,
    ca: Ca,
    cafile: String,
    tb: TestBroker,
}

async fn setup(label: &str, listener_extra: &str) -> Setup {
    let dir = TempDir::new(label);
    let ca = Ca::new("moth test CA");
    let server = ca.server(&dir, "server", KeyKind::EcdsaP256, &[]);
    let cafile = ca.write(&dir, "ca.pem");
    let yaml =
        format!("listeners:\n  default:\n    bind: 127.0.0.1:0\n{}{listener_extra}", tls_yaml(&server, Some(&cafile)));
    let tb = TestBroker::start_yaml(&yaml).await;
    Setup { cafile: cafile.display().to_string(), dir, ca, tb }
}

fn base_args(s: &Setup) -> Vec<String> {
    // `localhost`: OpenSSL checks the name against the certificate's SAN.
    ["-h", "localhost", "-p", &s.tb.port().to_string(), "--cafile", &s.cafile].iter().map(|a| a.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_over_tls_with_cafile() {
    let s = setup("mosq-tls", "").await;
    let mut sub = s.tb.broker.subscribe("mosq/tls", QoS::AtLeastOnce).expect("subscribe");
    let mut args = base_args(&s);
    args.extend(["-t", "mosq/tls", "-m", "hello over tls", "-q", "1", "-i", "mosq-tls-pub"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("mosquitto_pub", &args).await;
    assert!(out.ok, "mosquitto_pub failed\n{}\n{}", out.stdout, out.stderr);
    let m =
        tokio::time::timeout(EVENT_TIMEOUT, sub.recv()).await.expect("message arrives").expect("the broker is running");
    assert_eq!(&m.payload[..], b"hello over tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_sub_with_a_client_certificate_on_a_mutual_tls_listener() {
    let s = setup("mosq-mutual", "    require_certificate: true\n").await;
    let device = s.ca.client(&s.dir, "device", "device-7");
    s.tb.broker.publish("mosq/mutual", "retained for devices", QoS::AtLeastOnce, true).expect("publish");
    let mut args = base_args(&s);
    let (cert, key) = (device.cert.display().to_string(), device.key.display().to_string());
    args.extend(["--cert", &cert, "--key", &key, "-t", "mosq/mutual", "-C", "1", "-W", "10"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("mosquitto_sub", &args).await;
    assert!(out.ok, "mosquitto_sub failed\n{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.trim(), "retained for devices");

    // Without a certificate the same listener refuses it.
    let mut args = base_args(&s);
    args.extend(["-t", "mosq/mutual", "-C", "1", "-W", "5"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("mosquitto_sub", &args).await;
    assert!(!out.ok && out.stdout.is_empty(), "no certificate, no message\n{}\n{}", out.stdout, out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_with_a_certificate_from_another_ca_is_rejected() {
    let s = setup("mosq-rogue", "").await;
    let rogue = Ca::new("rogue CA").client(&s.dir, "rogue", "device-7");
    s.tb.broker.publish("mosq/rogue", "secret", QoS::AtLeastOnce, true).expect("publish");
    let mut args = base_args(&s);
    let (cert, key) = (rogue.cert.display().to_string(), rogue.key.display().to_string());
    args.extend(["--cert", &cert, "--key", &key, "-t", "mosq/rogue", "-C", "1", "-W", "5"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run("mosquitto_sub", &args).await;
    assert!(!out.ok, "a rogue certificate must be rejected\n{}\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("secret"), "nothing may be delivered: {}", out.stdout);
}
