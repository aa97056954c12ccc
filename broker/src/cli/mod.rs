//! What the `moth` program adds around the broker: `moth passwd`
//! ([`passwd_cmd`], with the pure file edits in [`passwd`], the atomic write
//! in [`file_replace`] and the no-echo prompt in `tty_password`) and the
//! open-file limit ([`fd_limit`]), a file size limit that fails writes
//! instead of killing the broker ([`file_size`]).

pub(crate) mod fd_limit;
pub(crate) mod file_replace;
pub(crate) mod file_size;
pub(crate) mod passwd;
pub(crate) mod passwd_cmd;
mod tty_password;
