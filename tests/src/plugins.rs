//! Plugin libraries for the tests: built once per test process with cargo
//! (the workspace's plugin crates, the compatibility fixtures and the
//! template), into their own target dir (`target/plugin-tests`) so the
//! nested build never waits on the outer `cargo test`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

fn cargo_build(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = workspace_root();
    let target = root.join("target/plugin-tests");
    let status = Command::new(cargo)
        .current_dir(&root)
        .arg("build")
        .arg("--quiet")
        .args(args)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build {args:?} failed");
}

/// Builds every plugin library the tests use (once) and returns the
/// directory that holds them.
pub fn built_plugins() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        cargo_build(&[
            "-p",
            "moth-auth-allowlist",
            "-p",
            "moth-auth-scram",
            "-p",
            "moth-auth-http",
            "-p",
            "scripted-a",
            "-p",
            "scripted-b",
            "-p",
            "foreign",
        ]);
        cargo_build(&["--manifest-path", "tests/fixtures/api-1.0/Cargo.toml"]);
        // Separately: the two need the 2.0 interface with different features.
        cargo_build(&["--manifest-path", "tests/fixtures/api-2.0/Cargo.toml", "-p", "from-the-future"]);
        cargo_build(&["--manifest-path", "tests/fixtures/api-2.0/Cargo.toml", "-p", "layout-mismatch"]);
        cargo_build(&["--manifest-path", "examples/auth-plugin-template/Cargo.toml"]);
        workspace_root().join("target/plugin-tests/debug")
    })
}

/// The built library of a crate (`lib<crate_name>.so`).
pub fn library(crate_name: &str) -> PathBuf {
    let p = built_plugins().join(format!("lib{crate_name}.so"));
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// A private plugin directory, removed when dropped.
pub struct PluginDir {
    pub path: PathBuf,
}

impl PluginDir {
    /// A new directory holding copies of the given crates' libraries.
    pub fn with(crates: &[&str]) -> PluginDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "moth-plugin-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create plugin dir");
        let dir = PluginDir { path };
        for c in crates {
            dir.add(c, None);
        }
        dir
    }

    /// Copies a crate's library in, under its own file name or `as_name`.
    pub fn add(&self, crate_name: &str, as_name: Option<&str>) -> PathBuf {
        let src = library(crate_name);
        let dst = self.path.join(as_name.map_or_else(|| format!("lib{crate_name}.so"), String::from));
        // Replace, not overwrite in place: a loaded library must not change under the broker.
        let _ = std::fs::remove_file(&dst);
        std::fs::copy(&src, &dst).expect("copy plugin library");
        dst
    }

    /// The YAML line that points the broker at this directory.
    pub fn yaml(&self) -> String {
        format!("plugins-dir: '{}'\n", self.path.display())
    }
}

impl Drop for PluginDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
