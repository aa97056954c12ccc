//! The store: what survives a restart or a crash (the `persistence`
//! section of the configuration).
//!
//! The broker keeps its whole state in memory as it always did; with
//! persistence on, the sessions and the router also record every change to
//! the durable part of it (persistent sessions with their subscriptions,
//! queued and in-flight QoS 1/2 messages and inbound QoS 2 ids, retained
//! messages, wills) in the [`journal::Journal`], which commits them to a
//! [`Store`] in groups on its own thread. Nothing is read back while the
//! broker runs; [`Store::load`] rebuilds the state at start-up.
//!
//! Acknowledgements wait for durability, not the other way round: a
//! connection that recorded a change holds its output (the PUBACK, PUBREC,
//! PUBREL, PUBCOMP, SUBACK or CONNACK that confirms the change, and
//! whatever follows it) until the journal says the change is on disk
//! (`server/connection.rs`). So a message moth acknowledged is stored, and a
//! crash loses only what no client was told was safe.
//!
//! Files: `record.rs` (each record and its bytes), `batch.rs` (a change and
//! a commit's worth of them), `layout.rs` (records as keys and values in
//! tables, shared by both stores), `memory.rs` and `disk.rs` (the stores),
//! `journal.rs` (group commit, the sync modes, waiting for durability);
//! `memory.rs` is the store the unit tests run the journal on.
//!
//! The [`Store`] trait is narrow on purpose: apply a batch atomically and
//! durably, and load everything. A distributed store (the clustering work)
//! implements the same two calls.

pub(crate) mod batch;
pub(crate) mod disk;
pub(crate) mod journal;
pub(crate) mod layout;
#[cfg(test)]
pub(crate) mod memory;
pub(crate) mod record;

use std::sync::Arc;

use crate::message::Message;
use batch::Batch;
use record::{Corrupt, DeliveryRecord, SessionRecord, SubscriptionRecord, WillRecord};

/// Why the store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The store cannot be used at all (held by another process, not
    /// writable, not a moth store); the message names the file.
    #[error("{0}")]
    Open(String),
    /// A record that cannot be read.
    #[error("{file}: {corrupt}")]
    Corrupt { file: String, corrupt: Corrupt },
    /// Reading or writing failed (a full disk, an I/O error).
    #[error("{0}")]
    Io(String),
}

/// Where moth keeps what must survive a restart.
pub(crate) trait Store: Send + Sync {
    /// Applies the batch as one atomic change; durable (fsync'd) when it
    /// returns `Ok`. On `Err` nothing of it may be taken as stored.
    fn commit(&self, batch: &Batch) -> Result<(), StoreError>;

    /// Everything stored, for the start-up.
    fn load(&self) -> Result<Loaded, StoreError>;

    /// Bytes the store takes on disk, if it is on disk.
    fn size_on_disk(&self) -> Option<u64>;
}

/// One stored persistent session with everything under it.
#[derive(Debug, Clone)]
pub(crate) struct StoredSession {
    pub client_id: Arc<str>,
    pub record: SessionRecord,
    pub subscriptions: Vec<(String, SubscriptionRecord)>,
    /// By sequence number, oldest first.
    pub deliveries: Vec<(u64, DeliveryRecord)>,
    pub inbound: Vec<u16>,
}

/// What [`Store::load`] found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Loaded {
    pub sessions: Vec<StoredSession>,
    /// Wills of the clients connected when the broker stopped.
    pub wills: Vec<(Arc<str>, WillRecord)>,
    pub retained: Vec<Arc<Message>>,
}
