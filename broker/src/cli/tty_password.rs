//! Asking a password on the terminal the way getpass(3) does: echo is turned
//! off *before* the prompt is shown, then the line is read, then the
//! terminal is put back as it was.
//!
//! Why not `rpassword`: it prints the prompt first and turns echo off after,
//! so a password typed as soon as the prompt appears (a fast typist, a
//! password manager, an `expect` script) can be echoed in that gap. Here,
//! what the terminal shows after the prompt can never be the password.
//! Input typed ahead of the prompt is discarded (`TCSAFLUSH`), as getpass
//! does: it may have been echoed already.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;

/// The terminal's settings, put back when dropped (also on an error path).
struct Restore<'a> {
    tty: &'a File,
    original: libc::termios,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        // Nothing more can be done if this fails; the terminal is on its way out.
        let _ = set_attributes(self.tty, &self.original, libc::TCSANOW);
    }
}

fn attributes(tty: &File) -> io::Result<libc::termios> {
    let mut t = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: the descriptor is open for the lifetime of `tty`, and
    // tcgetattr fills the whole struct when it returns 0.
    if unsafe { libc::tcgetattr(tty.as_raw_fd(), t.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful call above.
    Ok(unsafe { t.assume_init() })
}

fn set_attributes(tty: &File, t: &libc::termios, when: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid descriptor and a fully initialised termios.
    if unsafe { libc::tcsetattr(tty.as_raw_fd(), when, t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Shows `prompt` on the controlling terminal with echo off and reads one
/// line (without its line end). The Enter key's newline is still echoed
/// (`ECHONL`), so the next output starts on a new line.
pub(crate) fn prompt_password(prompt: &str) -> io::Result<String> {
    let tty = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    let original = attributes(&tty)?;
    let mut quiet = original;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    set_attributes(&tty, &quiet, libc::TCSAFLUSH)?;
    let _restore = Restore { tty: &tty, original };
    (&tty).write_all(prompt.as_bytes())?;
    (&tty).flush()?;
    let mut line = String::new();
    BufReader::new(&tty).read_line(&mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the terminal closed before a password was typed"));
    }
    let len = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(len);
    Ok(line)
}
