//! Where things are in a configuration file: a YAML tree that keeps the
//! position of every key and value, and the index of it by key path.
//!
//! serde does not tell a typed struct where its values were written, so the
//! file is read twice (`yaml.rs`): once into this generic tree, for
//! positions, and once into the schema. Errors and warnings look their
//! `line:column` up here by key path.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::diagnostics::one_line;

/// A 1-based line and column (in characters) in a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl Position {
    pub(super) fn from_location(loc: Location) -> Option<Position> {
        (loc.line() > 0).then(|| Position { line: loc.line(), column: loc.column() })
    }
}

/// Any YAML value with its position; used only to locate keys and values.
pub(super) struct Node {
    pub(super) loc: Location,
    pub(super) kind: NodeKind,
}

pub(super) enum NodeKind {
    Null,
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(KeyText, Location, Node)>),
}

/// A mapping key as text (numbers and booleans as written).
pub(super) struct KeyText(pub(super) String);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeKind>::deserialize(d)?;
        Ok(Node { loc: spanned.referenced, kind: spanned.value })
    }
}

impl<'de> Deserialize<'de> for NodeKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeKind;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar(v.to_string()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar(v.to_string()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar(v.to_owned()))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<NodeKind, E> {
        Ok(NodeKind::Scalar("<binary>".to_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        NodeKind::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        NodeKind::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeKind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key.value, key.referenced, value));
        }
        Ok(NodeKind::Map(entries))
    }
}

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText("~".to_owned()))
            }
            fn visit_none<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText("~".to_owned()))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

pub(super) fn path(keys: &[&str]) -> Vec<Seg> {
    keys.iter().map(|k| Seg::Key((*k).to_owned())).collect()
}

pub(super) fn child(base: &[Seg], key: &str) -> Vec<Seg> {
    let mut p = base.to_vec();
    p.push(Seg::Key(key.to_owned()));
    p
}

/// `listeners.my-tcp.bind`, `auth.plugins[1]`.
pub(super) fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&one_line(k));
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Every key and value of the file with its path and position.
pub(super) struct Entry {
    pub(super) path: Vec<Seg>,
    pub(super) key: Option<Position>,
    pub(super) value: Option<Position>,
    /// How the value reads in a message: "`lots`", "a mapping", ...
    pub(super) found: String,
}

#[derive(Default)]
pub(super) struct Index {
    entries: Vec<Entry>,
    by_path: HashMap<Vec<Seg>, usize>,
}

impl Index {
    pub(super) fn build(root: Option<&Node>, text: &str) -> Index {
        let mut index = Index::default();
        if let Some(root) = root {
            index.add(Vec::new(), None, root, text);
        }
        index
    }

    fn add(&mut self, path: Vec<Seg>, key: Option<Position>, node: &Node, text: &str) {
        let found = match &node.kind {
            NodeKind::Null => "an empty value".to_owned(),
            NodeKind::Map(_) => "a mapping".to_owned(),
            NodeKind::Seq(_) => "a list".to_owned(),
            NodeKind::Scalar(value) => {
                let span = node.loc.span();
                let source =
                    span.byte_offset().zip(span.byte_len()).filter(|&(_, len)| len > 0).and_then(|(start, len)| {
                        let start = usize::try_from(start).ok()?;
                        let end = start.checked_add(usize::try_from(len).ok()?)?;
                        text.get(start..end)
                    });
                format!("`{}`", one_line(source.unwrap_or(value)))
            }
        };
        self.by_path.insert(path.clone(), self.entries.len());
        self.entries.push(Entry { path: path.clone(), key, value: Position::from_location(node.loc), found });
        match &node.kind {
            NodeKind::Map(entries) => {
                for (k, kloc, v) in entries {
                    self.add(child(&path, &k.0), Position::from_location(*kloc), v, text);
                }
            }
            NodeKind::Seq(items) => {
                for (i, v) in items.iter().enumerate() {
                    let mut p = path.clone();
                    p.push(Seg::Index(i));
                    self.add(p, None, v, text);
                }
            }
            NodeKind::Null | NodeKind::Scalar(_) => {}
        }
    }

    /// The entry of the key or list item at `path`, if the file has one.
    pub(super) fn entry(&self, path: &[Seg]) -> Option<&Entry> {
        self.by_path.get(path).and_then(|&i| self.entries.get(i))
    }

    pub(super) fn key_pos(&self, path: &[Seg]) -> Option<Position> {
        self.entry(path).and_then(|e| e.key)
    }

    pub(super) fn value_pos(&self, path: &[Seg]) -> Option<Position> {
        self.entry(path).and_then(|e| e.value)
    }

    /// The entries whose value, and whose key, start at `pos`: the shallowest
    /// of each, and only if it is the only one at its depth (aliases and merge
    /// keys can give several nodes the same position).
    pub(super) fn entries_at(&self, pos: Position) -> (Option<&Entry>, Option<&Entry>) {
        fn pick(matches: Vec<&Entry>) -> Option<&Entry> {
            let depth = matches.iter().map(|e| e.path.len()).min()?;
            let mut shallow = matches.into_iter().filter(|e| e.path.len() == depth);
            let first = shallow.next()?;
            shallow.next().is_none().then_some(first)
        }
        let on_value = self.entries.iter().filter(|e| e.value == Some(pos));
        let on_key = self.entries.iter().filter(|e| e.key == Some(pos));
        (pick(on_value.collect()), pick(on_key.collect()))
    }
}
