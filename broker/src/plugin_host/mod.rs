//! The plugin host: every plugin by name, built-in or from a library
//! ([`registry`]), loading a library through the stable ABI ([`loader`]),
//! what a plugin is handed ([`input`]) and how one is called, bounded in time
//! and concurrency ([`call`]).

pub(crate) mod call;
pub(crate) mod input;
pub(crate) mod loader;
pub(crate) mod registry;
