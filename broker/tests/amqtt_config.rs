//! Configurations written for amqtt and hbmqtt get the admission rules they
//! were written for, or a refusal to start: the real `moth` program on
//! configuration files of amqtt's and hbmqtt's shapes (fixtures of our own,
//! with the same keys and structure), password files made by `moth passwd`,
//! and `mosquitto_pub` (installed by scripts/test.sh) as the client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};

mod common;

use common::{Running, TempDir, describe, free_port, moth, run, text, wait_until_listening};

/// A password file with alice (password `wonderland`), written by `moth passwd`.
fn passwd(dir: &TempDir) -> PathBuf {
    let path = dir.0.join("passwd");
    let out = run(&["passwd", "-c", "-b", path.to_str().unwrap(), "alice", "wonderland"]);
    assert!(out.status.success(), "moth passwd: {}", describe(&out));
    path
}

/// `moth -c FILE` on a free port written into the file's `PORT` placeholder.
struct Broker {
    proc: Running,
    addr: SocketAddr,
}

fn start(dir: &TempDir, yaml: &str) -> Broker {
    let port = free_port();
    let path = dir.file("broker.yaml", &yaml.replace("PORT", &port.to_string()));
    let checked = run(&["--check", "-c", path.to_str().unwrap()]);
    assert!(checked.status.success(), "moth --check should accept it:\n{}", describe(&checked));
    let mut cmd = moth();
    cmd.arg("-c").arg(&path);
    let mut proc = Running::spawn(cmd);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    drop(wait_until_listening(&mut proc, addr));
    Broker { proc, addr }
}

/// The CONNACK code `mosquitto_pub` gets (it prints it with `-d`).
fn connack(b: &Broker, client_id: &str, user: Option<(&str, &str)>) -> u8 {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-d", "-h", "127.0.0.1", "-p", &b.addr.port().to_string(), "-i", client_id, "-t", "amqtt/t", "-m", "m"]);
    if let Some((u, p)) = user {
        cmd.args(["-u", u, "-P", p]);
    }
    let out = Running::spawn(cmd).wait("mosquitto_pub");
    let stdout = text(&out.stdout);
    let code = stdout
        .split("received CONNACK (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.trim().parse().ok());
    let code = code.unwrap_or_else(|| panic!("mosquitto_pub printed no CONNACK:\n{}", describe(&out)));
    assert_eq!(out.status.success(), code == 0, "exit status agrees with the CONNACK:\n{}", describe(&out));
    code
}

impl Broker {
    /// Stops the broker and returns its log.
    fn stop(self) -> String {
        common::send_signal(self.proc.pid, "TERM");
        let out = self.proc.wait("after SIGTERM");
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }
}

fn listeners() -> &'static str {
    "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:PORT\n    max_connections: 0\n"
}

/// The configuration that used to start an open broker: amqtt admits only
/// the users in the file, and so does moth now.
#[test]
fn an_amqtt_file_plugin_alone_admits_only_the_users_in_the_file() {
    let dir = TempDir::new("amqtt-file");
    let file = passwd(&dir);
    let yaml = format!(
        "{}plugins:\n  amqtt.plugins.authentication.FileAuthPlugin:\n    password_file: {}\n",
        listeners(),
        file.display()
    );
    let b = start(&dir, &yaml);
    assert_eq!(connack(&b, "anon", None), 5, "anonymous: not authorised");
    assert_eq!(connack(&b, "wrong", Some(("alice", "nope"))), 4, "wrong password");
    assert_eq!(connack(&b, "stranger", Some(("mallory", "wonderland"))), 4, "a user not in the file");
    assert_eq!(connack(&b, "alice", Some(("alice", "wonderland"))), 0, "the user in the file");
    let log = b.stop();
    assert!(!log.contains("wonderland"), "no password in the log:\n{log}");
}

#[test]
fn check_prints_the_chains_an_amqtt_map_runs() {
    let dir = TempDir::new("amqtt-check");
    let file = passwd(&dir);
    let path = dir.file(
        "broker.yaml",
        &format!(
            "{}plugins:\n  amqtt.plugins.authentication.FileAuthPlugin: {{password_file: {}}}\n  \
             amqtt.plugins.topic_checking.TopicTabooPlugin:\n",
            listeners().replace("PORT", "0"),
            file.display()
        ),
    );
    let out = run(&["--check", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("auth: auth_file; topic-check: topic_taboo"), "{stdout}");
}

/// amqtt's own default broker file (loggers, anonymous allowed, $SYS every
/// 20 s), in its map form and its list form.
#[test]
fn amqtts_default_file_runs_in_both_forms() {
    let map = "plugins:\n  amqtt.plugins.logging_amqtt.EventLoggerPlugin:\n  \
        amqtt.plugins.logging_amqtt.PacketLoggerPlugin:\n  \
        amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n  \
        amqtt.plugins.sys.broker.BrokerSysPlugin:\n    sys_interval: 20\n";
    let list = "plugins:\n  - amqtt.plugins.logging_amqtt.EventLoggerPlugin\n  \
        - amqtt.plugins.authentication.AnonymousAuthPlugin: {allow_anonymous: true}\n  \
        - amqtt.plugins.sys.broker.BrokerSysPlugin: {sys_interval: 20}\n";
    for plugins in [map, list] {
        let dir = TempDir::new("amqtt-default");
        let b = start(&dir, &format!("{}timeout_disconnect_delay: 0\n{plugins}", listeners()));
        assert_eq!(connack(&b, "anon", None), 0);
        assert_eq!(connack(&b, "named", Some(("anyone", "x"))), 0, "allow_anonymous: true admits everyone");
        b.stop();
    }
}

/// hbmqtt's plugin list with anonymous access on: hbmqtt's file plugin
/// answers False for a user name it does not know, and any False refuses.
#[test]
fn hbmqtts_chain_refuses_user_names_the_file_does_not_know() {
    let dir = TempDir::new("hbmqtt-chain");
    let file = passwd(&dir);
    let yaml = format!(
        "{}auth:\n  plugins: [auth_file, auth_anonymous]\n  allow-anonymous: true\n  password-file: {}\n",
        listeners(),
        file.display()
    );
    let b = start(&dir, &yaml);
    assert_eq!(connack(&b, "anon", None), 0, "no user name: auth_anonymous admits");
    assert_eq!(connack(&b, "nosuch", Some(("nosuchuser", "anything"))), 4, "unknown user: refused");
    assert_eq!(connack(&b, "wrong", Some(("alice", "nope"))), 4);
    assert_eq!(connack(&b, "alice", Some(("alice", "wonderland"))), 0);
    b.stop();

    // moth's own rule, where a moth-only key asks for it: unknown users are
    // left to the rest of the chain, here auth_anonymous.
    let b = start(&dir, &format!("{yaml}plugins-config:\n  auth_file: {{unknown-users: ignore}}\n"));
    assert_eq!(connack(&b, "nosuch", Some(("nosuchuser", "anything"))), 0, "unknown-users: ignore");
    assert_eq!(connack(&b, "wrong", Some(("alice", "nope"))), 4, "a listed user is still checked");
    b.stop();
}

/// hbmqtt's stock file names no `auth.plugins` and no password file:
/// hbmqtt then asks its file plugin too, which refuses every user name.
#[test]
fn hbmqtts_stock_file_refuses_user_names_without_a_password_file() {
    let dir = TempDir::new("hbmqtt-stock");
    let b = start(
        &dir,
        &format!(
            "{}sys_interval: 20\nauth:\n  allow-anonymous: true\ntopic-check:\n  enabled: False\n\
             plugins:\n  - auth_file\n  - auth_anonymous\n",
            listeners()
        ),
    );
    assert_eq!(connack(&b, "anon", None), 0);
    assert_eq!(connack(&b, "named", Some(("alice", "x"))), 4);
    let log = b.stop();
    assert!(log.contains("no `auth.password-file`, so auth_file knows no user"), "the log says why:\n{log}");
}

/// What moth cannot honour and may decide who gets in stops the start: the
/// check exits 2 with one line naming it, and `moth -c` never listens.
#[test]
fn what_moth_cannot_honour_refuses_to_start() {
    let dir = TempDir::new("amqtt-closed");
    let file = passwd(&dir);
    let cases = [
        ("plugins:\n  amqtt.contrib.jwt.UserAuthJwtPlugin: {secret_key: s}\n".to_string(), "amqtt.contrib.jwt"),
        ("plugins:\n  mycompany.LdapAuthPlugin:\n".to_string(), "unknown plugin class `mycompany.LdapAuthPlugin`"),
        (
            format!(
                "plugins:\n  amqtt.plugins.authentication.FileAuthPlugin: {{password_file: {}, hash: md5}}\n",
                file.display()
            ),
            "unknown option",
        ),
        (
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\nauth:\n  password-file: p\n".to_string(),
            "not read next to amqtt's `plugins:` map",
        ),
        (
            format!(
                "auth:\n  plugins: [auth_file]\n  password-file: {}\nplugins-config:\n  auth_file: {{unknown-user: ignore}}\n",
                file.display()
            ),
            "unknown field `unknown-user`",
        ),
    ];
    for (body, expected) in cases {
        let port = free_port();
        let path = dir.file("closed.yaml", &format!("{}{body}", listeners()).replace("PORT", &port.to_string()));
        for args in [vec!["--check", "-c", path.to_str().unwrap()], vec!["-c", path.to_str().unwrap()]] {
            let out: Output = run(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?} on\n{body}\n{}", describe(&out));
            let stderr = text(&out.stderr);
            assert!(stderr.contains(expected), "{args:?}: expected `{expected}` in:\n{stderr}");
        }
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing listens on {port}");
    }
}
