//! The embeddable broker: `Broker::new(config)`, `start().await`,
//! `shutdown().await`, as hbmqtt's `Broker` has them, plus what an embedding
//! application needs: the addresses actually bound (for port 0), and an
//! in-process handle to publish into the broker and subscribe to it.
//!
//! Sessions and retained messages belong to the `Broker` value, not to one
//! run of it: a broker that is shut down and started again keeps them, as it
//! will when they are persisted to disk.

pub(crate) mod reload;
mod restore;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::net::TcpListener;
use tracing::info;

use crate::access::{AccessControl, AccessError, PluginListing};
use crate::codec;
use crate::config::Config;
use crate::lock::Locked;
use crate::message::Message;
use crate::observability::metrics_http;
use crate::observability::sys;
use crate::packet::QoS;
use crate::routing::router::Router;
use crate::server::listener;
use crate::server::sweeper;
use crate::session::state::{Delivery, SessionLimits};
use crate::session::store::{SessionHandle, SessionStore};
use crate::session::subscription::Grant;
use crate::shared::Shared;
use crate::shutdown::Stopper;
use crate::stats::Stats;
use crate::topic;
use crate::transport::Transport;
use crate::transport::tls::TlsError;
use reload::ReloadReport;

/// Why a [`Broker`] could not be built, started, reloaded, published to or
/// subscribed from. Each message names what failed (the listener, the file,
/// the plugin).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The plugin chains could not be built ([`Broker::new`], [`Broker::reload`]).
    #[error(transparent)]
    Access(#[from] AccessError),
    /// A listener could not bind its address ([`Broker::start`]).
    #[error("listener `{listener}`: cannot bind {addr}: {source}")]
    Bind {
        /// The listener's name in the configuration.
        listener: String,
        /// The address it was to bind.
        addr: SocketAddr,
        /// Why the operating system refused.
        source: std::io::Error,
    },
    /// A listener's TLS material could not be used ([`Broker::new`]).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The Prometheus endpoint could not bind its address ([`Broker::start`]).
    #[error("metrics endpoint: cannot bind {addr}: {source}")]
    MetricsBind {
        /// The `metrics.bind` address.
        addr: SocketAddr,
        /// Why the operating system refused.
        source: std::io::Error,
    },
    /// [`Broker::start`] was called on a running broker.
    #[error("the broker is already running")]
    AlreadyRunning,
    /// [`Broker::publish`] was given a topic that is not a valid topic name.
    #[error("invalid topic name `{0}`")]
    InvalidTopic(String),
    /// [`Broker::subscribe`] was given a filter that is not a valid topic filter.
    #[error("invalid topic filter `{0}`")]
    InvalidFilter(String),
    /// [`Broker::publish`] was given a payload too large for one PUBLISH (its size in bytes).
    #[error("payload of {0} bytes does not fit in an MQTT packet")]
    PayloadTooLarge(usize),
    /// [`Broker::publish`] after [`Broker::shutdown`]: nobody would get it.
    #[error("the broker has been shut down")]
    Stopped,
    /// The store (`persistence`) could not be opened or read
    /// ([`Broker::new`]): held by another process, not writable, not a moth
    /// store, damaged. The message names the file.
    #[error("persistence: {0}")]
    Store(String),
}

struct Running {
    /// Every task the broker started holds one of its `Shutdown`s.
    stopper: Stopper,
    addrs: Vec<(String, SocketAddr)>,
}

/// An MQTT 3.1.1 broker. Cheap to clone; clones control the same broker.
#[derive(Clone)]
pub struct Broker {
    ctx: Arc<Shared>,
    /// The auth and topic-check settings last applied (for reload diffs).
    applied: Arc<Mutex<Config>>,
    running: Arc<tokio::sync::Mutex<Option<Running>>>,
    addrs: Arc<Mutex<Vec<(String, SocketAddr)>>>,
    /// One per configured listener, in the same order.
    transports: Arc<Vec<Arc<Transport>>>,
    metrics_addr: Arc<Mutex<Option<SocketAddr>>>,
    /// Wills found in the store, published by the first `start`.
    wills: Arc<Mutex<Vec<restore::PendingWill>>>,
}

impl Broker {
    /// Builds a broker from a configuration. Resolves the plugins it names
    /// (loading plugin libraries of the namespace `moth.broker.plugins` from
    /// `plugins-dir`) and loads every listener's TLS material (certificates,
    /// keys, CAs), so a bad file is reported here, naming the listener; opens
    /// no socket yet.
    pub fn new(config: Config) -> Result<Broker, BrokerError> {
        Broker::with_namespace(config, moth_plugin_api::DEFAULT_NAMESPACE)
    }

    /// Like [`Broker::new`], but registers the plugin libraries that declare
    /// `plugin_namespace` (hbmqtt's `Broker(config, plugin_namespace=...)`);
    /// libraries of other namespaces are skipped.
    pub fn with_namespace(config: Config, plugin_namespace: &str) -> Result<Broker, BrokerError> {
        let access = AccessControl::with_namespace(&config, plugin_namespace)?;
        let transports = config
            .listeners
            .iter()
            .map(|l| Transport::new(l, config.limits.max_packet_size).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let stats = Arc::new(Stats::new());
        for l in &config.listeners {
            // Registered up front so the metrics show every listener at 0.
            stats.listener(&l.name);
        }
        let (journal, loaded) = match &config.persistence {
            Some(p) => {
                let (journal, loaded) = restore::open(p, &stats).map_err(BrokerError::Store)?;
                (Some(journal), Some(loaded))
            }
            None => (None, None),
        };
        let router = Router::with_journal(stats.clone(), journal.clone(), &config.limits);
        let sessions = SessionStore::with_journal(journal.clone());
        let wills = match (&journal, loaded) {
            (Some(j), Some(loaded)) => restore::rebuild(loaded, &router, &sessions, j, &config),
            _ => Vec::new(),
        };
        Ok(Broker {
            applied: Arc::new(Mutex::new(config.clone())),
            ctx: Arc::new(Shared {
                config,
                router,
                sessions,
                stats,
                access,
                journal,
                next_conn: AtomicU64::new(0),
                stopping: AtomicBool::new(false),
                over_memory: AtomicBool::new(false),
                stopped: tokio::sync::Notify::new(),
            }),
            wills: Arc::new(Mutex::new(wills)),
            running: Arc::new(tokio::sync::Mutex::new(None)),
            addrs: Arc::new(Mutex::new(Vec::new())),
            transports: Arc::new(transports),
            metrics_addr: Arc::new(Mutex::new(None)),
        })
    }

    /// The configuration the broker was built with. [`Broker::reload`] does
    /// not change it (it swaps the access control only).
    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// Binds every listener and starts serving. Returns once all are bound;
    /// if one cannot bind, none is left open and the error names it.
    pub async fn start(&self) -> Result<(), BrokerError> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Err(BrokerError::AlreadyRunning);
        }
        let mut sockets = Vec::new();
        for (l, transport) in self.ctx.config.listeners.iter().zip(self.transports.iter()) {
            let socket = listener::bind(l.bind).map_err(|source| BrokerError::Bind {
                listener: l.name.clone(),
                addr: l.bind,
                source,
            })?;
            let addr = socket.local_addr().unwrap_or(l.bind);
            sockets.push((l.clone(), transport.clone(), socket, addr));
        }
        let metrics = match &self.ctx.config.metrics {
            None => None,
            Some(m) => {
                let socket = TcpListener::bind(m.bind)
                    .await
                    .map_err(|source| BrokerError::MetricsBind { addr: m.bind, source })?;
                let addr = socket.local_addr().unwrap_or(m.bind);
                Some((socket, addr, m.path.clone()))
            }
        };
        let stopper = Stopper::new();
        self.ctx.set_stopping(false);
        tokio::spawn(sweeper::run(self.ctx.clone(), stopper.shutdown()));
        let mut addrs = Vec::new();
        for (config, transport, socket, addr) in sockets {
            info!(
                listener = %config.name, transport = transport.name(), %addr,
                max_connections = config.max_connections, "listening"
            );
            addrs.push((config.name.clone(), addr));
            tokio::spawn(listener::run(self.ctx.clone(), config, transport, socket, stopper.shutdown()));
        }
        if let Some((socket, addr, path)) = metrics {
            info!(%addr, path = %path, "metrics endpoint listening");
            *self.metrics_addr.locked() = Some(addr);
            tokio::spawn(metrics_http::run(self.ctx.clone(), socket, path, stopper.shutdown()));
        }
        self.ctx.stats.mark_started();
        sys::publish_version(&self.ctx);
        restore::publish_wills(&self.ctx, std::mem::take(&mut *self.wills.locked()));
        let interval = self.ctx.config.sys_interval;
        if !interval.is_zero() {
            info!(interval_secs = interval.as_secs_f64(), "publishing $SYS topics");
            tokio::spawn(sys::run(self.ctx.clone(), interval, stopper.shutdown()));
        }
        *self.addrs.locked() = addrs.clone();
        *running = Some(Running { stopper, addrs });
        Ok(())
    }

    /// Stops listening, closes every client connection and waits until all
    /// connection tasks have ended. Sessions and retained messages are kept
    /// for a later `start`. Does nothing when the broker is not running.
    pub async fn shutdown(&self) {
        let mut running = self.running.lock().await;
        let Some(r) = running.take() else { return };
        info!("shutting down");
        r.stopper.begin();
        // Attached connections do not watch the signal: they see `stopping`
        // when their session wakes them.
        self.ctx.set_stopping(true);
        self.ctx.stopped.notify_waiters();
        self.ctx.sessions.wake_all();
        r.stopper.stop().await;
        if let Some(journal) = &self.ctx.journal {
            // What the connections recorded last is on disk before `shutdown` returns.
            journal.flush().await;
        }
        drop(r.addrs);
        self.addrs.locked().clear();
        *self.metrics_addr.locked() = None;
        info!("stopped");
    }

    /// Whether `start` succeeded and `shutdown` has not been called since.
    pub async fn is_running(&self) -> bool {
        self.running.lock().await.is_some()
    }

    /// The address a listener is bound to (useful with port 0), while running.
    pub fn local_addr(&self, listener: &str) -> Option<SocketAddr> {
        self.addrs.locked().iter().find(|(n, _)| n == listener).map(|(_, a)| *a)
    }

    /// Every listener's name and bound address, while running.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.addrs.locked().clone()
    }

    /// Publishes a message from the application into the broker, as a client
    /// would (retained when `retain`). Topic checks do not apply: the
    /// application is trusted.
    /// After [`Broker::shutdown`] (and until the next `start`) it returns
    /// [`BrokerError::Stopped`].
    pub fn publish(&self, topic: &str, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Result<(), BrokerError> {
        if self.ctx.stopping() {
            return Err(BrokerError::Stopped);
        }
        // 65535 is the longest string MQTT can carry.
        if !topic::is_valid_name_string(topic) {
            return Err(BrokerError::InvalidTopic(topic.to_string()));
        }
        let payload = payload.into();
        let size = 2 + topic.len() + 2 + payload.len();
        if size > codec::MAX_REMAINING_LENGTH {
            return Err(BrokerError::PayloadTooLarge(payload.len()));
        }
        self.ctx.router.publish(Arc::new(Message::new(topic, payload, qos, retain)));
        Ok(())
    }

    /// Subscribes the application to `filter`. Messages arrive at
    /// min(publish QoS, `qos`) through [`LocalSubscription::recv`], retained
    /// ones first. The subscription ends when the handle is dropped. Like a
    /// client's, its queue is bounded by `max-queued-messages`; a consumer
    /// that falls behind loses messages (counted and logged), it does not
    /// make the broker grow.
    pub fn subscribe(&self, filter: &str, qos: QoS) -> Result<LocalSubscription, BrokerError> {
        if !topic::is_valid_filter_string(filter) {
            return Err(BrokerError::InvalidFilter(filter.to_string()));
        }
        let limits = SessionLimits::of(&self.ctx.config.limits);
        let id = self.ctx.sessions.next_id();
        let session = Arc::new(SessionHandle::new(id, Arc::from(format!("$local/{id}")), limits));
        session.lock().attach(true, limits);
        let retained = self.ctx.router.subscribe(&session, filter, Grant::qos(qos));
        {
            // A new local subscription: its whole retained set fits.
            let room = usize::MAX;
            let mut state = session.lock();
            for m in retained {
                let q = m.qos.min(qos);
                state.enqueue_retained(Delivery::new(m, q, true), room);
            }
        }
        Ok(LocalSubscription { ctx: self.ctx.clone(), session, filter: filter.to_string() })
    }

    /// Number of sessions held (connected or persistent).
    pub fn session_count(&self) -> usize {
        self.ctx.sessions.len()
    }

    /// Number of retained messages held, not counting the broker's own
    /// `$SYS/broker/...` ones (`$SYS/broker/version`).
    pub fn retained_count(&self) -> usize {
        self.ctx.router.retained_count_outside_sys()
    }

    /// The plugin registry and the chains in force (what `moth plugins` prints).
    pub fn plugins(&self) -> PluginListing {
        self.ctx.access.describe()
    }

    /// Plugin errors, panics and timeouts so far (each counted as a refusal),
    /// for the plugins in the chains in force.
    pub fn plugin_failures(&self) -> u64 {
        self.ctx.access.plugin_failures()
    }

    /// Messages dropped so far because a subscriber's queue was full.
    pub fn dropped_messages(&self) -> u64 {
        self.ctx.router.dropped()
    }

    /// The address of the Prometheus endpoint, while running with a `metrics` section.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        *self.metrics_addr.locked()
    }

    /// The current figures, as the next `$SYS` round would publish them.
    pub fn snapshot(&self) -> sys::Snapshot {
        sys::Snapshot::take(&self.ctx)
    }

    /// The Prometheus text the metrics endpoint would serve now.
    pub fn render_metrics(&self) -> String {
        crate::observability::metrics::render(&self.snapshot(), &self.ctx.stats)
    }

    /// Applies what can change without a restart from `new`: the
    /// authentication and topic-check chains and their settings (`auth`,
    /// `topic-check`, `plugins-dir`, `plugins-config`, `plugin-timeout`,
    /// `plugin-concurrency`), re-scanning the plugin directories so a replaced
    /// library is loaded anew and new options reach the plugins. New CONNECTs
    /// and topic checks use them at once; connected clients stay connected.
    /// Everything else that differs from the running configuration
    /// (listeners, limits, `sys_interval`, `metrics`) is listed in the report
    /// as needing a restart, and ignored. On error (an unknown plugin, a
    /// plugin that refuses its options) nothing changes. It loads libraries
    /// and runs plugin constructors, which may block: from a
    /// latency-sensitive task, call it through `spawn_blocking`.
    pub fn reload(&self, new: &Config) -> Result<ReloadReport, BrokerError> {
        let mut applied = self.applied.locked();
        let report = reload::diff(&self.ctx.config, &applied, new);
        // Rebuilt even when the settings are the same: the plugins re-read
        // their files (a password file, say) when they are built.
        self.ctx.access.reload(new)?;
        let listing = self.ctx.access.describe();
        for p in &listing.plugins {
            if let crate::plugin_host::registry::PluginOrigin::Library(file) = &p.origin {
                info!(plugin = %p.name, version = %p.plugin_version, api = %p.api_version, file = %file.display(),
                    "plugin library loaded");
            }
        }
        let topic = listing.topic_chain.as_ref().map_or_else(|| "off".to_string(), |t| t.join(", "));
        info!(auth = %listing.auth_chain.join(", "), topic_check = %topic, "plugin chains reloaded");
        applied.auth = new.auth.clone();
        applied.topic_check = new.topic_check.clone();
        applied.plugins = new.plugins.clone();
        applied.log_level = new.log_level.clone();
        Ok(report)
    }
}

/// An in-process subscription; see [`Broker::subscribe`].
pub struct LocalSubscription {
    ctx: Arc<Shared>,
    session: Arc<SessionHandle>,
    filter: String,
}

impl LocalSubscription {
    /// The next message. Its `qos` is the delivered QoS and `retain` is set
    /// for retained messages sent because of the subscription. `None` once
    /// the broker has been shut down and what was queued before is taken:
    /// the end of the stream.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            // Made before `stopping` is read: a shutdown in between still
            // wakes it (`notify_waiters` wakes every future made before it).
            let stopped = self.ctx.stopped.notified();
            if let Some(d) = self.session.lock().pop() {
                let m = &d.message;
                return Some(Message { qos: d.qos, retain: d.retain, ..(**m).clone() });
            }
            if self.ctx.stopping() {
                return None;
            }
            tokio::select! {
                () = self.session.wake.wait() => {}
                () = stopped => {}
            }
        }
    }

    /// A message if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        let d = self.session.lock().pop()?;
        let m = &d.message;
        Some(Message { qos: d.qos, retain: d.retain, ..(**m).clone() })
    }

    /// The topic filter this subscription was made with.
    pub fn filter(&self) -> &str {
        &self.filter
    }
}

impl Drop for LocalSubscription {
    fn drop(&mut self) {
        self.ctx.router.unsubscribe(self.session.id(), &self.filter);
    }
}
