//! How one plugin is called: authentication and slow topic checks on the
//! blocking pool, bounded in time and concurrency; fast topic checks in place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moth_plugin_api::enhanced_auth::{self, AuthReply, AuthStep};
use moth_plugin_api::std_types::{RNone, RSome, RStr, RString};
use moth_plugin_api::{Capabilities, Decision, PluginBox, TopicAction, TopicRequest};
use tokio::sync::Semaphore;

use crate::lock::Locked;
use crate::plugin_host::input::{AuthInput, topic_request};

/// One plugin's answer: a decision, or an error (the plugin returned an
/// error, panicked, or timed out), which refuses.
pub(crate) type Answer = Result<Decision, String>;

/// Calls of one plugin allowed at once. A CPU-bound plugin gets at most one
/// per CPU: each argon2 check is pure CPU and tens of MiB of memory, so more
/// concurrent checks than cores add memory, never throughput.
fn concurrency_of(caps: Capabilities, configured: usize) -> usize {
    if caps.contains(Capabilities::CPU_BOUND_AUTHENTICATE) {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        configured.min(cpus).max(1)
    } else {
        configured
    }
}

/// One plugin in a chain.
pub(crate) struct ChainPlugin {
    pub name: String,
    pub(crate) object: PluginBox,
    pub(crate) caps: Capabilities,
    pub(crate) permits: Arc<Semaphore>,
    /// Errors, panics and timeouts so far.
    failures: AtomicU64,
    /// When a call of this plugin last returned: callers queued for a
    /// permit keep waiting while calls keep completing (`plugin_call`).
    last_completion: Mutex<Option<Instant>>,
}

impl ChainPlugin {
    /// A constructed plugin, allowed `configured` calls at once
    /// (`plugin-concurrency`), or one per CPU if that is fewer and the plugin
    /// declares [`Capabilities::CPU_BOUND_AUTHENTICATE`].
    pub(crate) fn new(name: String, object: PluginBox, configured: usize) -> ChainPlugin {
        let caps = object.capabilities();
        ChainPlugin {
            name,
            caps,
            object,
            permits: Arc::new(Semaphore::new(concurrency_of(caps, configured))),
            failures: AtomicU64::new(0),
            last_completion: Mutex::new(None),
        }
    }

    /// Counts an error, panic or timeout of this plugin.
    pub(crate) fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Errors, panics and timeouts so far.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Records that a call of this plugin returned (or panicked) just now.
    pub(crate) fn call_completed(&self) {
        *self.last_completion.locked() = Some(Instant::now());
    }

    /// When a call of this plugin last returned; `None` before the first.
    pub(crate) fn last_completion(&self) -> Option<Instant> {
        *self.last_completion.locked()
    }
}

/// One authentication call: off the async threads, bounded in time and in
/// concurrency, unless the plugin declares `FAST_AUTHENTICATE`.
pub(crate) async fn call_authenticate(p: &Arc<ChainPlugin>, input: &Arc<AuthInput>, timeout: Duration) -> Answer {
    let input = input.clone();
    auth_call(p, timeout, move |plugin| {
        input.with_request(|r| plugin.object.authenticate(r)).into_result().map_err(|e| e.into_string())
    })
    .await
}

/// How every authentication-side call is made: in place for a plugin that
/// declares `FAST_AUTHENTICATE` (the built-in auth_anonymous), else on the
/// blocking pool under the plugin's bounds.
async fn auth_call<T: Send + 'static>(
    p: &Arc<ChainPlugin>,
    timeout: Duration,
    f: impl FnOnce(&ChainPlugin) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    if p.caps.contains(Capabilities::FAST_AUTHENTICATE) {
        return f(p);
    }
    on_blocking_pool(p, timeout, f).await
}

/// One step of an enhanced authentication exchange (plugin-api 1.4), called
/// like `authenticate`: in place for a `FAST_AUTHENTICATE` plugin, else on
/// the blocking pool under the same bounds. A plugin that does not know the
/// call (it declared the capability but answers `RNone`) and a reply that
/// cannot be read are errors.
pub(crate) async fn call_enhanced_auth(
    p: &Arc<ChainPlugin>,
    step: AuthStep,
    timeout: Duration,
) -> Result<AuthReply, String> {
    fn call(plugin: &ChainPlugin, step: &AuthStep) -> Result<AuthReply, String> {
        let input = step.to_json();
        match plugin.object.extension(RStr::from_str(enhanced_auth::EXTENSION), RStr::from_str(&input)) {
            RSome(answer) => AuthReply::from_json(answer.into_result().map_err(RString::into_string)?.as_str()),
            RNone => Err(format!("declares ENHANCED_AUTHENTICATE but does not answer {}", enhanced_auth::EXTENSION)),
        }
    }
    auth_call(p, timeout, move |plugin| call(plugin, &step)).await
}

/// One topic check. Plugins that declare themselves fast are called in
/// place. Any other is called on the blocking pool like `authenticate`,
/// while this worker thread hands its other tasks over (`block_in_place`),
/// so a slow or hung plugin holds up only the client being checked. Outside
/// a multi-threaded runtime (an embedding application's current-thread
/// runtime) the call is made in place.
pub(crate) fn call_check_topic(p: &Arc<ChainPlugin>, request: &TopicRequest<'_>, timeout: Duration) -> Answer {
    let in_place = || p.object.check_topic(request).into_result().map_err(|e| e.into_string());
    if p.caps.contains(Capabilities::FAST_TOPIC_CHECK) {
        return in_place();
    }
    let handle = match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => h,
        _ => return in_place(),
    };
    let owned = OwnedTopicRequest::from(request);
    let call = on_blocking_pool(p, timeout, move |plugin| {
        plugin.object.check_topic(&owned.request()).into_result().map_err(|e| e.into_string())
    });
    tokio::task::block_in_place(|| handle.block_on(call))
}

/// Runs `f` on the blocking pool under the plugin's concurrency permit.
///
/// `timeout` (plugin-timeout) bounds two things apart:
/// - the wait for a permit is bounded by *progress*, not by the clock: it
///   goes on as long as calls of this plugin keep completing, and gives up
///   when none has completed for `timeout` (counted from when this caller
///   started waiting, if later). In a reconnect storm, clients queued behind
///   others' slow password checks are served rather than refused, and a hung
///   plugin still refuses new clients after about `timeout`;
/// - the call itself, once it holds a permit, gets `timeout`.
///
/// The permit is released when the plugin returns, not when the caller gives
/// up waiting, so a hung backend cannot fill the pool.
async fn on_blocking_pool<T: Send + 'static>(
    p: &Arc<ChainPlugin>,
    timeout: Duration,
    f: impl FnOnce(&ChainPlugin) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let timed_out = || Err(format!("no answer within {} ms (plugin-timeout)", timeout.as_millis()));
    let waiting_since = Instant::now();
    let stalled_at = || p.last_completion().map_or(waiting_since, |t| t.max(waiting_since)) + timeout;
    let acquire = p.permits.clone().acquire_owned();
    tokio::pin!(acquire);
    let permit = loop {
        let deadline = stalled_at();
        tokio::select! {
            permit = &mut acquire => break permit.map_err(|_| "the plugin's call limit was closed".to_string())?,
            _ = tokio::time::sleep_until(deadline.into()) => {
                // Logged (with the plugin's name) and counted by the caller.
                if stalled_at() <= Instant::now() {
                    return timed_out();
                }
            }
        }
    };
    let plugin = p.clone();
    let call = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _completed = Completed(&plugin);
        f(&plugin)
    });
    match tokio::time::timeout(timeout, call).await {
        Ok(answer) => answer.map_err(|e| format!("the plugin call did not complete: {e}"))?,
        Err(_) => timed_out(),
    }
}

/// Records the end of a call when dropped, so that a panic counts as the
/// plugin having returned too (the queue behind it moves on).
struct Completed<'a>(&'a ChainPlugin);

impl Drop for Completed<'_> {
    fn drop(&mut self) {
        self.0.call_completed();
    }
}

/// A topic request owned, so that the call can run on another thread.
struct OwnedTopicRequest {
    client_id: String,
    username: Option<String>,
    listener: String,
    action: TopicAction,
    topic: String,
}

impl From<&TopicRequest<'_>> for OwnedTopicRequest {
    fn from(r: &TopicRequest<'_>) -> Self {
        OwnedTopicRequest {
            client_id: r.client_id().to_string(),
            username: r.username().map(str::to_string),
            listener: r.listener().to_string(),
            action: r.action,
            topic: r.topic().to_string(),
        }
    }
}

impl OwnedTopicRequest {
    fn request(&self) -> TopicRequest<'_> {
        topic_request(&self.client_id, self.username.as_deref(), &self.listener, self.action, &self.topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_bound_plugin_runs_at_most_one_call_per_cpu() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu_bound = Capabilities::AUTHENTICATE | Capabilities::CPU_BOUND_AUTHENTICATE;
        assert_eq!(concurrency_of(cpu_bound, 10_000), cpus);
        assert_eq!(concurrency_of(cpu_bound, 1), 1);
        assert_eq!(concurrency_of(cpu_bound, 0), 1, "never zero: a zero would refuse every login");
        assert_eq!(concurrency_of(Capabilities::AUTHENTICATE, 10_000), 10_000);
    }
}
