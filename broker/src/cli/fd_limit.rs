//! Raising the process's open-file limit to what the system allows.
//!
//! Every client connection is one file descriptor, and the usual soft limit
//! (1,024) would refuse the 1,025th client with EMFILE although the hard
//! limit, which an unprivileged process may raise its soft limit to, is
//! often far higher. The `moth` program therefore raises its soft limit to
//! the hard limit at start, as Go programs and many servers do; the limit
//! in force is logged. The library leaves an embedding application's limits
//! alone.

/// The open-file limit before and after: `(was, now)`. `now` equals the hard
/// limit unless raising failed, in which case the limit is unchanged.
#[cfg(unix)]
pub fn raise() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let was = lim.rlim_cur;
    if lim.rlim_cur == lim.rlim_max {
        return Ok((was, was));
    }
    let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((was, lim.rlim_max))
}

#[cfg(not(unix))]
pub fn raise() -> std::io::Result<(u64, u64)> {
    Ok((0, 0))
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let (_, now) = super::raise().expect("raise");
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        assert_eq!(now, lim.rlim_cur);
    }
}
