//! What the broker tells its operator: `$SYS` topics ([`sys`]), the
//! Prometheus text ([`metrics`]) and its HTTP endpoint ([`metrics_http`]),
//! and the program's log output ([`logging`]).

pub mod logging;
pub mod metrics;
pub mod metrics_http;
pub mod sys;
