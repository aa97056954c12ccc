//! The shipped `auth_http` plugin library against a real HTTP/1.1 server
//! (a small one in this file, on loopback, which records every request and
//! answers by rules each test gives): status, JSON and text answers, JSON
//! bodies and form fields, GET and POST, the superuser request, the cache,
//! and a service that hangs, fails or is not there at all.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use moth::{Broker, Config, QoS};
use moth_protocol::packet::{Connack, Packet, Protocol, Publish, SubackCode, Subscribe, SubscribeFilter};
use moth_tests::plugins::PluginDir;
use moth_tests::{RawClient, TestBroker, connect_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the service received it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    /// With its query string.
    target: String,
    content_type: String,
    body: String,
}

impl Request {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// A field of the JSON body, the form body or the query.
    fn field(&self, name: &str) -> Option<String> {
        if self.content_type.starts_with("application/json") {
            let v: serde_json::Value = serde_json::from_str(&self.body).ok()?;
            return match v.get(name)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            };
        }
        let form = if self.body.is_empty() { self.target.split_once('?')?.1 } else { self.body.as_str() };
        form.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| decode(v))
        })
    }
}

fn decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("percent escape"));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8")
}

/// What the service answers: status, content type, body; `None` hangs.
type Reply = Option<(u16, &'static str, String)>;

struct Service {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Service {
    async fn start(rules: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the service");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (log, rules) = (requests.clone(), Arc::new(rules));
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, log.clone(), rules.clone()));
            }
        });
        Service { port, requests, task }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("log").clone()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One keep-alive connection: requests in turn until the client closes.
async fn serve(
    mut socket: TcpStream,
    log: Arc<Mutex<Vec<Request>>>,
    rules: Arc<dyn Fn(&Request) -> Reply + Send + Sync>,
) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.lines();
        let mut first = lines.next().unwrap_or("").split_whitespace();
        let (method, target) = (first.next().unwrap_or("").to_string(), first.next().unwrap_or("").to_string());
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
                .unwrap_or("")
                .to_string()
        };
        let length: usize = header("content-length").parse().unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
        buf.drain(..head_end + length);
        let request = Request { method, target, content_type: header("content-type"), body };
        let reply = rules(&request);
        log.lock().expect("log").push(request);
        let Some((status, kind, body)) = reply else {
            // Hangs: holds the connection, answers nothing.
            std::future::pending::<()>().await;
            return;
        };
        let answer =
            format!("HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        if socket.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn status(code: u16) -> Reply {
    Some((code, "text/plain", String::new()))
}

fn json_ok(ok: &str) -> Reply {
    Some((200, "application/json", format!("{{\"ok\": {ok}}}")))
}

/// A broker whose chains are `auth_http` with `options`: the auth chain,
/// and the topic chain when the options name a `topic_uri`.
async fn broker(dir: &PluginDir, service: &Service, options: &str) -> TestBroker {
    let topics =
        if options.contains("topic_uri") { "topic-check:\n  enabled: true\n  plugins: [auth_http]\n" } else { "" };
    TestBroker::start(&format!(
        "{}auth:\n  plugins: [auth_http]\n  allow-anonymous: false\n{topics}\
         plugins-config:\n  auth_http: {{host: 127.0.0.1, port: {}, {options}}}\n",
        dir.yaml(),
        service.port
    ))
    .await
}

async fn login(tb: &TestBroker, client_id: &str, user: &str, password: &str) -> (RawClient, Connack) {
    let mut c = RawClient::connect(tb.addr).await;
    let mut p = connect_packet(client_id, true);
    p.username = Some(user.into());
    p.password = Some(Bytes::from(password.to_string()));
    c.send(&Packet::Connect(Box::new(p))).await;
    match c.recv().await {
        Some(Packet::Connack(a)) => (c, *a),
        other => panic!("{user}: expected CONNACK, got {other:?}"),
    }
}

async fn code(tb: &TestBroker, user: &str, password: &str) -> u8 {
    login(tb, &format!("c-{user}"), user, password).await.1.code.code(Protocol::V311)
}

async fn subscribe(c: &mut RawClient, filter: &str) -> SubackCode {
    let f = vec![SubscribeFilter::new(filter.to_string(), QoS::AtLeastOnce)];
    c.send(&Packet::Subscribe(Subscribe::new(1, f))).await;
    match c.recv().await {
        Some(Packet::Suback(s)) => s.codes[0],
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_to_post_json_decide_logins_and_topics() {
    let dir = PluginDir::with(&["moth_auth_http"]);
    let service = Service::start(|r| match r.path() {
        "/user" => match (r.field("username").as_deref(), r.field("password").as_deref()) {
            (Some("alice"), Some("wonderland")) => status(200),
            (Some("bob"), _) => status(503),
            _ => status(403),
        },
        "/acl" => match (r.field("acc").as_deref(), r.field("topic").as_deref()) {
            (Some("4"), Some(t)) if t.starts_with("alice/") => status(200),
            (Some("2"), Some("alice/out")) => status(204),
            _ => status(401),
        },
        _ => status(404),
    })
    .await;
    let tb = broker(
        &dir,
        &service,
        "user_uri: /user, topic_uri: /acl, request_method: post, response_mode: status, cache-ttl: 0",
    )
    .await;
    assert_eq!(code(&tb, "alice", "wonderland").await, 0);
    assert_eq!(code(&tb, "alice", "looking-glass").await, 4, "4xx: bad user name or password");
    assert_eq!(code(&tb, "bob", "x").await, 4, "5xx: no opinion, then the chain's default refuses the user");
    let first = &service.requests()[0];
    assert_eq!((first.method.as_str(), first.path()), ("POST", "/user"));
    assert!(first.content_type.starts_with("application/json"), "{first:?}");
    assert_eq!(first.field("client_id").as_deref(), Some("c-alice"));

    let (mut c, _) = login(&tb, "alice-1", "alice", "wonderland").await;
    assert_eq!(subscribe(&mut c, "alice/#").await, SubackCode::Granted(QoS::AtLeastOnce));
    assert!(matches!(subscribe(&mut c, "bob/#").await, SubackCode::Failure(_)));
    c.send(&Packet::Publish(Publish::new("alice/out", Bytes::from_static(b"hi"), QoS::AtLeastOnce, false, 7))).await;
    match c.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(&*p.topic, "alice/out", "allowed, and back through alice/#"),
        Some(Packet::Puback(_)) => {}
        other => panic!("expected the message or its PUBACK, got {other:?}"),
    }
    let accs: Vec<(String, String)> = service
        .requests()
        .iter()
        .filter(|r| r.path() == "/acl")
        .map(|r| (r.field("acc").unwrap_or_default(), r.field("topic").unwrap_or_default()))
        .collect();
    assert!(
        accs.contains(&("4".into(), "alice/#".into())) && accs.contains(&("2".into(), "alice/out".into())),
        "{accs:?}"
    );
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_text_answers_and_form_fields_in_a_get_query() {
    let dir = PluginDir::with(&["moth_auth_http"]);
    let service = Service::start(|r| match (r.path(), r.field("username").as_deref()) {
        ("/json", Some("alice")) if r.field("password").as_deref() == Some("a b&c") => json_ok("true"),
        ("/json", Some("carol")) => json_ok("null"),
        ("/json", _) => json_ok("false"),
        ("/text", Some("alice")) => Some((200, "text/plain", "OK".into())),
        ("/text", _) => Some((200, "text/plain", "error".into())),
        _ => status(404),
    })
    .await;
    let tb = broker(&dir, &service, "user_uri: /json, params_mode: form").await;
    assert_eq!(code(&tb, "alice", "a b&c").await, 0, "form fields, percent-encoded in the query");
    assert_eq!(code(&tb, "dave", "x").await, 4);
    assert_eq!(code(&tb, "carol", "x").await, 4, "null: no opinion, and nothing else admits");
    let r = &service.requests()[0];
    assert_eq!(r.method, "GET");
    assert!(r.target.starts_with("/json?") && r.body.is_empty(), "{r:?}");
    tb.broker.shutdown().await;

    let tb = broker(&dir, &service, "user_uri: /text, response_mode: text, request_method: put").await;
    assert_eq!(code(&tb, "alice", "x").await, 0);
    assert_eq!(code(&tb, "dave", "x").await, 4);
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_answers_are_cached_and_a_superuser_is_not_asked_about_topics() {
    let dir = PluginDir::with(&["moth_auth_http"]);
    let service = Service::start(|r| match (r.path(), r.field("username").as_deref()) {
        ("/user", _) => json_ok("true"),
        ("/su", Some("root")) => json_ok("true"),
        ("/su", _) => json_ok("false"),
        ("/acl", _) => json_ok(if r.field("topic").as_deref() == Some("open") { "true" } else { "false" }),
        _ => status(404),
    })
    .await;
    let tb = broker(&dir, &service, "user_uri: /user, topic_uri: /acl, superuser_uri: /su, cache-ttl: 60").await;
    let (mut c, _) = login(&tb, "u1", "user", "pw").await;
    for _ in 0..3 {
        assert_eq!(subscribe(&mut c, "open").await, SubackCode::Granted(QoS::AtLeastOnce));
    }
    let acl = |s: &Service| s.requests().iter().filter(|r| r.path() == "/acl").count();
    assert_eq!(acl(&service), 1, "asked once, then answered from the cache");
    let (mut root, _) = login(&tb, "r1", "root", "pw").await;
    assert_eq!(subscribe(&mut root, "closed").await, SubackCode::Granted(QoS::AtLeastOnce), "superuser");
    assert_eq!(acl(&service), 1, "a superuser's topics are not asked");
    tb.broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_failing_or_missing_service_refuses_and_stalls_no_one_else() {
    let dir = PluginDir::with(&["moth_auth_http"]);
    let service = Service::start(|r| match r.field("username").as_deref() {
        Some("slow") => None,
        Some("broken") => Some((200, "application/json", "{not json".into())),
        _ => json_ok("true"),
    })
    .await;
    let tb = broker(&dir, &service, "user_uri: /user, timeout: 1").await;
    let slow = tokio::spawn({
        let addr = tb.addr;
        async move {
            let mut c = RawClient::connect(addr).await;
            let mut p = connect_packet("slow", true);
            p.username = Some("slow".into());
            p.password = Some(Bytes::from_static(b"x"));
            c.send(&Packet::Connect(Box::new(p))).await;
            c.recv().await
        }
    });
    // While the service keeps `slow` waiting, others get in.
    assert_eq!(code(&tb, "alice", "x").await, 0);
    match slow.await.expect("slow client") {
        Some(Packet::Connack(a)) => assert_eq!(a.code.code(Protocol::V311), 5, "timeout: an error, refused"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert_eq!(code(&tb, "broken", "x").await, 4, "an answer that is not JSON refuses");
    tb.broker.shutdown().await;

    // Nothing listens there: an error, so a refusal.
    let port = service.port;
    drop(service);
    let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let free = gone.local_addr().expect("addr").port();
    drop(gone);
    let tb = TestBroker::start(&format!(
        "{}auth:\n  plugins: [auth_http]\n  allow-anonymous: false\n\
         plugins-config:\n  auth_http: {{host: 127.0.0.1, port: {free}, user_uri: /user, timeout: 1}}\n",
        dir.yaml()
    ))
    .await;
    assert_eq!(code(&tb, "alice", "x").await, 5, "no service ({port} closed): refused, not admitted");
    tb.broker.shutdown().await;
}

#[tokio::test]
async fn options_that_cannot_work_stop_the_start_with_the_option_named() {
    let dir = PluginDir::with(&["moth_auth_http"]);
    for (options, needle) in [
        ("host: h, port: 1", "nothing to ask"),
        ("host: h, port: 1, user_uri: /u, password_hash: md5", "unknown field `password_hash`"),
        ("host: h, port: 1, user_uri: /u, ca-file: /nonexistent/ca.pem", "ca-file: /nonexistent/ca.pem"),
    ] {
        let yaml =
            format!("{}auth:\n  plugins: [auth_http]\nplugins-config:\n  auth_http: {{{options}}}\n", dir.yaml());
        let config = Config::from_yaml_str(&yaml).expect("valid YAML");
        match Broker::new(config) {
            Ok(_) => panic!("{options}: expected a refusal"),
            Err(e) => assert!(e.to_string().contains(needle), "{options}: {e}"),
        }
    }
    // Only topic checks: the plugin cannot sit in the auth chain.
    let yaml = format!(
        "{}auth:\n  plugins: [auth_http]\nplugins-config:\n  auth_http: {{host: h, port: 1, topic_uri: /t}}\n",
        dir.yaml()
    );
    let e = Broker::new(Config::from_yaml_str(&yaml).expect("valid YAML")).err().expect("refused").to_string();
    assert!(e.contains("does not authenticate"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amqtt_file_naming_its_http_plugin_runs_it_as_auth_http() {
    let dir = PluginDir::with(&["moth_auth_http"]);
    let service = Service::start(|r| match (r.path(), r.field("username").as_deref(), r.field("topic").as_deref()) {
        ("/user", Some("alice"), _) if r.field("password").as_deref() == Some("wonderland") => status(200),
        ("/acl", Some("alice"), Some("sensors/1")) => status(200),
        _ => status(403),
    })
    .await;
    let tb = TestBroker::start_yaml(&format!(
        "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:0\n{}plugins:\n  \
         amqtt.contrib.http.HttpAuthTopicPlugin:\n    host: 127.0.0.1\n    port: {}\n    user_uri: /user\n    \
         acl_uri: /acl\n    request_method: post\n    response_mode: status\n",
        dir.yaml(),
        service.port
    ))
    .await;
    assert_eq!(code(&tb, "alice", "wonderland").await, 0);
    assert_eq!(code(&tb, "alice", "wrong").await, 4);
    let (mut c, _) = login(&tb, "a2", "alice", "wonderland").await;
    assert_eq!(subscribe(&mut c, "sensors/1").await, SubackCode::Granted(QoS::AtLeastOnce));
    assert!(matches!(subscribe(&mut c, "sensors/2").await, SubackCode::Failure(_)), "topic checks are on, as in amqtt");
    tb.broker.shutdown().await;
}
