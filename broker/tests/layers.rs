//! The broker's layers, checked: every `crate::` path in `broker/src` must
//! name a module of the same layer or one below it. The protocol layer is a
//! crate of its own (`broker/protocol`), so the compiler already keeps tokio
//! and the broker out of it; this test keeps the order of the rest.
//!
//! The order (lib.rs says what each holds): protocol, then config and
//! counters, the store, sessions, routing, the plugin host, access control, the shared
//! state, transports, the server and observability, the embeddable broker,
//! the command line.

use std::path::{Path, PathBuf};

/// Top-level module -> layer; a module may use its own layer and lower ones.
const LAYERS: &[(&str, u8)] = &[
    ("packet", 1),
    ("codec", 1),
    ("topic", 1),
    ("message", 1),
    // Poison-tolerant locks, used by every layer above the protocol.
    ("lock", 2),
    // The shutdown signal every task holds.
    ("shutdown", 2),
    // Unit-test support only (`#[cfg(test)]`).
    ("testing", 2),
    ("config", 2),
    ("stats", 2),
    // What survives a restart: sessions and the router record into it.
    ("store", 3),
    ("session", 4),
    ("routing", 5),
    ("plugin_host", 6),
    ("access", 7),
    ("shared", 8),
    ("transport", 9),
    ("server", 10),
    ("observability", 10),
    ("broker", 11),
    ("cli", 12),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read broker/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a source file belongs to: its first path component under
/// `src`, without `.rs`. `lib.rs` and `main.rs` are the crate roots.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut unknown = Vec::new();
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer(&module) else {
            unknown.push(module);
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            // Doc links are not imports.
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (i, _) in line.match_indices("crate::") {
                // `moth_protocol::` or another crate's path is not ours.
                if line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let used: String = line[i + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                match layer(&used) {
                    Some(l) if l <= own => {}
                    Some(l) => violations.push(format!(
                        "{}:{}: `{module}` (layer {own}) uses `crate::{used}` (layer {l})",
                        file.display(),
                        n + 1
                    )),
                    None => unknown.push(format!("{}:{}: crate::{used}", file.display(), n + 1)),
                }
            }
        }
    }
    assert!(unknown.is_empty(), "modules missing from LAYERS: {unknown:#?}");
    assert!(violations.is_empty(), "imports from a higher layer:\n{}", violations.join("\n"));
    assert!(files.len() > 40, "the walk found the sources ({} files)", files.len());
}

#[test]
fn the_protocol_crate_does_not_depend_on_a_runtime() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/Cargo.toml");
    let text = std::fs::read_to_string(manifest).expect("protocol manifest");
    let deps = text.split("[dependencies]").nth(1).expect("a dependencies table");
    for forbidden in ["tokio", "moth-plugin-api", "moth ="] {
        assert!(!deps.contains(forbidden), "moth-protocol depends on {forbidden}");
    }
}
