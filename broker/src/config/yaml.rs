//! Reading YAML text: the two passes over a file (the position tree, then
//! the typed schema), serde-saphyr's options, and turning its type errors
//! into messages about a key.

use std::collections::HashSet;

use serde_saphyr::{MessageFormatter, UserMessageFormatter};

use super::diagnostics::{ConfigError, Ctx, Diagnostic, Spot, one_line};
use super::hbmqtt;
use super::keys::{expectation, unknown_keys};
use super::position::{Index, Node, NodeKind, Position, Seg, child, display_path};
use super::resolve::resolve;
use super::schema::ConfigFile;
use super::types::Config;

/// Which of the two reads of a file the options are for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// The position tree: sees every key, repeated ones too.
    Tree,
    /// The typed schema: a repeated key keeps its last value, as in PyYAML.
    Typed,
}

/// serde-saphyr options: YAML 1.1 booleans and repeated keys as PyYAML
/// reads them (`hbmqtt.rs`), and a budget far above any real configuration,
/// against YAML bombs.
fn yaml_options(pass: Pass) -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 200_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_depth: 32,
            max_documents: 1,
            max_nodes: 100_000,
            max_total_scalar_bytes: 4 * 1024 * 1024,
            max_merge_keys: 1_000,
            max_recorded_anchor_events: 100_000,
            max_recorded_anchor_bytes: 1024 * 1024,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
        },
        strict_booleans: hbmqtt::STRICT_BOOLEANS,
        duplicate_keys: match pass {
            Pass::Tree => serde_saphyr::DuplicateKeyPolicy::PassThrough,
            Pass::Typed => hbmqtt::REPEATED_KEYS,
        },
        // Lets the tree read `~:` as a key; typed strings still refuse null.
        null_as_string: pass == Pass::Tree,
        // The tree only shows values; `.inf` is checked by the typed pass.
        non_finite_float_policy: match pass {
            Pass::Tree => serde_saphyr::NonFiniteFloatPolicy::AsString,
            Pass::Typed => serde_saphyr::NonFiniteFloatPolicy::Reject,
        },
        with_snippet: false,
    }
}

/// The first tab at or after `from` (1-based line and column), as a
/// position.
fn first_tab_from(text: &str, from: Position) -> Option<Position> {
    for (n, line) in text.lines().enumerate().skip(usize::try_from(from.line).ok()?.saturating_sub(1)) {
        let line_no = n as u64 + 1;
        let skip = if line_no == from.line { usize::try_from(from.column).ok()?.saturating_sub(1) } else { 0 };
        if let Some(col) = line.chars().skip(skip).position(|c| c == '\t') {
            return Some(Position { line: line_no, column: (skip + col) as u64 + 1 });
        }
    }
    None
}

fn saphyr_message(err: &serde_saphyr::Error) -> String {
    one_line(&UserMessageFormatter.format_message(err))
}

pub(super) fn parse_yaml(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let loaded = load_yaml(text, origin)?;
    let mut ctx = Ctx::new(origin, Some(&loaded.index));
    ctx.warnings = loaded.warnings;
    resolve(loaded.raw, &mut ctx)
}

/// A file read into the raw schema, with its positions and key warnings.
pub(super) struct Loaded {
    pub(super) raw: ConfigFile,
    pub(super) index: Index,
    pub(super) warnings: Vec<String>,
}

pub(super) fn load_yaml(text: &str, origin: &str) -> Result<Loaded, ConfigError> {
    // 1. A generic tree with the position of every key and value. Any YAML
    //    parses into it, so YAML syntax errors surface here.
    let tree: Option<Node> = serde_saphyr::from_str_with_options(text, yaml_options(Pass::Tree)).map_err(|err| {
        let message = saphyr_message(&err);
        let mut position = err.location().and_then(Position::from_location);
        if message.contains("found a tab") {
            // The scanner reports where the scalar it was reading began;
            // the user needs the tab itself.
            position = position.map(|at| first_tab_from(text, at).unwrap_or(at));
        }
        ConfigError::Syntax(Diagnostic { origin: origin.to_owned(), position, key: String::new(), message })
    })?;
    let index = Index::build(tree.as_ref(), text);
    // 2. The typed schema. Its errors are type errors; the tree turns their
    //    position back into a key path.
    let raw: Option<ConfigFile> = serde_saphyr::from_str_with_options(text, yaml_options(Pass::Typed))
        .map_err(|err| type_error(&err, &index, origin))?;
    let mut ctx = Ctx::new(origin, Some(&index));
    if let Some(root) = &tree {
        repeated_keys(root, &[], &mut ctx);
    }
    unknown_keys(tree.as_ref(), &mut ctx);
    let warnings = ctx.warnings;
    Ok(Loaded { raw: raw.unwrap_or_default(), index, warnings })
}

fn type_error(err: &serde_saphyr::Error, index: &Index, origin: &str) -> ConfigError {
    use serde_saphyr::Error as E;
    let mut position = err.location().and_then(Position::from_location);
    let mut key = String::new();
    let mut message = saphyr_message(err);
    // Errors raised through serde's error constructors (by a visitor such as
    // the one of `ssl`) are about a value, but serde-saphyr places them on the
    // value's key.
    let from_visitor = matches!(
        err.without_snippet(),
        E::Message { .. } | E::SerdeInvalidType { .. } | E::SerdeInvalidValue { .. } | E::SerdeUnknownVariant { .. }
    );
    let (on_value, on_key) = position.map_or((None, None), |p| index.entries_at(p));
    // A mapping starts where its first key does. A structural mismatch there
    // ("expected a scalar") is about the mapping; anything else is about the key.
    let chosen = match (on_value, on_key) {
        (Some(v), Some(k)) => {
            if matches!(err.without_snippet(), E::Unexpected { .. }) {
                Some((v, true))
            } else {
                Some((k, from_visitor))
            }
        }
        (Some(v), None) => Some((v, true)),
        (None, Some(k)) => Some((k, from_visitor)),
        (None, None) => None,
    };
    if let Some((entry, about_value)) = chosen {
        key = display_path(&entry.path);
        if about_value && let Some(expected) = expectation(&entry.path) {
            message = format!("expected {expected}, found {}", entry.found);
            position = entry.value.or(position);
        }
    }
    ConfigError::Invalid(Diagnostic { origin: origin.to_owned(), position, key, message })
}

/// Warns about every key given twice in one mapping. PyYAML, and so hbmqtt,
/// silently keeps the last value (hbmqtt's own documented example repeats
/// `capath`); moth keeps it too but says so.
fn repeated_keys(node: &Node, base: &[Seg], ctx: &mut Ctx<'_>) {
    match &node.kind {
        NodeKind::Map(entries) => {
            let mut seen = HashSet::new();
            for (key, loc, value) in entries {
                let here = child(base, &key.0);
                if !seen.insert(key.0.as_str()) {
                    let spot =
                        Spot { key: display_path(&here), pos: Position::from_location(*loc), note: String::new() };
                    ctx.warn(&spot, "key given twice; the last value is used");
                }
                repeated_keys(value, &here, ctx);
            }
        }
        NodeKind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let mut here = base.to_vec();
                here.push(Seg::Index(i));
                repeated_keys(item, &here, ctx);
            }
        }
        NodeKind::Null | NodeKind::Scalar(_) => {}
    }
}
