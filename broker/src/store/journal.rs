//! The journal: changes recorded by the sessions and the router, committed
//! to the [`Store`] on a thread of its own, and the one answer connections
//! need from it: is everything up to sequence number `n` durable yet?
//!
//! Recording a change ([`Journal::record`]) takes a short lock, appends
//! the change and hands out the next sequence number; callers record
//! while they hold the lock of what changed (a session, the retained
//! store), so the journal sees each record's changes in the order they
//! happened. The writer takes everything pending at once, merges it into
//! one [`Batch`] (the last change per record) and commits it with one
//! fsync: **group commit**, so the connections waiting in one window share
//! one disk flush however many there are. While it flushes, the next group
//! gathers.
//!
//! `sync: always` commits each change on its own instead (its cost, for
//! comparison); `sync: periodic` commits on a timer and never makes anyone
//! wait ([`Journal::waits`] is false): a crash loses up to one interval.
//!
//! A failed commit (a full disk, an I/O error) is counted, logged and
//! retried with back-off, with the changes recorded meanwhile merged in;
//! nothing after it is reported durable until it succeeds, so no client is
//! told a message is safe that is not, and clients that do not need the
//! store keep being served.
//!
//! Connections learn of their own changes through [`mark`]: a per-thread
//! count of recorded changes, read before and after handling a packet, so
//! a connection whose packet changed nothing never waits.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::config::SyncMode;
use crate::lock::{Locked, RwLocked};
use crate::stats::Stats;
use crate::store::batch::{Batch, Change};
use crate::store::{Store, StoreError};

/// The longest wait between two attempts of a failing commit.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// The first wait after a failed commit.
const RETRY_FIRST: Duration = Duration::from_millis(50);

thread_local! {
    /// Changes recorded on this thread, ever (see [`mark`]).
    static RECORDED: Cell<u64> = const { Cell::new(0) };
}

/// How many changes this thread has recorded so far: a connection compares
/// it before and after its work to know whether it must wait.
pub(crate) fn mark() -> u64 {
    RECORDED.with(Cell::get)
}

struct Pending {
    changes: Vec<Change>,
    /// Sequence number of the newest change recorded.
    last: u64,
}

struct Inner {
    store: Box<dyn Store>,
    mode: SyncMode,
    pending: Mutex<Pending>,
    /// Signalled when the first change lands in an empty `pending`, and on close.
    work: Condvar,
    /// Everything up to this sequence number is committed.
    durable: AtomicU64,
    /// Connections waiting for `durable` to reach their number.
    waiters: Mutex<Vec<(u64, Waker)>>,
    closing: AtomicBool,
    /// Commit now, whatever the mode's timer says ([`Journal::flush`]).
    force: AtomicBool,
    /// Held (shared) by a group of changes that must land in one commit;
    /// the writer takes it (exclusively) to take the pending changes.
    gate: RwLock<()>,
    stats: Arc<Stats>,
}

/// The broker's journal (one per broker with persistence on).
pub(crate) struct Journal {
    inner: Arc<Inner>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("mode", &self.inner.mode).finish_non_exhaustive()
    }
}

impl Journal {
    /// Starts the writer thread over `store`.
    pub(crate) fn start(store: Box<dyn Store>, mode: SyncMode, stats: Arc<Stats>) -> std::io::Result<Journal> {
        let inner = Arc::new(Inner {
            store,
            mode,
            pending: Mutex::new(Pending { changes: Vec::new(), last: 0 }),
            work: Condvar::new(),
            durable: AtomicU64::new(0),
            waiters: Mutex::new(Vec::new()),
            closing: AtomicBool::new(false),
            force: AtomicBool::new(false),
            gate: RwLock::new(()),
            stats,
        });
        let writer = {
            let inner = inner.clone();
            std::thread::Builder::new().name("moth-store".into()).spawn(move || inner.run())?
        };
        Ok(Journal { inner, writer: Mutex::new(Some(writer)) })
    }

    /// Records one change that a confirmation to a client waits for (see
    /// [`mark`]); returns its sequence number.
    pub(crate) fn record(&self, change: Change) -> u64 {
        RECORDED.with(|r| r.set(r.get() + 1));
        self.record_quietly(change)
    }

    /// Records one change nobody waits for (a finished delivery, a session
    /// gone offline): it rides the next commit.
    pub(crate) fn record_quietly(&self, change: Change) -> u64 {
        self.inner.stats.store.changes.fetch_add(1, Ordering::Relaxed);
        let mut p = self.inner.pending.locked();
        p.last += 1;
        let was_empty = p.changes.is_empty();
        p.changes.push(change);
        let seq = p.last;
        drop(p);
        if was_empty {
            self.inner.work.notify_one();
        }
        seq
    }

    /// While the guard lives, every change recorded (by this thread or
    /// another) lands in the same commit as the others recorded meanwhile:
    /// the writer does not take pending changes until it is dropped. An
    /// inbound QoS 2 PUBLISH needs this: its packet id and the deliveries
    /// it routed must be durable together, or a crash between two commits
    /// would either lose the message (the id stored, a delivery not: the
    /// re-sent PUBLISH is taken as a duplicate) or deliver it twice (the
    /// other way round). Keep it short: routing only, no I/O.
    pub(crate) fn atomically(&self) -> RwLockReadGuard<'_, ()> {
        self.inner.gate.read_locked()
    }

    /// The sequence number of the newest change recorded.
    pub(crate) fn recorded(&self) -> u64 {
        self.inner.pending.locked().last
    }

    /// Whether confirmations wait for the disk (`sync: always` and `batch`).
    pub(crate) fn waits(&self) -> bool {
        !matches!(self.inner.mode, SyncMode::Periodic(_))
    }

    /// Ready once every change up to `seq` is durable; until then the
    /// task is woken when it is.
    pub(crate) fn poll_durable(&self, seq: u64, cx: &mut Context<'_>) -> Poll<()> {
        if !self.waits() {
            return Poll::Ready(());
        }
        self.poll_committed(seq, cx)
    }

    /// Ready once everything up to `seq` is committed, whatever the mode.
    fn poll_committed(&self, seq: u64, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.durable.load(Ordering::Acquire) >= seq {
            return Poll::Ready(());
        }
        let mut waiters = self.inner.waiters.locked();
        // Checked again under the lock the writer wakes under: a commit
        // that finished in between is not missed.
        if self.inner.durable.load(Ordering::Acquire) >= seq {
            return Poll::Ready(());
        }
        if !waiters.iter().any(|(s, w)| *s == seq && w.will_wake(cx.waker())) {
            waiters.push((seq, cx.waker().clone()));
        }
        Poll::Pending
    }

    /// Waits until every change up to `seq` is durable.
    pub(crate) async fn durable(&self, seq: u64) {
        std::future::poll_fn(|cx| self.poll_durable(seq, cx)).await;
    }

    /// Waits until everything recorded so far is committed, in every mode
    /// (a broker shutting down; `periodic` commits at once for it).
    pub(crate) async fn flush(&self) {
        let last = self.recorded();
        self.inner.force.store(true, Ordering::Release);
        {
            let _p = self.inner.pending.locked();
            self.inner.work.notify_one();
        }
        std::future::poll_fn(|cx| self.poll_committed(last, cx)).await;
    }

    /// Commits what is pending and stops the writer (the journal's drop).
    /// The journal records nothing after this.
    pub(crate) fn close(&self) {
        self.inner.closing.store(true, Ordering::Release);
        {
            // Under the lock the writer waits on, so the wake-up is not lost.
            let _p = self.inner.pending.locked();
            self.inner.work.notify_one();
        }
        if let Some(writer) = self.writer.locked().take()
            && writer.join().is_err()
        {
            error!("the store's writer thread panicked");
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    fn run(&self) {
        loop {
            let Some((changes, last)) = self.take() else { break };
            match self.mode {
                SyncMode::Always => {
                    let first = last + 1 - changes.len() as u64;
                    for (i, change) in changes.into_iter().enumerate() {
                        self.commit(Batch::of([change]), first + i as u64);
                    }
                }
                SyncMode::Batch | SyncMode::Periodic(_) => self.commit(Batch::of(changes), last),
            }
        }
    }

    /// The changes to commit next, with the sequence number of the last;
    /// `None` once closing and nothing is left.
    fn take(&self) -> Option<(Vec<Change>, u64)> {
        let mut p = self.pending.locked();
        let deadline = match self.mode {
            SyncMode::Periodic(every) => Some(Instant::now() + every),
            _ => None,
        };
        loop {
            let closing = self.closing.load(Ordering::Acquire);
            let due = deadline.is_none_or(|d| Instant::now() >= d) || self.force.swap(false, Ordering::AcqRel);
            if !p.changes.is_empty() && (due || closing) {
                // Not in the middle of a group that must commit whole
                // ([`Journal::atomically`]): let it finish first.
                drop(p);
                let _whole = self.gate.write_locked();
                let mut p = self.pending.locked();
                let last = p.last;
                return Some((std::mem::take(&mut p.changes), last));
            }
            if closing {
                return None;
            }
            p = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    self.work.wait_timeout(p, left).map_or_else(|e| e.into_inner().0, |(g, _)| g)
                }
                None => self.work.wait(p).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Commits `batch` (everything recorded up to `last`), retrying a
    /// failure with the changes recorded meanwhile merged in; then reports
    /// the new durable point.
    fn commit(&self, mut batch: Batch, mut last: u64) {
        let mut wait = RETRY_FIRST;
        let mut failures = 0u64;
        loop {
            let started = Instant::now();
            // A panic inside the store (a bug, or a damaged page it trips
            // on) must not end this thread: nothing would be durable ever
            // after, and every confirmation would wait forever.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.store.commit(&batch)))
                .unwrap_or_else(|_| Err(StoreError::Io("the store panicked in a commit".into())));
            match result {
                Ok(()) => {
                    let s = &self.stats.store;
                    s.commit(started.elapsed());
                    s.records_written.fetch_add(records(&batch), Ordering::Relaxed);
                    if let Some(size) = self.store.size_on_disk() {
                        s.size_bytes.store(size, Ordering::Relaxed);
                    }
                    if failures > 0 {
                        info!(failures, "the store is written again");
                    }
                    break;
                }
                Err(e) => {
                    self.stats.store.errors.fetch_add(1, Ordering::Relaxed);
                    failures += 1;
                    if self.closing.load(Ordering::Acquire) && failures > 3 {
                        error!(error = %e, changes = batch.merged, "store commit failed at shutdown: these changes are not stored");
                        return;
                    }
                    // Logged on the first failure and then at most every
                    // RETRY_MAX, not per attempt.
                    if failures == 1 || wait == RETRY_MAX {
                        warn!(error = %e, failures, "store commit failed; acknowledgements wait until it succeeds");
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(RETRY_MAX);
                    if matches!(self.mode, SyncMode::Batch | SyncMode::Periodic(_)) {
                        let mut p = self.pending.locked();
                        for c in p.changes.drain(..) {
                            batch.add(c);
                        }
                        last = p.last;
                    }
                }
            }
        }
        self.durable.store(last, Ordering::Release);
        let mut waiters = self.waiters.locked();
        let mut i = 0;
        while i < waiters.len() {
            if waiters[i].0 <= last {
                waiters.swap_remove(i).1.wake();
            } else {
                i += 1;
            }
        }
    }
}

/// Records a batch writes or deletes.
fn records(b: &Batch) -> u64 {
    let per_client = b.clients.values().map(|c| {
        c.subscriptions.len()
            + c.deliveries.len()
            + c.inbound.len()
            + usize::from(c.session.is_some())
            + usize::from(c.will.is_some())
            + usize::from(c.wiped)
    });
    (per_client.sum::<usize>() + b.retained.len()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::packet::QoS;
    use crate::store::memory::MemoryStore;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    /// A shared store: the test keeps one handle, the journal another.
    struct Shared(Arc<MemoryStore>);

    impl Store for Shared {
        fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
            self.0.commit(batch)
        }
        fn load(&self) -> Result<crate::store::Loaded, StoreError> {
            self.0.load()
        }
        fn size_on_disk(&self) -> Option<u64> {
            None
        }
    }

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn retained(topic: &str) -> Change {
        Change::Retained(Arc::from(topic), Some(Arc::new(Message::new(topic, "v", QoS::AtLeastOnce, true))))
    }

    fn journal(mode: SyncMode) -> (Arc<MemoryStore>, Journal) {
        let store = Arc::new(MemoryStore::new());
        let j = Journal::start(Box::new(Shared(store.clone())), mode, Arc::new(Stats::new())).expect("thread");
        (store, j)
    }

    #[tokio::test]
    async fn a_recorded_change_is_stored_once_durable_is_reported() {
        for mode in [SyncMode::Batch, SyncMode::Always] {
            let (store, j) = journal(mode);
            let before = mark();
            let seq = j.record(retained("a"));
            assert_eq!(mark(), before + 1, "this thread recorded one change");
            j.record(retained("b"));
            tokio::time::timeout(Duration::from_secs(10), j.durable(seq + 1)).await.expect("durable in time");
            let loaded = store.load().expect("loads");
            assert_eq!(loaded.retained.len(), 2, "{mode:?}");
        }
    }

    #[test]
    fn a_failing_store_holds_confirmations_until_it_recovers() {
        let (store, j) = journal(SyncMode::Batch);
        store.failing.store(true, Ordering::Relaxed);
        let seq = j.record(retained("a"));
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(j.poll_durable(seq, &mut cx).is_pending());
        std::thread::sleep(Duration::from_millis(300));
        assert!(j.poll_durable(seq, &mut cx).is_pending(), "not durable while the disk fails");
        let later = j.record(retained("b"));
        assert!(j.inner.stats.store.errors.load(Ordering::Relaxed) >= 1, "counted");
        store.failing.store(false, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(10);
        while j.poll_durable(later, &mut cx).is_pending() {
            assert!(Instant::now() < deadline, "recovers");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(count.0.load(Ordering::SeqCst) >= 1, "the waiter was woken");
        assert_eq!(store.load().expect("loads").retained.len(), 2, "the failed change was kept and retried");
    }

    #[test]
    fn periodic_never_waits_and_close_commits_what_is_left() {
        let (store, j) = journal(SyncMode::Periodic(Duration::from_secs(3600)));
        assert!(!j.waits());
        let seq = j.record(retained("a"));
        let waker = Waker::noop();
        assert!(j.poll_durable(seq, &mut Context::from_waker(waker)).is_ready());
        assert!(store.load().expect("loads").retained.is_empty(), "not committed before the interval");
        j.close();
        assert_eq!(store.load().expect("loads").retained.len(), 1, "committed at close");
    }
}
