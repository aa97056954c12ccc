//! Locks that outlive a panic. A panic while a lock is held is a broker bug,
//! but the data behind moth's locks (session state, counters, chains in
//! force) stays consistent enough to keep serving the other clients, so a
//! poisoned lock is used as it is rather than taking the broker down. One
//! place says so, instead of `unwrap_or_else(|e| e.into_inner())` at every
//! call (rustls' `lock.rs` does the same).

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `lock()` that ignores poisoning; see the module docs.
pub(crate) trait Locked<T: ?Sized> {
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `read()` and `write()` that ignore poisoning; see the module docs.
pub(crate) trait RwLocked<T: ?Sized> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T>;
    fn write_locked(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> RwLocked<T> for RwLock<T> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_locked(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_still_usable() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.lock().is_err(), "poisoned");
        *m.locked() += 1;
        assert_eq!(*m.locked(), 2);
        let r = RwLock::new(5);
        *r.write_locked() = 6;
        assert_eq!(*r.read_locked(), 6);
    }
}
