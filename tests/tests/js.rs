//! MQTT.js against moth's ws and wss listeners: from Node (`tests/js/roundtrip.js`)
//! and from a real browser, headless Chromium loading `tests/js/browser.html`
//! with MQTT.js's browser bundle, both served by this test over http on
//! loopback. The page reports what it received by publishing it back, to a
//! topic the test subscribes to in-process. Node speaks 3.1.1, 3.1 and
//! MQTT 5 (properties and a subscription identifier round trip); the browser
//! speaks 3.1.1 over ws and MQTT 5 over wss. Node also runs SCRAM-SHA-256
//! enhanced authentication against the `scram` plugin (`tests/js/scram.js`).
//!
//! `scripts/test.sh` installs node, npm, chromium and `tests/js/node_modules`
//! (`npm ci`); a missing piece fails the test with what to run.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use moth::QoS;
use moth_tests::TestBroker;
use moth_tests::certs::{Ca, KeyKind, TempDir, tls_yaml};
use moth_tests::plugins::PluginDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::Command;

const HINT: &str = "run scripts/test.sh, which installs nodejs, npm, chromium and `npm ci` in tests/js";
const NODE_TIMEOUT: Duration = Duration::from_secs(30);
/// Chromium's first start on a cold machine is slow.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

fn mqtt_bundle() -> PathBuf {
    let bundle = js_dir().join("node_modules/mqtt/dist/mqtt.min.js");
    assert!(bundle.is_file(), "{} is missing: {HINT}", bundle.display());
    bundle
}

/// Runs `node roundtrip.js ARGS` and returns its stdout, failing on error.
async fn node_round_trip(args: &[&str]) -> String {
    let (status, stdout, stderr) = node("roundtrip.js", args).await;
    assert!(
        status.success() && stdout.starts_with("OK "),
        "MQTT.js {args:?} failed ({status})\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

/// Runs `node SCRIPT ARGS` in `tests/js`: its exit status, stdout and stderr.
async fn node(script: &str, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    mqtt_bundle();
    let mut cmd = Command::new("node");
    cmd.arg(js_dir().join(script))
        .args(args)
        .current_dir(js_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run `node` ({e}): {HINT}"));
    let out = tokio::time::timeout(NODE_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("node {script} {args:?} did not finish in {NODE_TIMEOUT:?}"))
        .expect("wait for node");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status, text(&out.stdout), text(&out.stderr))
}

async fn ws_broker(extra: &str) -> TestBroker {
    TestBroker::start_yaml(&format!("listeners:\n  default:\n    type: ws\n    bind: 127.0.0.1:0\n{extra}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_from_node_over_ws() {
    let tb = ws_broker("    path: /mqtt\n").await;
    let url = format!("ws://127.0.0.1:{}/mqtt", tb.port());
    node_round_trip(&[&url, "js/ws"]).await;
    // MQTT 3.1: MQTT.js offers the `mqttv3.1` subprotocol.
    node_round_trip(&[&url, "js/ws31", "--v31"]).await;
    // MQTT 5: properties and the subscription identifier come back.
    node_round_trip(&[&url, "js/ws5", "--v5"]).await;
    // Topic aliases from the broker, resolved by MQTT.js.
    node_round_trip(&[&url, "js/ws5/aliased/topic", "--v5", "--aliases"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_from_node_over_wss() {
    let dir = TempDir::new("js-wss");
    let ca = Ca::new("moth test CA");
    let server = ca.server(&dir, "server", KeyKind::EcdsaP256, &[]);
    let cafile = ca.write(&dir, "ca.pem");
    let tb = ws_broker(&tls_yaml(&server, None)).await;
    let url = format!("wss://127.0.0.1:{}/mqtt", tb.port());
    node_round_trip(&[&url, "js/wss", "--ca", cafile.to_str().expect("utf-8 path")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_authenticates_with_scram_sha_256_and_re_authenticates() {
    let dir = PluginDir::with(&["moth_auth_scram"]);
    let alice = moth_tests::scram::stored("wonderland", b"salt from js.rs", 4096);
    let tb = TestBroker::start(&format!(
        "{}auth:\n  plugins: [scram]\n  allow-anonymous: false\nplugins-config:\n  scram:\n    users: {{alice: '{alice}'}}\n",
        dir.yaml()
    ))
    .await;
    let url = format!("mqtt://127.0.0.1:{}", tb.port());
    for (args, expected) in [
        (vec!["alice", "wonderland"], "OK"),
        (vec!["alice", "wonderland", "--reauth"], "OK"),
        // 0x86: bad user name or password.
        (vec!["alice", "looking-glass"], "REFUSED 134"),
    ] {
        let mut all = vec![url.as_str()];
        all.extend(&args);
        let (status, stdout, stderr) = node("scram.js", &all).await;
        assert_eq!(stdout.trim(), expected, "MQTT.js {args:?} ({status})\nstderr: {stderr}");
    }
    tb.broker.shutdown().await;
}

/// Serves the test page and MQTT.js's browser bundle over http until dropped.
async fn serve_page() -> (u16, tokio::task::JoinHandle<()>) {
    let page = std::fs::read(js_dir().join("browser.html")).expect("tests/js/browser.html");
    let bundle = std::fs::read(mqtt_bundle()).expect("read the MQTT.js bundle");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let (page, bundle) = (page.clone(), bundle.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&request);
                let path = line.split_whitespace().nth(1).unwrap_or("/");
                let (status, kind, body): (&str, &str, &[u8]) = match path.split('?').next() {
                    Some("/") => ("200 OK", "text/html; charset=utf-8", &page),
                    Some("/mqtt.min.js") => ("200 OK", "text/javascript", &bundle),
                    _ => ("404 Not Found", "text/plain", b"not found"),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body).await;
            });
        }
    });
    (port, task)
}

/// A headless Chromium in its own process group, ended (the whole group,
/// by its id) when dropped.
struct Browser {
    child: tokio::process::Child,
    _profile: TempDir,
}

impl Browser {
    /// `extra`: more Chromium flags.
    fn open(url: &str, extra: &[String]) -> Browser {
        let profile = TempDir::new("chromium-profile");
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run `chromium` ({e}): {HINT}"));
        Browser { child, _profile: profile }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The renderer and helper processes share the group.
            let _ = std::process::Command::new("kill").arg("-TERM").arg("--").arg(format!("-{pid}")).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_in_headless_chromium_over_ws() {
    let tb = ws_broker("").await;
    let mut result = tb.broker.subscribe("browser/t/result", QoS::AtLeastOnce).expect("subscribe");
    let (http_port, server) = serve_page().await;
    let url = format!("http://127.0.0.1:{http_port}/?ws=ws://127.0.0.1:{}/mqtt&topic=browser/t", tb.port());
    let browser = Browser::open(&url, &[]);
    expect_page_result(&mut result, &url).await;
    drop(browser);
    server.abort();
}

async fn expect_page_result(result: &mut moth::LocalSubscription, url: &str) -> String {
    let message = tokio::time::timeout(BROWSER_TIMEOUT, result.recv())
        .await
        .unwrap_or_else(|_| panic!("the page reported nothing within {BROWSER_TIMEOUT:?} ({url})"))
        .expect("the broker is running");
    let text = String::from_utf8_lossy(&message.payload).into_owned();
    assert!(text.starts_with("RECEIVED hello from "), "the page's result: {text}");
    assert!(text.contains("Chrome"), "sent by Chromium itself: {text}");
    text
}

/// The base64 SHA-256 of a certificate's public key, for Chromium's
/// `--ignore-certificate-errors-spki-list` (trust this one key, and only it).
fn spki_sha256(cert: &std::path::Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    let out = std::process::Command::new("sh").args(["-c", &script]).output().expect("run openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("base64").trim().to_string()
}

/// The same page over wss: the browser trusts the test certificate's key
/// (and no other certificate error is ignored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_in_headless_chromium_over_wss() {
    let dir = TempDir::new("chromium-wss");
    let ca = Ca::new("moth test CA");
    let server_cert = ca.server(&dir, "server", KeyKind::EcdsaP256, &[]);
    let tb = ws_broker(&tls_yaml(&server_cert, None)).await;
    let mut result = tb.broker.subscribe("browser/s/result", QoS::AtLeastOnce).expect("subscribe");
    let (http_port, server) = serve_page().await;
    // MQTT 5 from the browser, over wss.
    let url = format!("http://127.0.0.1:{http_port}/?ws=wss://127.0.0.1:{}/mqtt&topic=browser/s&v=5", tb.port());
    let pin = format!("--ignore-certificate-errors-spki-list={}", spki_sha256(&server_cert.cert));
    let browser = Browser::open(&url, &[pin]);
    let text = expect_page_result(&mut result, &url).await;
    assert!(text.ends_with(" v5 from=browser"), "the MQTT 5 user property came back to the page: {text}");
    drop(browser);
    server.abort();
}
