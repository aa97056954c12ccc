//! `auth_file` (also `auth.file`): users and password hashes from the file
//! named by `auth.password-file`, hbmqtt's format: one `user:hash` per line,
//! `#` starts a comment line, blank lines are skipped.
//!
//! Formats ([`hash`]): `$argon2id$` PHC strings, `$6$`/`$5$` Unix sha-crypt
//! (hbmqtt, passlib, `mkpasswd`), Mosquitto `$6$` (salted SHA-512) and `$7$`
//! (PBKDF2-SHA512). A broken line is a warning with `file:line` at load
//! ([`users`]); the rest of the file loads and that user cannot log in.
//!
//! Answers: a listed user with the right password is allowed; with a wrong
//! password, or **no password at all** (MQTT allows a user name without a
//! password; a listed user must prove who they are), `BAD_CREDENTIALS`
//! (CONNACK 4); a user not in the file gets `BAD_CREDENTIALS` too, as in
//! hbmqtt and amqtt (`plugins-config.auth_file.unknown-users: ignore` leaves
//! it to the rest of the chain instead, see [`options`]); a client without
//! user name gets no opinion. An unknown user's password is still verified
//! against a hash of the same kind and cost as the file's, so unknown user
//! and wrong password take the same time. A password longer than
//! `max-password-bytes` (1 KiB) is refused before any hash is computed.
//!
//! The file is re-read when its size, mtime or inode changes (checked at most
//! once a second, from `authenticate`) and on SIGHUP (the broker rebuilds its
//! plugins). A new file that cannot be read keeps the users loaded before.
//! A file readable by group or others is warned about, once per file and
//! mode (not again on every reload). Passwords and hashes are never logged.
//!
//! Successful logins are remembered for a minute ([`cache`], keyed by an
//! HMAC so the password is never stored): a reconnect storm does not re-run
//! a slow hash for every client.
//!
//! Verifying a hash takes up to tens of milliseconds of CPU: the broker calls
//! this plugin on its blocking pool, never on a network thread. Argon2 checks
//! work in at most one reusable buffer per CPU ([`memory`]), so the plugin's
//! memory stays bounded whatever the number of threads calling it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use moth_plugin_api::std_types::RStr;
use moth_plugin_api::{AuthRequest, Capabilities, Decision, LogLevel, Plugin};

pub mod cache;
pub mod hash;
pub mod mapped;
pub mod memory;
pub mod options;
pub mod users;

use cache::SuccessCache;
use memory::BlockPool;
pub use options::{Options, UnknownUsers};
use users::{Entry, Users};

/// The broker's log callback (`HostContext::log`'s type).
pub type LogFn = extern "C" fn(LogLevel, RStr<'_>, RStr<'_>);

/// How often `authenticate` may look at the file's metadata.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The `auth_file` plugin: checks passwords against an hbmqtt, amqtt or
/// Mosquitto password file, re-read when the file changes.
pub struct PasswordFile {
    users: RwLock<Arc<Users>>,
    watch: Option<Watch>,
    log: LogFn,
    /// Recent successful logins (see [`cache`]); `None` without randomness.
    cache: Option<SuccessCache>,
    /// Hash verifications run so far, dummy ones included.
    checks: AtomicU64,
    /// The working memory of argon2 checks, reused from call to call.
    memory: BlockPool,
    /// `plugins-config.auth_file` ([`options`]).
    options: Options,
}

/// The file on disk and what it looked like when last read.
struct Watch {
    path: PathBuf,
    state: Mutex<WatchState>,
}

struct WatchState {
    checked: Instant,
    stamp: Option<Stamp>,
}

/// What changes when a file is rewritten in place or replaced by rename.
#[derive(PartialEq, Eq, Clone, Copy)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp { len: m.len(), modified: m.modified().ok(), inode })
}

/// A log callback for callers without a broker (tests, tools): stderr.
pub extern "C" fn stderr_log(level: LogLevel, plugin: RStr<'_>, message: RStr<'_>) {
    eprintln!("[{plugin} {}] {message}", level.0);
}

impl PasswordFile {
    /// The name configurations use in `auth.plugins`.
    pub const NAME: &'static str = "auth_file";

    /// Reads the file; only an unreadable file is an error (one line naming
    /// it). Broken lines and loose permissions are warnings through `log`.
    pub fn load(path: &Path, log: LogFn) -> Result<PasswordFile, String> {
        let stamp = stamp(path);
        let users = read(path, log)?;
        let file = PasswordFile {
            users: RwLock::new(Arc::new(users)),
            watch: Some(Watch {
                path: path.to_path_buf(),
                state: Mutex::new(WatchState { checked: Instant::now(), stamp }),
            }),
            log,
            cache: SuccessCache::new(),
            checks: AtomicU64::new(0),
            memory: BlockPool::per_cpu(),
            options: Options::default(),
        };
        file.warn_if_readable_by_others(path);
        Ok(file)
    }

    /// A password file from text, not watched; `origin` names it in warnings.
    pub fn parse(text: &str, origin: &str, log: LogFn) -> PasswordFile {
        let (users, warnings) = Users::parse(text, origin);
        for w in warnings {
            emit(log, LogLevel::WARN, &w);
        }
        PasswordFile {
            users: RwLock::new(Arc::new(users)),
            watch: None,
            log,
            cache: SuccessCache::new(),
            checks: AtomicU64::new(0),
            memory: BlockPool::per_cpu(),
            options: Options::default(),
        }
    }

    /// The same file with other options ([`options`]).
    pub fn with_options(mut self, options: Options) -> PasswordFile {
        self.options = options;
        self
    }

    /// How many users can log in.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    /// Whether no user can log in.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn current(&self) -> Arc<Users> {
        self.users.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Warns about a file readable by group or others, once per file and
    /// mode: the broker builds a new plugin on every SIGHUP, and the same
    /// warning on every reload would only be noise. The memory of what was
    /// warned about is per process (a `static`), so it outlives instances.
    #[cfg(unix)]
    fn warn_if_readable_by_others(&self, path: &Path) {
        use std::collections::HashMap;
        use std::os::unix::fs::PermissionsExt;
        static WARNED: Mutex<Option<HashMap<PathBuf, u32>>> = Mutex::new(None);
        if let Ok(m) = std::fs::metadata(path) {
            let mode = m.permissions().mode() & 0o777;
            let mut warned = WARNED.lock().unwrap_or_else(PoisonError::into_inner);
            let warned = warned.get_or_insert_with(HashMap::new);
            if mode & 0o044 == 0 {
                warned.remove(path);
            } else if warned.insert(path.to_path_buf(), mode) != Some(mode) {
                emit(
                    self.log,
                    LogLevel::WARN,
                    &format!(
                        "{}: password file is readable by group or others (mode {mode:o}); `chmod 600` it",
                        path.display()
                    ),
                );
            }
        }
    }

    #[cfg(not(unix))]
    fn warn_if_readable_by_others(&self, _path: &Path) {}

    /// Re-reads the file if it changed since the last look, at most once per
    /// [`CHECK_EVERY`]; a concurrent caller skips the check rather than wait.
    fn refresh(&self) {
        let Some(watch) = &self.watch else { return };
        let Ok(mut state) = watch.state.try_lock() else { return };
        if state.checked.elapsed() < CHECK_EVERY {
            return;
        }
        state.checked = Instant::now();
        let now = stamp(&watch.path);
        if now == state.stamp {
            return;
        }
        state.stamp = now;
        match read(&watch.path, self.log) {
            Ok(users) => {
                self.warn_if_readable_by_others(&watch.path);
                let n = users.len();
                *self.users.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(users);
                if let Some(c) = &self.cache {
                    c.clear();
                }
                emit(
                    self.log,
                    LogLevel::INFO,
                    &format!("{}: changed on disk, reloaded {n} users", watch.path.display()),
                );
            }
            Err(e) => emit(
                self.log,
                LogLevel::WARN,
                &format!("{e}; keeping the {} users loaded before", self.current().len()),
            ),
        }
    }
}

/// The file as written and, when relative, where it resolved to (the
/// working directory, as for every path of the configuration).
fn shown(path: &Path) -> String {
    match std::path::absolute(path) {
        Ok(abs) if !path.is_absolute() => format!("{} ({})", path.display(), abs.display()),
        _ => path.display().to_string(),
    }
}

/// Reads and parses the file, logging its warnings.
fn read(path: &Path, log: LogFn) -> Result<Users, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", shown(path)))?;
    let (users, warnings) = Users::parse(&text, &path.display().to_string());
    for w in warnings {
        emit(log, LogLevel::WARN, &w);
    }
    Ok(users)
}

fn emit(log: LogFn, level: LogLevel, message: &str) {
    log(level, RStr::from_str(PasswordFile::NAME), RStr::from_str(message));
}

impl Plugin for PasswordFile {
    fn capabilities(&self) -> Capabilities {
        // Every check hashes: argon2 takes tens of MiB and all of a core.
        Capabilities::AUTHENTICATE | Capabilities::CPU_BOUND_AUTHENTICATE
    }

    fn authenticate(&self, request: &AuthRequest<'_>) -> Decision {
        let Some(user) = request.username() else { return Decision::ignore() };
        // Before the lookup, so a listed and an unknown user are refused alike
        // and no hash ever sees such a password (sha-crypt's cost grows with
        // the square of its length).
        if let Some(password) = request.password()
            && password.len() > self.options.max_password_bytes
        {
            return Decision::bad_credentials(format!(
                "password of `{user}` is {} bytes, longer than max-password-bytes ({})",
                password.len(),
                self.options.max_password_bytes
            ));
        }
        self.refresh();
        let users = self.current();
        match (users.get(user), request.password()) {
            (Entry::Unknown, password) => {
                if let Some(password) = password {
                    self.checks.fetch_add(1, Ordering::Relaxed);
                    users.burn(password, &self.memory);
                }
                match self.options.unknown_users {
                    UnknownUsers::Deny => Decision::bad_credentials(format!("unknown user `{user}`")),
                    UnknownUsers::Ignore => Decision::ignore(),
                }
            }
            (_, None) => Decision::bad_credentials(format!("no password for `{user}`")),
            (Entry::Disabled, Some(password)) => {
                self.checks.fetch_add(1, Ordering::Relaxed);
                users.burn(password, &self.memory);
                Decision::bad_credentials(format!("`{user}` cannot log in: its line in the password file is broken"))
            }
            (Entry::Hash(hash), Some(password)) => {
                if self.cache.as_ref().is_some_and(|c| c.hit(user, password)) {
                    return Decision::allow();
                }
                self.checks.fetch_add(1, Ordering::Relaxed);
                match hash.verify(password, &self.memory) {
                    true => {
                        if let Some(c) = &self.cache {
                            c.remember(user, password);
                        }
                        Decision::allow()
                    }
                    false => Decision::bad_credentials(format!("wrong password for `{user}`")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    use moth_plugin_api::std_types::RStr;

    /// A cheap argon2id hash, as a test fixture should be.
    fn hash(password: &str) -> String {
        let params = Params::new(256, 1, 1, None).unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(password.as_bytes(), b"saltsaltsaltsalt")
            .unwrap()
            .to_string()
    }

    fn req<'a>(user: Option<&'a str>, password: Option<&'a [u8]>) -> AuthRequest<'a> {
        AuthRequest::new_for_test("c", user, password)
    }

    static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

    extern "C" fn capture(_level: LogLevel, _plugin: RStr<'_>, message: RStr<'_>) {
        LOG.lock().unwrap().push(message.to_string());
    }

    /// Logged lines mentioning `origin` (tests run in parallel).
    fn logged(origin: &str) -> Vec<String> {
        LOG.lock().unwrap().iter().filter(|l| l.contains(origin)).cloned().collect()
    }

    const BAD: moth_plugin_api::DecisionKind = moth_plugin_api::DecisionKind::BAD_CREDENTIALS;

    /// The host bounds a CPU-bound plugin to one call per CPU; a hash
    /// check must say it is one.
    #[test]
    fn declares_its_checks_cpu_bound() {
        let f = PasswordFile::parse("", "caps-passwd", capture);
        let caps = f.capabilities();
        assert!(caps.contains(Capabilities::AUTHENTICATE | Capabilities::CPU_BOUND_AUTHENTICATE), "{caps:?}");
    }

    #[test]
    fn argon2id_users() {
        let text = format!("# users\n\nalice:{}\nbob:{}\n", hash("wonderland"), hash("builder"));
        let f = PasswordFile::parse(&text, "argon-passwd", capture);
        assert_eq!(f.len(), 2);
        assert!(f.authenticate(&req(Some("alice"), Some(b"wonderland"))).is_allow());
        assert_eq!(f.authenticate(&req(Some("alice"), Some(b"builder"))).kind, BAD);
        // A listed user without a password: refused, not left to the chain.
        assert_eq!(f.authenticate(&req(Some("bob"), None)).kind, BAD);
        // Not in the file: refused, as hbmqtt and amqtt refuse it.
        assert_eq!(f.authenticate(&req(Some("carol"), Some(b"x"))).kind, BAD);
        assert_eq!(f.authenticate(&req(Some("carol"), None)).kind, BAD);
        assert!(f.authenticate(&req(None, None)).is_ignore());
        assert!(logged("argon-passwd").is_empty());
    }

    #[test]
    fn every_format_in_one_file() {
        let text = "test:$6$l4zQEHEcowc1Pnv4$HHrh8xnsZoLItQ8BmpFHM4r6q5UqK3DnXp2GaTm5zp5buQ7NheY3Xt9f6godVKbEtA.hOC7IEDwnok3pbAOip.
user6:$6$AAECAwQFBgcICQoL$JqsxEv/ucyxjA5DKsQ+Y8CDWaQDNQI9FpAkmfwAqWfwZLk/JEGgM0EpylrJHAZKKyFQjJeZ3nFaHjPzOzPPmPw==
user7:$7$101$AAECAwQFBgcICQoL$Xr99N9ym9ys8TWxis5ajETJq6EVYzmc6nb8t3pUYnPBbCAbICS4xejTltonXWCtJNBvA+By+TXUqU6qCblO00w==
";
        let f = PasswordFile::parse(&format!("{text}argon:{}\n", hash("pw")), "all-passwd", capture);
        assert_eq!(f.len(), 4);
        for (user, good) in [("test", "test"), ("user6", "secret"), ("user7", "secret"), ("argon", "pw")] {
            assert!(f.authenticate(&req(Some(user), Some(good.as_bytes()))).is_allow(), "{user}");
            assert_eq!(f.authenticate(&req(Some(user), Some(b"wrong"))).kind, BAD, "{user}");
        }
    }

    #[test]
    fn broken_lines_are_warnings_with_file_and_line_and_those_users_cannot_log_in() {
        let text = format!(
            "# c\nalice\nbob:$2b$10$xyz\ncarol:$argon2id$nonsense\ndan:secret\nok:{}\nok:{}\nfine:{}\n",
            hash("a"),
            hash("b"),
            hash("fine")
        );
        let f = PasswordFile::parse(&text, "broken-passwd", capture);
        let log = logged("broken-passwd");
        assert_eq!(log.len(), 5, "{log:?}");
        assert_eq!(log[0], "broken-passwd:2: expected `user:hash`; line skipped");
        assert!(log[1].starts_with("broken-passwd:3: user `bob`: unknown hash scheme $2b$"), "{}", log[1]);
        assert!(log[2].starts_with("broken-passwd:4: user `carol`: malformed $argon2id$ hash"), "{}", log[2]);
        assert!(log[3].starts_with("broken-passwd:5: user `dan`: plain-text password"), "{}", log[3]);
        assert!(log[4].starts_with("broken-passwd:7: user `ok` is listed twice"), "{}", log[4]);
        assert!(!log.iter().any(|l| l.contains("secret") || l.contains("$argon2id$v=")), "{log:?}");
        assert!(f.authenticate(&req(Some("fine"), Some(b"fine"))).is_allow());
        for (user, pw) in [("bob", "x"), ("carol", "x"), ("dan", "secret"), ("ok", "a"), ("ok", "b")] {
            assert_eq!(f.authenticate(&req(Some(user), Some(pw.as_bytes()))).kind, BAD, "{user}");
        }
    }

    /// Unknown users pay for a verification too, against a hash of the same
    /// kind and cost as the file's users, so their answer takes as long as a
    /// wrong password's. Counted, not timed: timings on shared CPUs are noise.
    #[test]
    fn unknown_user_costs_like_a_wrong_password() {
        let costly = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 2, 1, None).unwrap())
            .hash_password_with_salt(b"pw", b"saltsaltsaltsalt")
            .unwrap()
            .to_string();
        let f = PasswordFile::parse(&format!("alice:{costly}\n"), "timing-passwd", capture);
        let checks_for = |user: Option<&str>, password: Option<&[u8]>| {
            let before = f.checks.load(Ordering::Relaxed);
            f.authenticate(&req(user, password));
            f.checks.load(Ordering::Relaxed) - before
        };
        assert_eq!(checks_for(Some("alice"), Some(b"nope")), 1, "a wrong password is one hash check");
        assert_eq!(checks_for(Some("mallory"), Some(b"nope")), 1, "an unknown user is one hash check too");
        assert_eq!(checks_for(None, None), 0, "no user name: no hash check");
        let users = f.current();
        let (Entry::Hash(alice), Some(dummy)) = (users.get("alice"), users.dummy()) else { panic!("alice is listed") };
        assert!(dummy == alice, "the dummy is a hash of the same kind and cost");
    }

    #[test]
    fn a_repeated_success_is_answered_from_the_cache() {
        let costly = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 2, 1, None).unwrap())
            .hash_password_with_salt(b"pw", b"saltsaltsaltsalt")
            .unwrap()
            .to_string();
        let f = PasswordFile::parse(&format!("alice:{costly}\n"), "cache-passwd", capture);
        let checks = || f.checks.load(Ordering::Relaxed);
        assert!(f.authenticate(&req(Some("alice"), Some(b"pw"))).is_allow());
        assert_eq!(checks(), 1, "the first login runs the hash");
        assert!(f.authenticate(&req(Some("alice"), Some(b"pw"))).is_allow());
        assert_eq!(checks(), 1, "the repeated login is answered from the cache, with no hash check");
        // A wrong password is never answered from the cache.
        assert_eq!(f.authenticate(&req(Some("alice"), Some(b"pW"))).kind, BAD);
        assert_eq!(checks(), 2);
    }

    /// Whatever the host does (here 16 threads at once, no call limit), the
    /// plugin never holds more argon2 buffers than CPUs, and every answer is
    /// still right.
    #[test]
    fn concurrent_callers_share_at_most_one_buffer_per_cpu() {
        let f = Arc::new(PasswordFile::parse(&format!("alice:{}\n", hash("pw")), "pool-passwd", capture));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let f = f.clone();
                std::thread::spawn(move || {
                    for j in 0..8 {
                        // Wrong passwords: never answered from the cache, always a hash check.
                        let pw = format!("wrong-{i}-{j}");
                        assert_eq!(f.authenticate(&req(Some("alice"), Some(pw.as_bytes()))).kind, BAD);
                        assert_eq!(f.authenticate(&req(Some("mallory"), Some(b"pw"))).kind, BAD);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(f.checks.load(Ordering::Relaxed), 16 * 8 * 2);
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        assert!(f.memory.peak() <= cpus, "{} buffers at once for {cpus} CPUs", f.memory.peak());
        assert_eq!(f.memory.created(), 1, "after the storm, one buffer is kept");
    }

    #[test]
    fn reloads_when_the_file_changes_and_keeps_users_when_it_breaks() {
        let dir = std::env::temp_dir().join(format!("moth-auth-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("passwd");
        std::fs::write(&path, format!("alice:{}\n", hash("one"))).unwrap();
        let f = PasswordFile::load(&path, capture).unwrap();
        assert!(f.authenticate(&req(Some("alice"), Some(b"one"))).is_allow());
        let wait_for = |pw: &[u8], want_allow: bool| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while f.authenticate(&req(Some("alice"), Some(pw))).is_allow() != want_allow {
                assert!(Instant::now() < deadline, "file change not picked up");
                std::thread::yield_now();
            }
        };
        std::fs::write(&path, format!("# new\nalice:{}\n", hash("two"))).unwrap();
        wait_for(b"two", true);
        assert_eq!(f.authenticate(&req(Some("alice"), Some(b"one"))).kind, BAD);
        // Replaced by something unreadable: old users stay, the log says why.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !logged(&path.display().to_string()).iter().any(|l| l.contains("keeping the 1 users")) {
            assert!(Instant::now() < deadline, "no warning about the broken file");
            f.authenticate(&req(Some("alice"), Some(b"two")));
        }
        assert!(f.authenticate(&req(Some("alice"), Some(b"two"))).is_allow());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn warns_when_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("moth-auth-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (open, tight) = (dir.join("open"), dir.join("tight"));
        for (p, mode) in [(&open, 0o644), (&tight, 0o600)] {
            std::fs::write(p, format!("alice:{}\n", hash("x"))).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
            PasswordFile::load(p, capture).unwrap();
        }
        let warned =
            |p: &Path| logged(&p.display().to_string()).iter().any(|l| l.contains("readable by group or others"));
        assert!(warned(&open));
        assert!(!warned(&tight));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The broker builds a new plugin on every SIGHUP: the warning comes
    /// once per file and mode, not once per load.
    #[cfg(unix)]
    #[test]
    fn the_readable_warning_comes_once_per_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("moth-auth-perm-once-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("passwd");
        std::fs::write(&path, format!("alice:{}\n", hash("x"))).unwrap();
        let warnings =
            || logged(&path.display().to_string()).iter().filter(|l| l.contains("readable by group")).count();
        let load_with = |mode: u32| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            PasswordFile::load(&path, capture).unwrap();
            warnings()
        };
        assert_eq!(load_with(0o644), 1);
        assert_eq!(load_with(0o644), 1, "a reload of the same file and mode: no new warning");
        assert_eq!(load_with(0o640), 2, "another loose mode: warned again");
        assert_eq!(load_with(0o600), 2, "tight: no warning");
        assert_eq!(load_with(0o644), 3, "loosened again: warned again");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_users_ignore_leaves_them_to_the_chain() {
        let options = Options { unknown_users: UnknownUsers::Ignore, ..Options::default() };
        let f = PasswordFile::parse(&format!("alice:{}\n", hash("pw")), "ignore-passwd", capture).with_options(options);
        assert!(f.authenticate(&req(Some("carol"), Some(b"x"))).is_ignore());
        assert!(f.authenticate(&req(Some("carol"), None)).is_ignore());
        assert_eq!(f.authenticate(&req(Some("alice"), Some(b"nope"))).kind, BAD, "listed users are still checked");
    }

    /// A password over `max-password-bytes` is refused without a hash check,
    /// for listed and unknown users alike; one at the limit is checked.
    /// Counted, not timed (the cost it avoids is sha-crypt's, quadratic in
    /// the length: about 13 s of CPU for 64 KiB).
    #[test]
    fn long_passwords_are_refused_before_hashing() {
        let text = "test:$6$l4zQEHEcowc1Pnv4$HHrh8xnsZoLItQ8BmpFHM4r6q5UqK3DnXp2GaTm5zp5buQ7NheY3Xt9f6godVKbEtA.hOC7IEDwnok3pbAOip.\n";
        let f = PasswordFile::parse(text, "long-passwd", capture)
            .with_options(Options { max_password_bytes: 16, ..Options::default() });
        let checks = || f.checks.load(Ordering::Relaxed);
        let long = [b'x'; 65535];
        for user in ["test", "mallory"] {
            let d = f.authenticate(&req(Some(user), Some(&long)));
            assert_eq!(d.kind, BAD, "{user}");
            assert!(d.reason.as_str().contains("max-password-bytes"), "{user}: {}", d.reason.as_str());
        }
        assert_eq!(checks(), 0, "no hash computed for an over-long password");
        assert_eq!(f.authenticate(&req(Some("test"), Some(&[b'x'; 16]))).kind, BAD);
        assert_eq!(checks(), 1, "a password at the limit is checked");
        assert!(f.authenticate(&req(Some("test"), Some(b"test"))).is_allow());
        let default = PasswordFile::parse(text, "long-passwd", capture);
        assert_eq!(default.authenticate(&req(Some("test"), Some(&[b'x'; 1025]))).kind, BAD);
        assert_eq!(default.checks.load(Ordering::Relaxed), 0, "1 KiB by default");
    }
}
