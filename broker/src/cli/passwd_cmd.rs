//! `moth passwd`: the command that creates and edits password files,
//! modelled on `mosquitto_passwd` (`-c`, `-b`, `-D`, `-U`, `-H`, `-I`).
//!
//! This is the thin I/O layer: arguments, reading the file, asking for the
//! password, and replacing the file atomically. The edits themselves are
//! in `passwd.rs`. A password is never printed, logged or put in an error.
//!
//! Exit codes: 0 on success, 2 for bad usage (arguments, a username the
//! file cannot hold, an empty password, bad argon2 parameters), 1 when the
//! file cannot be read or written or the edit is refused.

use std::io::{self, BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use clap::Args;
use thiserror::Error;

use crate::cli::file_replace::replace_file;
use crate::cli::passwd::{self, DEFAULT_PBKDF2_ITERATIONS, DEFAULT_SCRAM_ITERATIONS, HashParams, PasswdError, Scheme};
use crate::cli::tty_password::prompt_password;

/// Arguments of `moth passwd`.
#[derive(Args, Debug)]
#[command(
    about = "Create or edit a password file (argon2id, Mosquitto's $7$ or SCRAM-SHA-256), like mosquitto_passwd",
    after_help = "Forms:\n  moth passwd [-c] FILE USER            add or update USER, the password asked twice\n  \
                  moth passwd [-c] -b FILE USER PASSWORD  batch mode: the password on the command line\n  \
                  moth passwd -D FILE USER              delete USER\n  \
                  moth passwd -U FILE                   hash a plain-text user:password file in place\n\n\
                  Without a terminal, the password is read from the first line of standard input\n\
                  (a second line, if present, must repeat it)."
)]
pub struct PasswdArgs {
    /// Create the file, or overwrite it if it exists.
    #[arg(short = 'c', conflicts_with_all = ["delete", "upgrade"])]
    pub create: bool,
    /// Batch mode: take the password from the command line (it shows in `ps` and shell history).
    #[arg(short = 'b', conflicts_with_all = ["delete", "upgrade"])]
    pub batch: bool,
    /// Delete USER from the file.
    #[arg(short = 'D', conflicts_with = "upgrade")]
    pub delete: bool,
    /// Upgrade a plain-text `user:password` file to hashes. A file with any
    /// line already hashed is refused unchanged, so running it twice is safe.
    #[arg(short = 'U')]
    pub upgrade: bool,
    /// Hash algorithm: argon2id, sha512-pbkdf2 (Mosquitto's `$7$`, for a
    /// file shared with Mosquitto 2.0, which reads no argon2), or
    /// scram-sha-256 (credentials for the `scram` plugin's MQTT 5 enhanced
    /// authentication, in PostgreSQL's form).
    #[arg(short = 'H', value_name = "HASH", default_value = "argon2id", value_parser = ["argon2id", "sha512-pbkdf2", "scram-sha-256"])]
    pub hash: String,
    /// Argon2 memory cost in KiB [default: 19456, OWASP].
    #[arg(long = "memory", value_name = "KiB")]
    pub memory: Option<u32>,
    /// Iterations: argon2's time cost [default: 2, OWASP], or with
    /// -H sha512-pbkdf2 the PBKDF2 rounds [default: 210000, OWASP; mosquitto_passwd 2.0 writes 101],
    /// or with -H scram-sha-256 its PBKDF2 rounds [default: 15000; 4096 to 10000000].
    #[arg(short = 'I', long = "iterations", value_name = "N")]
    pub iterations: Option<u32>,
    /// Argon2 parallelism (lanes) [default: 1, OWASP].
    #[arg(long = "parallelism", value_name = "N")]
    pub parallelism: Option<u32>,
    /// The password file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The user to add, update or delete.
    #[arg(value_name = "USER")]
    pub user: Option<String>,
    /// The password, with -b only.
    #[arg(value_name = "PASSWORD")]
    pub password: Option<String>,
}

/// Why `moth passwd` failed; [`CmdError::exit_code`] maps it to 1 or 2.
#[derive(Debug, Error)]
pub enum CmdError {
    #[error("{0}")]
    Usage(String),
    #[error("{file}: {source}")]
    Edit { file: String, source: PasswdError },
    #[error("{0}")]
    Invalid(PasswdError),
    #[error("{file}: cannot read: {source}{hint}")]
    Read { file: String, source: io::Error, hint: &'static str },
    #[error("{file}: cannot write (the file is unchanged): {source}")]
    Write { file: String, source: io::Error },
    #[error("{dir}: cannot lock the directory against a concurrent `moth passwd`: {source}")]
    Lock { dir: String, source: io::Error },
    #[error("cannot read the password: {0}")]
    Prompt(io::Error),
    #[error("no password given on standard input")]
    NoPassword,
    #[error("the passwords do not match")]
    Mismatch,
}

impl CmdError {
    /// 2 for bad usage, 1 for everything that went wrong while working.
    pub fn exit_code(&self) -> u8 {
        let usage = |e: &PasswdError| {
            matches!(
                e,
                PasswdError::BadUser(_)
                    | PasswdError::EmptyPassword
                    | PasswdError::BadParams { .. }
                    | PasswdError::BadIterations(_)
            )
        };
        match self {
            CmdError::Usage(_) => 2,
            CmdError::Edit { source, .. } | CmdError::Invalid(source) if usage(source) => 2,
            _ => 1,
        }
    }
}

/// The hash to write, from `-H` and the cost options.
fn scheme(args: &PasswdArgs) -> Result<Scheme, CmdError> {
    if args.hash != "argon2id" && (args.memory.is_some() || args.parallelism.is_some()) {
        return Err(CmdError::Usage("--memory and --parallelism apply to -H argon2id only".into()));
    }
    if args.hash == "sha512-pbkdf2" {
        return Ok(Scheme::MosquittoPbkdf2 { iterations: args.iterations.unwrap_or(DEFAULT_PBKDF2_ITERATIONS) });
    }
    if args.hash == "scram-sha-256" {
        return Ok(Scheme::ScramSha256 { iterations: args.iterations.unwrap_or(DEFAULT_SCRAM_ITERATIONS) });
    }
    let d = HashParams::default();
    Ok(Scheme::Argon2id(HashParams {
        memory_kib: args.memory.unwrap_or(d.memory_kib),
        iterations: args.iterations.unwrap_or(d.iterations),
        parallelism: args.parallelism.unwrap_or(d.parallelism),
    }))
}

/// Runs `moth passwd`.
pub fn run(args: &PasswdArgs) -> Result<(), CmdError> {
    let scheme = scheme(args)?;
    let file = args.file.display().to_string();
    if args.upgrade {
        let _lock = lock_dir(&args.file)?;
        expect_positionals(args, 0, "-U takes FILE only")?;
        let text = read(&args.file)?;
        let new = passwd::upgrade(&text, |pw| scheme.hash(pw))
            .map_err(|source| CmdError::Edit { file: file.clone(), source })?;
        return write(&args.file, &new);
    }
    let Some(user) = args.user.as_deref() else {
        return Err(CmdError::Usage("USER is missing (see `moth passwd --help`)".into()));
    };
    passwd::validate_user(user).map_err(CmdError::Invalid)?;
    if args.delete {
        expect_positionals(args, 1, "-D takes FILE USER")?;
        let _lock = lock_dir(&args.file)?;
        let text = read(&args.file)?;
        let new = passwd::delete_user(&text, user).map_err(|source| CmdError::Edit { file: file.clone(), source })?;
        return write(&args.file, &new);
    }
    let password = if args.batch {
        args.password.clone().ok_or_else(|| CmdError::Usage("-b takes FILE USER PASSWORD".into()))?
    } else {
        expect_positionals(args, 1, "PASSWORD is given with -b only; without it the password is asked")?;
        ask_password()?
    };
    // Before hashing: a missing file is reported without a 40 ms wait.
    let _lock = lock_dir(&args.file)?;
    let text = if args.create { String::new() } else { read(&args.file)? };
    let hash = scheme.hash(&password).map_err(CmdError::Invalid)?;
    write(&args.file, &passwd::set_user(&text, user, &hash))
}

/// Refuses more positional arguments than the form takes.
fn expect_positionals(args: &PasswdArgs, after_file: usize, form: &str) -> Result<(), CmdError> {
    let given = usize::from(args.user.is_some()) + usize::from(args.password.is_some());
    if given > after_file { Err(CmdError::Usage(format!("too many arguments: {form}"))) } else { Ok(()) }
}

/// Takes an exclusive lock on the file's directory, held until the new file
/// is in place, so two `moth passwd` runs on one file cannot lose each
/// other's edit (each reads, edits and renames). The directory, not the
/// file: the rename replaces the file's inode, and with it any lock on it.
fn lock_dir(path: &Path) -> Result<std::fs::File, CmdError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let fail = |source| CmdError::Lock { dir: dir.display().to_string(), source };
    let f = std::fs::File::open(dir).map_err(fail)?;
    f.lock().map_err(fail)?;
    Ok(f)
}

fn read(path: &Path) -> Result<String, CmdError> {
    std::fs::read_to_string(path).map_err(|source| CmdError::Read {
        file: path.display().to_string(),
        hint: if source.kind() == io::ErrorKind::NotFound { " (use -c to create it)" } else { "" },
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), CmdError> {
    replace_file(path, text.as_bytes()).map_err(|source| CmdError::Write { file: path.display().to_string(), source })
}

/// The password, asked twice without echo on a terminal. Without one
/// (scripts, tests), the first line of standard input; a second line, when
/// there is one, is the confirmation and must match.
fn ask_password() -> Result<String, CmdError> {
    if io::stdin().is_terminal() {
        let first = prompt_password("Password: ").map_err(CmdError::Prompt)?;
        let second = prompt_password("Reenter password: ").map_err(CmdError::Prompt)?;
        return if first == second { Ok(first) } else { Err(CmdError::Mismatch) };
    }
    let mut lines = io::stdin().lock().lines();
    let first = match lines.next() {
        Some(line) => line.map_err(CmdError::Prompt)?,
        None => return Err(CmdError::NoPassword),
    };
    let first = first.trim_end_matches('\r').to_string();
    if let Some(second) = lines.next() {
        let second = second.map_err(CmdError::Prompt)?;
        if second.trim_end_matches('\r') != first {
            return Err(CmdError::Mismatch);
        }
    }
    Ok(first)
}
