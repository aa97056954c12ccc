//! Sessions: one client's state ([`state`]), its QoS 1 and QoS 2 flows
//! ([`inflight`]), all sessions by client id and who owns each ([`store`]),
//! how a publisher wakes a session's consumer ([`signal`]) and the attached
//! connection's keep-alive stamp ([`liveness`]), and what one subscription
//! grants ([`subscription`]); a shared subscription's group and its
//! members ([`shared_group`]).

pub mod inflight;
pub mod liveness;
pub mod shared_group;
pub mod signal;
pub mod state;
pub mod store;
pub mod subscription;
