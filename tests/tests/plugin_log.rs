//! A plugin's log lines reach the broker's log, with the plugin's name.
//!
//! Alone in its own test binary on purpose: it captures logs with a
//! thread-scoped `tracing` subscriber, and `tracing` caches per call site
//! whether anyone listens, a cache that tests running beside it on other
//! threads (with no subscriber) can leave saying "nobody", so the line was
//! sometimes not captured when this test lived in `plugins.rs`.

use moth::{Broker, Config};
use moth_tests::plugins::PluginDir;

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn plugin_log_lines_reach_the_broker_log_with_the_plugin_name() {
    let dir = PluginDir::with(&["scripted_a"]);
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let config = Config::from_yaml_str(&format!(
        "{}auth:\n  plugins: [scripted_a]\nplugins-config:\n  scripted_a: {{auth-default: allow}}\n",
        dir.yaml()
    ))
    .unwrap();
    // The plugin's constructor runs on this thread, inside Broker::new.
    let broker = tracing::subscriber::with_default(subscriber, || Broker::new(config)).expect("builds");
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log.lines().find(|l| l.contains("constructed with options")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("plugin=\"scripted_a\"") && line.contains("auth-default"), "{line}");
    drop(broker);
}
