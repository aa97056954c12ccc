//! The server: listeners and their accept loops ([`listener`]), the driver
//! of one client connection ([`connection`]) and the keep-alive sweeper
//! ([`keepalive`]).

pub mod connection;
pub mod keepalive;
pub mod listener;
