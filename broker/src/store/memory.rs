//! A store in memory: the same tables and records as on disk, kept in
//! ordered maps, with a switch that makes commits fail like a full disk.
//! The unit tests run the journal on it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::lock::Locked;
use crate::store::batch::Batch;
use crate::store::layout::{self, ReadTables, Table, Visit, WriteTables};
use crate::store::{Loaded, Store, StoreError};

type Tables = BTreeMap<Table, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    tables: Mutex<Tables>,
    /// Test hook: commits fail while set (a full disk).
    #[cfg(test)]
    pub(crate) failing: std::sync::atomic::AtomicBool,
}

impl MemoryStore {
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

struct Writer<'a>(&'a mut Tables);

impl WriteTables for Writer<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.0.entry(table).or_default().insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn remove(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.0.entry(table).or_default().remove(key);
        Ok(())
    }

    fn remove_prefix(&mut self, table: Table, prefix: &[u8]) -> Result<(), StoreError> {
        self.0.entry(table).or_default().retain(|k, _| !k.starts_with(prefix));
        Ok(())
    }
}

impl ReadTables for Tables {
    fn scan(&self, table: Table, f: &mut Visit<'_>) -> Result<(), StoreError> {
        for (k, v) in self.get(&table).into_iter().flatten() {
            f(k, v)?;
        }
        Ok(())
    }
}

impl Store for MemoryStore {
    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        #[cfg(test)]
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::Io("no space left on device (test)".into()));
        }
        // The writer cannot fail half-way, so the batch applies whole.
        layout::apply(batch, &mut Writer(&mut self.tables.locked()))
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        layout::load(&*self.tables.locked(), "memory")
    }

    fn size_on_disk(&self) -> Option<u64> {
        None
    }
}
