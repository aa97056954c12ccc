//! What the broker tells its operator: `$SYS` topics ([`sys`]), the
//! Prometheus text ([`metrics`]) and its HTTP endpoint ([`metrics_http`]),
//! and the program's log output ([`logging`]).

pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod metrics_http;
pub(crate) mod sys;
