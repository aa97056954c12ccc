//! The plugin host end to end: plugin libraries built in this test run,
//! loaded through the real configuration path (`plugins-dir`,
//! `plugins-config`, `auth.plugins`, `topic-check.plugins`), and driven by
//! MQTT clients over TCP.

use std::time::{Duration, Instant};

use bytes::Bytes;
use moth::{Broker, Config};
use moth_protocol::packet::{
    Ack, ConnectReturnCode, Packet, Publish, QoS, ReasonCode, SubackCode, Subscribe, SubscribeFilter,
};
use moth_tests::plugins::PluginDir;
use moth_tests::{EVENT_TIMEOUT, RawClient, TestBroker, connect_packet};

/// Connects with the given credentials and returns the client and the CONNACK code.
async fn connect(tb: &TestBroker, client_id: &str, user: Option<&str>, pass: Option<&str>) -> (RawClient, u8) {
    let mut c = RawClient::connect(tb.addr).await;
    let mut p = connect_packet(client_id, true);
    p.username = user.map(String::from);
    p.password = pass.map(|s| Bytes::copy_from_slice(s.as_bytes()));
    c.send(&Packet::Connect(Box::new(p))).await;
    match c.recv().await {
        Some(Packet::Connack(a)) => {
            let code = a.code as u8;
            (c, code)
        }
        other => panic!("expected a CONNACK, got {other:?}"),
    }
}

async fn code(tb: &TestBroker, user: &str) -> u8 {
    connect(tb, &format!("c-{user}"), Some(user), Some("pw")).await.1
}

fn build_error(yaml: &str) -> String {
    let config = Config::from_yaml_str(yaml).expect("valid YAML config");
    match Broker::new(config) {
        Ok(_) => panic!("expected the broker to refuse this configuration"),
        Err(e) => e.to_string(),
    }
}

async fn subscribe(c: &mut RawClient, packet_id: u16, filters: &[&str]) -> Vec<SubackCode> {
    let filters = filters.iter().map(|f| SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce)).collect();
    c.send(&Packet::Subscribe(Subscribe { packet_id, filters, subscription_id: None, user_properties: Vec::new() }))
        .await;
    match c.recv().await {
        Some(Packet::Suback(s)) => s.codes,
        other => panic!("expected a SUBACK, got {other:?}"),
    }
}

async fn publish(c: &mut RawClient, packet_id: u16, topic: &str, payload: &'static [u8]) {
    c.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: topic.into(),
        packet_id,
        payload: Bytes::from_static(payload),
        properties: None,
        topic_alias: None,
        subscription_ids: Vec::new(),
    }))
    .await;
    match c.recv().await {
        Some(Packet::Puback(Ack { packet_id: id, .. })) => assert_eq!(id, packet_id),
        other => panic!("expected a PUBACK, got {other:?}"),
    }
}

const SCRIPTS: &str = "plugins-config:
  scripted_a: {auth: {alice: allow, bob: allow, carol: ignore, dave: ignore, erin: bad}}
  scripted_b: {auth: {alice: deny, bob: ignore, carol: allow, dave: ignore, erin: allow}}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_in_several_orders() {
    let dir = PluginDir::with(&["scripted_a", "scripted_b"]);
    for (order, expected) in [
        // alice: allow then deny -> the deny wins (the first Allow does not end the chain).
        // dave: ignored by all, so the default refuses a user name no plugin knew -> 4.
        ("[scripted_a, scripted_b]", [5, 0, 0, 4, 4]),
        // alice: deny first; erin: allow then bad credentials -> 4.
        ("[scripted_b, scripted_a]", [5, 0, 0, 4, 4]),
        ("[scripted_a]", [0, 0, 4, 4, 4]),
        ("[scripted_b]", [5, 4, 0, 4, 0]),
    ] {
        let tb =
            TestBroker::start(&format!("{}auth:\n  plugins: {order}\n  allow-anonymous: false\n{SCRIPTS}", dir.yaml()))
                .await;
        let mut got = Vec::new();
        for user in ["alice", "bob", "carol", "dave", "erin"] {
            got.push(code(&tb, user).await);
        }
        assert_eq!(got, expected, "chain {order}: CONNACK codes for alice, bob, carol, dave, erin");
        tb.broker.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_ignore_takes_the_configured_default() {
    let dir = PluginDir::with(&["scripted_a", "scripted_b"]);
    let chain = "  plugins: [scripted_a, scripted_b]\n";
    // Default deny, with the anonymous exception.
    let tb = TestBroker::start(&format!("{}auth:\n{chain}  allow-anonymous: true\n{SCRIPTS}", dir.yaml())).await;
    assert_eq!(code(&tb, "dave").await, 4, "a named client that every plugin ignored: an unknown user");
    assert_eq!(connect(&tb, "anon-1", None, None).await.1, 0, "no user name and allow-anonymous: true");
    tb.broker.shutdown().await;
    let tb = TestBroker::start(&format!("{}auth:\n{chain}  allow-anonymous: false\n{SCRIPTS}", dir.yaml())).await;
    assert_eq!(connect(&tb, "anon-1", None, None).await.1, 5, "no user name and allow-anonymous: false");
    tb.broker.shutdown().await;
    let tb = TestBroker::start(&format!("{}auth:\n{chain}  default: allow\n{SCRIPTS}", dir.yaml())).await;
    assert_eq!(code(&tb, "dave").await, 0, "auth.default: allow");
    assert_eq!(code(&tb, "alice").await, 5, "a deny still refuses");
    tb.broker.shutdown().await;
}

const ALLOWLIST: &str = "auth:
  plugins: [allowlist]
  allow-anonymous: false
topic-check:
  enabled: true
  plugins: [allowlist]
plugins-config:
  allowlist:
    users:
      alice: {password: wonderland, topics: ['sensors/#']}
    unknown-users: deny
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_reach_the_plugin_and_topics_are_checked_on_subscribe_and_publish() {
    let dir = PluginDir::with(&["moth_auth_allowlist"]);
    let tb = TestBroker::start(&format!("{}{ALLOWLIST}", dir.yaml())).await;
    assert_eq!(connect(&tb, "a1", Some("alice"), Some("nope")).await.1, 4, "wrong password: bad credentials");
    assert_eq!(connect(&tb, "m1", Some("mallory"), Some("x")).await.1, 5, "unknown-users: deny");
    let (mut alice, code) = connect(&tb, "a2", Some("alice"), Some("wonderland")).await;
    assert_eq!(code, 0);

    let codes = subscribe(&mut alice, 1, &["sensors/#", "secret/#", "sensors/+/temp"]).await;
    assert_eq!(
        codes,
        vec![
            SubackCode::Granted(QoS::AtLeastOnce),
            SubackCode::Failure(ReasonCode::UNSPECIFIED_ERROR),
            SubackCode::Granted(QoS::AtLeastOnce)
        ]
    );

    // A refused PUBLISH is dropped: the in-process subscriber sees only the allowed one.
    let mut everything = tb.broker.subscribe("#", QoS::AtLeastOnce).expect("local subscription");
    publish(&mut alice, 2, "secret/plans", b"no").await;
    publish(&mut alice, 3, "sensors/kitchen", b"yes").await;
    let m =
        tokio::time::timeout(EVENT_TIMEOUT, everything.recv()).await.expect("the allowed message").expect("running");
    assert_eq!(&*m.topic, "sensors/kitchen");
    assert!(everything.try_recv().is_none());
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_panics_refuses_and_the_broker_keeps_running() {
    let dir = PluginDir::with(&["scripted_a"]);
    let tb = TestBroker::start(&format!(
        "{}auth:\n  plugins: [scripted_a]\ntopic-check:\n  enabled: true\n  plugins: [scripted_a]\n  default: allow\n\
         plugins-config:\n  scripted_a: {{auth: {{boom: panic}}, auth-default: allow, topics: {{bad/topic: panic}}}}\n",
        dir.yaml()
    ))
    .await;
    assert_eq!(code(&tb, "boom").await, 5, "a panic in authenticate is a refusal");
    let (mut c, code) = connect(&tb, "fine", Some("fine"), Some("pw")).await;
    assert_eq!(code, 0, "the broker still serves");
    assert_eq!(
        subscribe(&mut c, 1, &["bad/topic", "good/topic"]).await,
        vec![SubackCode::Failure(ReasonCode::UNSPECIFIED_ERROR), SubackCode::Granted(QoS::AtLeastOnce)]
    );
    assert_eq!(tb.broker.plugin_failures(), 2, "both panics counted");
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_sleeps_past_the_timeout_is_refused_while_others_publish() {
    let dir = PluginDir::with(&["scripted_a"]);
    let tb = TestBroker::start(&format!(
        "{}plugin-timeout: 0.5\nplugin-concurrency: 1\nauth:\n  plugins: [scripted_a]\n\
         plugins-config:\n  scripted_a: {{auth: {{slow: sleep, slow2: sleep}}, sleep-ms: 5000, auth-default: allow}}\n",
        dir.yaml()
    ))
    .await;
    let (mut sub, sub_code) = connect(&tb, "sub", Some("sub"), Some("pw")).await;
    assert_eq!(sub_code, 0);
    assert_eq!(subscribe(&mut sub, 1, &["t"]).await, vec![SubackCode::Granted(QoS::AtLeastOnce)]);
    let (mut publisher, pub_code) = connect(&tb, "pub", Some("pub"), Some("pw")).await;
    assert_eq!(pub_code, 0);

    let started = Instant::now();
    let tb2 = TestBroker { broker: tb.broker.clone(), addr: tb.addr };
    let slow = tokio::spawn(async move {
        let r = (code(&tb2, "slow").await, code(&tb2, "slow2").await);
        (r, started.elapsed())
    });
    // Both slow CONNECTs hold plugin calls; message traffic goes on meanwhile.
    for i in 0..20u16 {
        let t = Instant::now();
        publish(&mut publisher, i + 1, "t", b"tick").await;
        match sub.recv().await {
            Some(Packet::Publish(p)) => {
                sub.send(&Packet::Puback(Ack::new(p.packet_id))).await;
            }
            other => panic!("expected a PUBLISH, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(1), "a round trip took {:?} during a slow plugin call", t.elapsed());
    }
    let ((first, second), elapsed) = slow.await.expect("slow connects");
    assert_eq!((first, second), (5, 5), "a timed-out plugin call counts as deny");
    // Each waited plugin-timeout (0.5 s), not the plugin's 5 s.
    assert!(elapsed < Duration::from_millis(2500), "slow CONNACKs took {elapsed:?}");

    // plugin-concurrency: 1. The first call still sleeps in the plugin and
    // holds the only permit, so even a quick client waits for it, and times out.
    assert_eq!(code(&tb, "quick").await, 5, "the hung call holds the plugin's only permit");
    assert!(started.elapsed() < Duration::from_secs(4), "the check above ran after the plugin woke up");
    // Once the plugin returns, the permit is free again (retry with a deadline).
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while code(&tb, "quick").await != 0 {
        assert!(Instant::now() < deadline, "the permit was never released");
    }
    assert!(started.elapsed() >= Duration::from_secs(5), "the permit came back before the plugin returned");
    assert!(tb.broker.plugin_failures() >= 3);
    tb.broker.shutdown().await;
}

/// plugin-timeout bounds a plugin call, not the wait for a call slot: ten
/// clients queued behind one slot of a plugin that answers in 0.1 s (1 s of
/// queue, against a 0.5 s timeout) are all served, because calls keep
/// completing. Counted: every CONNACK is 0 and no failure is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_queued_behind_a_slow_but_working_plugin_are_all_served() {
    let dir = PluginDir::with(&["scripted_a"]);
    let tb = TestBroker::start(&format!(
        "{}plugin-timeout: 0.5\nplugin-concurrency: 1\nauth:\n  plugins: [scripted_a]\n\
         plugins-config:\n  scripted_a: {{auth-default: sleep, sleep-ms: 100}}\n",
        dir.yaml()
    ))
    .await;
    let tb = std::sync::Arc::new(tb);
    let codes = codes_of_concurrent(&tb, "queued", 10).await;
    assert_eq!(codes, vec![0; 10], "every queued client got in");
    assert_eq!(tb.broker.plugin_failures(), 0, "no call counted as a timeout");
    tb.broker.shutdown().await;
}

/// A client that gives up while queued for its check (a reconnect storm's
/// clients time out and retry) leaves the queue: its check is never made.
/// The plugin writes down every call; the first client's 300 ms check holds
/// the only slot while the second sends CONNECT and closes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_while_queued_is_never_checked() {
    let dir = PluginDir::with(&["scripted_a"]);
    let calls = dir.path.join("calls");
    let tb = TestBroker::start(&format!(
        "{}plugin-concurrency: 1\nauth:\n  plugins: [scripted_a]\n\
         plugins-config:\n  scripted_a: {{auth-default: sleep, sleep-ms: 300, calls-file: '{}'}}\n",
        dir.yaml(),
        calls.display()
    ))
    .await;
    let tb = std::sync::Arc::new(tb);
    let logged = || std::fs::read_to_string(&calls).unwrap_or_default();
    let first = tokio::spawn({
        let tb = tb.clone();
        async move { code(&tb, "first").await }
    });
    // Its check has started (and holds the slot) once the plugin wrote it down.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while !logged().contains("first") {
        assert!(Instant::now() < deadline, "the first check never started");
        tokio::task::yield_now().await;
    }
    let mut leaver = RawClient::connect(tb.addr).await;
    let mut hello = connect_packet("c-leaver", true);
    hello.username = Some("leaver".into());
    hello.password = Some(Bytes::from_static(b"pw"));
    leaver.send(&Packet::Connect(Box::new(hello))).await;
    drop(leaver);
    assert_eq!(first.await.expect("first client"), 0);
    // A third client queues behind whatever is left: when it is in, the
    // leaver's check would have run before it.
    assert_eq!(code(&tb, "third").await, 0);
    assert_eq!(logged(), "first\nthird\n", "the client that left was not checked");
}

/// A plugin sees an MQTT 5 CONNECT's level and properties through the
/// stable ABI (plugin-api 1.3's `extra` keys); a 3.1.1 CONNECT sends none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_see_the_mqtt5_connect_properties() {
    let dir = PluginDir::with(&["scripted_a"]);
    let calls = dir.path.join("calls");
    let tb = TestBroker::start(&format!(
        "{}auth:\n  plugins: [scripted_a]\n\
         plugins-config:\n  scripted_a: {{auth-default: allow, calls-detail: true, calls-file: '{}'}}\n",
        dir.yaml(),
        calls.display()
    ))
    .await;
    let mut v5 = RawClient::connect(tb.addr).await;
    v5.protocol = moth_protocol::packet::Protocol::V5;
    let mut hello = connect_packet("c-v5", true);
    hello.protocol = moth_protocol::packet::Protocol::V5;
    hello.username = Some("five".into());
    hello.properties.session_expiry_interval = Some(30);
    hello.properties.user_properties = vec![("site".into(), "lab 2".into())];
    v5.send(&Packet::Connect(Box::new(hello))).await;
    assert!(matches!(v5.recv().await, Some(Packet::Connack(a)) if a.code.is_accepted()));
    let mut old = connect_packet("c-v3", true);
    old.username = Some("three".into());
    let mut v3 = RawClient::connect(tb.addr).await;
    v3.send(&Packet::Connect(Box::new(old))).await;
    assert!(matches!(v3.recv().await, Some(Packet::Connack(a)) if a.code.is_accepted()));
    let logged = std::fs::read_to_string(&calls).unwrap_or_default();
    assert_eq!(
        logged, "five level=5 mqtt5.session-expiry-interval=30 mqtt5.user-property.site=lab 2\nthree level=4\n",
        "what the plugin was handed"
    );
}

/// A hung plugin: the clients queued behind its only slot are refused once
/// no call has completed for plugin-timeout, each with CONNACK 5, instead of
/// waiting for the plugin (which sleeps 60 s, far past the suite's event
/// timeout). A runtime of its own, shut down in the background at the end:
/// the default test runtime would wait for the sleeping plugin call.
#[test]
fn clients_queued_behind_a_hung_plugin_are_refused() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let dir = PluginDir::with(&["scripted_a"]);
        let tb = TestBroker::start(&format!(
            "{}plugin-timeout: 0.5\nplugin-concurrency: 1\nauth:\n  plugins: [scripted_a]\n\
             plugins-config:\n  scripted_a: {{auth-default: sleep, sleep-ms: 60000}}\n",
            dir.yaml()
        ))
        .await;
        let tb = std::sync::Arc::new(tb);
        let codes = codes_of_concurrent(&tb, "stuck", 4).await;
        assert_eq!(codes, vec![5; 4], "the hung call and everyone queued behind it are refused");
        assert_eq!(tb.broker.plugin_failures(), 4, "each refusal counted as a plugin failure");
        tb.broker.shutdown().await;
    });
    rt.shutdown_background();
}

/// A topic plugin that does not declare itself fast runs under the same
/// plugin-timeout as authentication: a check that hangs refuses the filter
/// after the timeout, and other clients' traffic goes on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_check_that_sleeps_past_the_timeout_refuses_while_others_publish() {
    let dir = PluginDir::with(&["scripted_a"]);
    let tb = TestBroker::start(&format!(
        "{}plugin-timeout: 0.5\nauth:\n  plugins: [auth_anonymous]\n\
         topic-check:\n  enabled: true\n  plugins: [scripted_a]\n  default: allow\n\
         plugins-config:\n  scripted_a: {{topics: {{slow: sleep}}, sleep-ms: 3000}}\n",
        dir.yaml()
    ))
    .await;
    let (mut sub, code) = connect(&tb, "sub", None, None).await;
    assert_eq!(code, 0);
    assert_eq!(subscribe(&mut sub, 1, &["t"]).await, vec![SubackCode::Granted(QoS::AtLeastOnce)]);
    let (mut publisher, code) = connect(&tb, "pub", None, None).await;
    assert_eq!(code, 0);
    let (mut slow, code) = connect(&tb, "slow-sub", None, None).await;
    assert_eq!(code, 0);

    let started = Instant::now();
    let slow_check = tokio::spawn(async move {
        let codes = subscribe(&mut slow, 1, &["slow"]).await;
        (codes, started.elapsed())
    });
    for i in 0..20u16 {
        let t = Instant::now();
        publish(&mut publisher, i + 1, "t", b"tick").await;
        match sub.recv().await {
            Some(Packet::Publish(p)) => sub.send(&Packet::Puback(Ack::new(p.packet_id))).await,
            other => panic!("expected a PUBLISH, got {other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(1), "a round trip took {:?} during a slow topic check", t.elapsed());
    }
    let (codes, elapsed) = slow_check.await.expect("slow subscribe");
    assert_eq!(codes, vec![SubackCode::Failure(ReasonCode::UNSPECIFIED_ERROR)], "a timed-out topic check refuses");
    assert!(elapsed < Duration::from_millis(2500), "the SUBACK waited {elapsed:?}, not plugin-timeout");
    assert!(tb.broker.plugin_failures() >= 1);
    tb.broker.shutdown().await;
}

/// The CONNACK codes of `n` clients (`{prefix}0`..) that connect at once,
/// in order; each must answer within the suite's event timeout.
async fn codes_of_concurrent(tb: &std::sync::Arc<TestBroker>, prefix: &str, n: usize) -> Vec<u8> {
    let clients: Vec<_> = (0..n)
        .map(|i| {
            let (tb, user) = (tb.clone(), format!("{prefix}{i}"));
            tokio::spawn(async move { code(&tb, &user).await })
        })
        .collect();
    let mut codes = Vec::new();
    for c in clients {
        let answer = tokio::time::timeout(EVENT_TIMEOUT, c).await.expect("an answer, not a hang");
        codes.push(answer.expect("client"));
    }
    codes
}

#[tokio::test]
async fn an_unknown_plugin_name_is_a_start_up_error_listing_the_names() {
    let dir = PluginDir::with(&["moth_auth_allowlist"]);
    let e = build_error(&format!("{}auth:\n  plugins: [auth_anonymous, auth_ldap]\n", dir.yaml()));
    assert!(e.contains("auth.plugins: unknown plugin `auth_ldap`"), "{e}");
    assert!(e.contains("auth_anonymous") && e.contains("topic_acl") && e.contains("allowlist"), "{e}");
    let e = build_error(&format!("{}topic-check:\n  enabled: true\n  plugins: [nope]\n", dir.yaml()));
    assert!(e.contains("topic-check.plugins: unknown plugin `nope`"), "{e}");
}

#[tokio::test]
async fn bad_plugin_options_are_a_start_up_error() {
    let dir = PluginDir::with(&["moth_auth_allowlist"]);
    let e = build_error(&format!(
        "{}auth:\n  plugins: [allowlist]\nplugins-config:\n  allowlist: {{users: {{alice: {{}}}}}}\n",
        dir.yaml()
    ));
    assert!(e.contains("plugin `allowlist` cannot start") && e.contains("password"), "{e}");
}

#[tokio::test]
async fn a_library_built_against_an_incompatible_api_is_refused_with_a_short_message() {
    let dir = PluginDir::with(&["from_the_future", "scripted_a"]);
    let e = build_error(&format!("{}auth:\n  plugins: [from_the_future]\n", dir.yaml()));
    assert!(e.contains("libfrom_the_future.so"), "names the file: {e}");
    assert!(e.contains("2.0.0") && e.contains("1.0.0"), "names both versions: {e}");
    assert!(e.len() < 600, "short, not abi_stable's whole report ({} bytes): {e}", e.len());
    // The broker starts without it when no chain names it.
    let tb = TestBroker::start(&format!("{}auth:\n  plugins: [scripted_a]\n  default: allow\n", dir.yaml())).await;
    assert_eq!(code(&tb, "anyone").await, 0);
    let listing = tb.broker.plugins();
    assert_eq!(listing.failures.len(), 1, "{:?}", listing.failures);
    assert!(listing.plugins.iter().all(|p| p.name != "from_the_future"));
    tb.broker.shutdown().await;
}

#[tokio::test]
async fn a_library_whose_layout_differs_is_refused_with_a_summary_of_abi_stables_report() {
    // Its root module claims 1.0.0, so only abi_stable's layout check (a
    // report of ~100 KB) catches it.
    let dir = PluginDir::with(&["layout_mismatch"]);
    let e = build_error(&format!("{}auth:\n  plugins: [layout_mismatch]\n", dir.yaml()));
    assert!(e.contains("liblayout_mismatch.so: built against an incompatible plugin-api"), "{e}");
    assert!(e.contains("incompatible package versions (expected 1.4.0, found 2.0.0)"), "{e}");
    assert!(e.len() < 800, "short, not abi_stable's whole report ({} bytes): {e}", e.len());
}

#[tokio::test]
async fn a_library_of_another_namespace_is_skipped() {
    let dir = PluginDir::with(&["foreign", "moth_auth_allowlist"]);
    let yaml = format!(
        "{}listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:0\nauth:\n  plugins: [foreign]\n",
        dir.yaml()
    );
    let e = build_error(&yaml);
    assert!(e.contains("unknown plugin `foreign`"), "{e}");
    // A broker of that namespace registers it (and not moth's allowlist).
    let broker = Broker::with_namespace(Config::from_yaml_str(&yaml).unwrap(), "someone.else.plugins").expect("builds");
    broker.start().await.expect("starts");
    let tb = TestBroker { addr: broker.local_addrs()[0].1, broker };
    assert_eq!(code(&tb, "anyone").await, 0, "foreign allows everyone");
    assert!(tb.broker.plugins().plugins.iter().all(|p| p.name != "allowlist"));
    tb.broker.shutdown().await;
}

#[tokio::test]
async fn a_plugin_built_against_the_frozen_1_0_interface_loads_and_works() {
    let dir = PluginDir::with(&["frozen_v1_0"]);
    let tb = TestBroker::start(&format!("{}auth:\n  plugins: [frozen_v1_0]\n", dir.yaml())).await;
    assert_eq!(code(&tb, "v10").await, 0);
    assert_eq!(code(&tb, "someone").await, 5);
    let listing = tb.broker.plugins();
    let p = listing.plugins.iter().find(|p| p.name == "frozen_v1_0").expect("registered");
    assert_eq!((p.api_version.major, p.api_version.minor), (1, 0));
    let (major, minor) = moth_plugin_api_version();
    assert!(major == 1 && minor > 0, "this proves something only while the broker's 1.x is newer than 1.0");
    tb.broker.shutdown().await;
}

fn moth_plugin_api_version() -> (u16, u16) {
    let listing = Broker::new(Config::from_yaml_str("{}").unwrap()).unwrap().plugins();
    let builtin = listing.plugins.iter().find(|p| p.name == "auth_anonymous").unwrap();
    (builtin.api_version.major, builtin.api_version.minor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_plugins_and_options_and_keeps_connections() {
    let dir = PluginDir::with(&[]);
    dir.add("scripted_a", Some("libswap.so"));
    let yaml = |auth: &str, opts: &str| {
        format!("{}auth:\n  plugins: [{auth}]\nplugins-config:\n  {auth}: {opts}\n", dir.yaml())
    };
    let tb = TestBroker::start(&yaml("scripted_a", "{auth: {u: deny}, auth-default: allow}")).await;
    assert_eq!(code(&tb, "u").await, 5);
    let (mut kept, c) = connect(&tb, "kept", Some("kept"), Some("pw")).await;
    assert_eq!(c, 0);
    assert_eq!(subscribe(&mut kept, 1, &["k"]).await, vec![SubackCode::Granted(QoS::AtLeastOnce)]);

    // New options for the same library.
    let config = Config::from_yaml_str(&format!(
        "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:0\n{}",
        yaml("scripted_a", "{auth: {u: allow, kept: deny}}")
    ))
    .unwrap();
    tb.broker.reload(&config).expect("reload");
    assert_eq!(code(&tb, "u").await, 0, "new options in force");

    // Replace the library file with another plugin and name it.
    dir.add("scripted_b", Some("libswap.so"));
    let config = Config::from_yaml_str(&yaml("scripted_b", "{auth: {u: bad}, auth-default: allow}")).unwrap();
    tb.broker.reload(&config).expect("reload with the new library");
    assert_eq!(code(&tb, "u").await, 4, "the new library answers");
    assert!(tb.broker.plugins().plugins.iter().all(|p| p.name != "scripted_a"), "the old library is gone");

    // A failing reload keeps the chain in force.
    let bad = Config::from_yaml_str(&yaml("scripted_zzz", "{}")).unwrap();
    let e = tb.broker.reload(&bad).expect_err("unknown plugin").to_string();
    assert!(e.contains("scripted_zzz"), "{e}");
    assert_eq!(code(&tb, "u").await, 4, "still the previous chain");

    // The connection opened before the reloads still works (its own PUBLISH comes back).
    publish(&mut kept, 2, "k", b"still here").await;
    match kept.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"still here"),
        other => panic!("expected the message back, got {other:?}"),
    }
    tb.broker.shutdown().await;
}

#[tokio::test]
async fn the_template_builds_standalone_and_loads() {
    let dir = PluginDir::with(&["my_auth_plugin"]);
    let tb = TestBroker::start(&format!(
        "{}auth:\n  plugins: [my_auth]\n  allow-anonymous: false\nplugins-config:\n  my_auth: {{users: {{alice: secret}}}}\n",
        dir.yaml()
    ))
    .await;
    assert_eq!(connect(&tb, "t1", Some("alice"), Some("secret")).await.1, 0);
    assert_eq!(
        connect(&tb, "t2", Some("alice"), Some("wrong")).await.1,
        ConnectReturnCode::BadUsernameOrPassword as u8
    );
    assert_eq!(connect(&tb, "t3", Some("bob"), Some("x")).await.1, 4, "ignored, then the default refuses the user");
    tb.broker.shutdown().await;
}

/// `wonderland`, argon2id with cheap parameters (m=256 KiB, t=1), as a test fixture should be.
const ALICE_ARGON2ID: &str =
    "$argon2id$v=19$m=256,t=1,p=1$bW90aC10ZXN0LXNhbHQtMQ$PXoWP4feW+IYpYdgFWgrcrDbFFZvjUUbIAqz2JdVmso";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_file_reads_argon2id_and_sha_crypt_and_skips_broken_lines() {
    let dir = PluginDir::with(&[]);
    let passwd = dir.path.join("passwd");
    std::fs::write(
        &passwd,
        format!(
            "# moth users\nalice:{ALICE_ARGON2ID}\nbroken:$2b$10$notsupported\n\
             test:$6$l4zQEHEcowc1Pnv4$HHrh8xnsZoLItQ8BmpFHM4r6q5UqK3DnXp2GaTm5zp5buQ7NheY3Xt9f6godVKbEtA.hOC7IEDwnok3pbAOip.\n"
        ),
    )
    .unwrap();
    // A broken line is a warning at load, not a start-up error.
    let tb = TestBroker::start(&format!(
        "auth:\n  allow-anonymous: false\n  password-file: '{}'\n  plugins: [auth.file, auth_anonymous]\n",
        passwd.display()
    ))
    .await;
    assert_eq!(connect(&tb, "f1", Some("alice"), Some("wonderland")).await.1, 0);
    assert_eq!(connect(&tb, "f2", Some("alice"), Some("builder")).await.1, 4, "wrong password");
    assert_eq!(connect(&tb, "f3", Some("carol"), Some("x")).await.1, 4, "not in the file: like a wrong password");
    assert_eq!(connect(&tb, "f4", Some("test"), Some("test")).await.1, 0, "hbmqtt's sample");
    assert_eq!(connect(&tb, "f5", Some("broken"), Some("notsupported")).await.1, 4, "broken line: cannot log in");
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_checks_ask_only_plugins_that_want_them() {
    let dir = PluginDir::with(&["scripted_a"]);
    let tb = TestBroker::start(&format!(
        "{}auth:\n  plugins: [scripted_a]\ntopic-check:\n  enabled: true\n  plugins: [scripted_a]\n  default: allow\n\
         plugins-config:\n  scripted_a: {{auth-default: allow, receive: {{rx/secret: deny}}}}\n",
        dir.yaml()
    ))
    .await;
    let (mut sub, code) = connect(&tb, "rx-sub", Some("sub"), Some("pw")).await;
    assert_eq!(code, 0);
    assert_eq!(subscribe(&mut sub, 1, &["rx/#"]).await, vec![SubackCode::Granted(QoS::AtLeastOnce)]);
    let (mut publisher, code) = connect(&tb, "rx-pub", Some("pub"), Some("pw")).await;
    assert_eq!(code, 0);
    publish(&mut publisher, 1, "rx/secret", b"hidden").await;
    publish(&mut publisher, 2, "rx/ok", b"shown").await;
    match sub.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(&*p.topic, "rx/ok", "rx/secret must not be delivered"),
        other => panic!("expected a PUBLISH, got {other:?}"),
    }
    tb.broker.shutdown().await;
}
