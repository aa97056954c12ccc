//! What the `moth` program adds around the broker: `moth passwd`
//! ([`passwd_cmd`], with the pure file edits in [`passwd`], the atomic write
//! in [`file_replace`] and the no-echo prompt in `tty_password`) and the
//! open-file limit ([`fd_limit`]).

pub mod fd_limit;
pub mod file_replace;
pub mod passwd;
pub mod passwd_cmd;
mod tty_password;
