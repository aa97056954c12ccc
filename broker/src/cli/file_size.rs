//! A file size limit (`ulimit -f`, RLIMIT_FSIZE) must not kill the broker.
//!
//! By default a process that writes past its file size limit gets SIGXFSZ,
//! which ends it. moth ignores the signal instead, so the write fails with
//! EFBIG like any other full disk: the store's journal counts it, holds the
//! acknowledgements it cannot give, keeps serving the clients that need no
//! store and retries until the limit is raised or room is made.

/// Ignores SIGXFSZ for the whole process (the `moth` program calls it
/// first thing).
pub fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no handler to
    // run and no memory to share; it is done before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
