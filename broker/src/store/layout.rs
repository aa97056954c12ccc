//! The records as keys and values in a few tables: how a [`Batch`] is
//! written and how [`Loaded`] is read back, for any store that offers
//! ordered byte tables (`memory.rs`, `disk.rs`).
//!
//! Everything of one client sits under one key prefix: the client id's
//! length (2 bytes, big-endian) and its bytes. Removing a session is then a
//! range delete per table, and a client id that is a prefix of another
//! cannot catch the other's records. Sequence numbers and packet ids follow
//! big-endian, so a scan returns them in order.

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::batch::Batch;
use crate::store::record::{self, DeliveryRecord, SessionRecord, SubscriptionRecord, WillRecord};
use crate::store::{Loaded, StoreError, StoredSession};

/// The tables of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Table {
    /// `format` -> what wrote the store ([`MAGIC`]).
    Meta,
    Sessions,
    Subscriptions,
    Deliveries,
    Inbound,
    Wills,
    Retained,
}

impl Table {
    pub(crate) const ALL: [Table; 7] = [
        Table::Meta,
        Table::Sessions,
        Table::Subscriptions,
        Table::Deliveries,
        Table::Inbound,
        Table::Wills,
        Table::Retained,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Sessions => "sessions",
            Table::Subscriptions => "subscriptions",
            Table::Deliveries => "deliveries",
            Table::Inbound => "inbound",
            Table::Wills => "wills",
            Table::Retained => "retained",
        }
    }

    /// The tables keyed by client id prefix.
    const PER_CLIENT: [Table; 5] =
        [Table::Sessions, Table::Subscriptions, Table::Deliveries, Table::Inbound, Table::Wills];
}

/// The `meta` table's `format` value: which program and layout wrote it.
pub(crate) const MAGIC: &[u8] = b"moth store 1";
pub(crate) const FORMAT_KEY: &[u8] = b"format";

/// Writing side of a store, inside one transaction.
pub(crate) trait WriteTables {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn remove(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError>;
    /// Removes every key that starts with `prefix`.
    fn remove_prefix(&mut self, table: Table, prefix: &[u8]) -> Result<(), StoreError>;
}

/// What [`ReadTables::scan`] calls on each entry (key, value).
pub(crate) type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError> + 'a;

/// Reading side of a store.
pub(crate) trait ReadTables {
    /// Calls `f` on every entry of `table`, in key order.
    fn scan(&self, table: Table, f: &mut Visit<'_>) -> Result<(), StoreError>;
}

/// A client id as a key prefix.
pub(crate) fn client_key(client_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + client_id.len() + 8);
    // MQTT client ids are UTF-8 strings of at most 65,535 bytes.
    k.extend_from_slice(&u16::try_from(client_id.len()).unwrap_or(u16::MAX).to_be_bytes());
    k.extend_from_slice(client_id.as_bytes());
    k
}

/// Splits a per-client key into the client id and the rest.
fn split_client_key<'a>(table: Table, key: &'a [u8], file: &str) -> Result<(&'a str, &'a [u8]), StoreError> {
    let bad = |why: &str| StoreError::Corrupt {
        file: file.to_string(),
        corrupt: record::Corrupt { what: table.name(), why: format!("key {why}") },
    };
    let (len, rest) = key.split_first_chunk::<2>().ok_or_else(|| bad("cut short"))?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return Err(bad("cut short"));
    }
    let (id, rest) = rest.split_at(len);
    let id = std::str::from_utf8(id).map_err(|_| bad("with a client id that is not UTF-8"))?;
    Ok((id, rest))
}

fn keyed(client: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(client.len() + suffix.len());
    k.extend_from_slice(client);
    k.extend_from_slice(suffix);
    k
}

/// Writes a batch through `w`.
pub(crate) fn apply(batch: &Batch, w: &mut dyn WriteTables) -> Result<(), StoreError> {
    for (topic, m) in &batch.retained {
        match m {
            Some(m) => w.put(Table::Retained, topic.as_bytes(), &record::encode_retained(m))?,
            None => w.remove(Table::Retained, topic.as_bytes())?,
        }
    }
    for (client, c) in &batch.clients {
        let ck = client_key(client);
        if c.wiped {
            for t in Table::PER_CLIENT {
                w.remove_prefix(t, &ck)?;
            }
        }
        if let Some(s) = &c.session {
            w.put(Table::Sessions, &ck, &s.encode())?;
        }
        for (filter, g) in &c.subscriptions {
            let k = keyed(&ck, filter.as_bytes());
            match g {
                Some(g) => w.put(Table::Subscriptions, &k, &g.encode())?,
                None => w.remove(Table::Subscriptions, &k)?,
            }
        }
        for (seq, d) in &c.deliveries {
            let k = keyed(&ck, &seq.to_be_bytes());
            match d {
                Some(d) => w.put(Table::Deliveries, &k, &d.encode())?,
                None => w.remove(Table::Deliveries, &k)?,
            }
        }
        for (id, present) in &c.inbound {
            let k = keyed(&ck, &id.to_be_bytes());
            if *present { w.put(Table::Inbound, &k, &[record::FORMAT])? } else { w.remove(Table::Inbound, &k)? }
        }
        match &c.will {
            Some(Some(will)) => w.put(Table::Wills, &ck, &will.encode())?,
            Some(None) => w.remove(Table::Wills, &ck)?,
            None => {}
        }
    }
    Ok(())
}

/// Reads everything through `r`. `file` names the store in errors.
pub(crate) fn load(r: &dyn ReadTables, file: &str) -> Result<Loaded, StoreError> {
    let corrupt = |corrupt| StoreError::Corrupt { file: file.to_string(), corrupt };
    let mut sessions: Vec<StoredSession> = Vec::new();
    let mut index: HashMap<Arc<str>, usize> = HashMap::new();
    r.scan(Table::Sessions, &mut |k, v| {
        let (id, rest) = split_client_key(Table::Sessions, k, file)?;
        if !rest.is_empty() {
            return Err(corrupt(record::Corrupt { what: "session", why: "key longer than a client id".into() }));
        }
        let client_id: Arc<str> = Arc::from(id);
        index.insert(client_id.clone(), sessions.len());
        sessions.push(StoredSession {
            client_id,
            record: SessionRecord::decode(v).map_err(corrupt)?,
            subscriptions: Vec::new(),
            deliveries: Vec::new(),
            inbound: Vec::new(),
        });
        Ok(())
    })?;
    // Records of a session that is not stored cannot be written by one
    // atomic batch; they are skipped, not trusted.
    let session_of = |table: Table, k: &[u8]| -> Result<Option<(usize, Vec<u8>)>, StoreError> {
        let (id, rest) = split_client_key(table, k, file)?;
        Ok(index.get(id).map(|&i| (i, rest.to_vec())))
    };
    r.scan(Table::Subscriptions, &mut |k, v| {
        if let Some((i, rest)) = session_of(Table::Subscriptions, k)? {
            let filter = String::from_utf8(rest)
                .map_err(|_| corrupt(record::Corrupt { what: "subscription", why: "filter not UTF-8".into() }))?;
            sessions[i].subscriptions.push((filter, SubscriptionRecord::decode(v).map_err(corrupt)?));
        }
        Ok(())
    })?;
    r.scan(Table::Deliveries, &mut |k, v| {
        if let Some((i, rest)) = session_of(Table::Deliveries, k)? {
            let seq = <[u8; 8]>::try_from(rest.as_slice())
                .map_err(|_| corrupt(record::Corrupt { what: "queued message", why: "bad key".into() }))?;
            sessions[i].deliveries.push((u64::from_be_bytes(seq), DeliveryRecord::decode(v).map_err(corrupt)?));
        }
        Ok(())
    })?;
    r.scan(Table::Inbound, &mut |k, _| {
        if let Some((i, rest)) = session_of(Table::Inbound, k)? {
            let id = <[u8; 2]>::try_from(rest.as_slice())
                .map_err(|_| corrupt(record::Corrupt { what: "inbound", why: "bad key".into() }))?;
            sessions[i].inbound.push(u16::from_be_bytes(id));
        }
        Ok(())
    })?;
    let mut wills = Vec::new();
    r.scan(Table::Wills, &mut |k, v| {
        let (id, _) = split_client_key(Table::Wills, k, file)?;
        wills.push((Arc::from(id), WillRecord::decode(v).map_err(corrupt)?));
        Ok(())
    })?;
    let mut retained = Vec::new();
    r.scan(Table::Retained, &mut |_, v| {
        retained.push(record::decode_retained(v).map_err(corrupt)?);
        Ok(())
    })?;
    Ok(Loaded { sessions, wills, retained })
}
