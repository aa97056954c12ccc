//! Sessions: one client's state ([`state`]), its QoS 1 and QoS 2 flows
//! ([`inflight`]), all sessions by client id and who owns each ([`store`]),
//! how a publisher wakes a session's consumer ([`signal`]) and the attached
//! connection's keep-alive stamp ([`liveness`]), and what one subscription
//! grants ([`subscription`]); a shared subscription's group and its
//! members ([`shared_group`]).

pub(crate) mod delivery;
pub(crate) mod durable;
#[cfg(any(test, fuzzing))]
pub(crate) mod fuzz;
pub(crate) mod inflight;
pub(crate) mod liveness;
pub(crate) mod shared_group;
pub(crate) mod signal;
pub(crate) mod state;
pub(crate) mod store;
pub(crate) mod subscription;
