//! Reading Kubernetes resources: YAML or JSON, single documents, multi-document streams
//! and `kind: List`, from files, directories of files or `-` (stdin), within bounds.
//!
//! Every source is read through a size limit ([`MAX_INPUT_BYTES`]) and parsed into at
//! most about as many values as it has bytes: YAML aliases that would expand past that
//! (a "billion laughs" document) are refused, never expanded. Nesting deeper than the
//! parsers' recursion limit (128) is refused too. Each document remembers where it came
//! from, so every later message can name the file and the document.

use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use input_file::InputError;

/// The largest source (a file, or stdin) read, in bytes: far above any routing set.
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;
/// The most files read from one directory.
pub const MAX_FILES: usize = 10_000;
/// Values allowed on top of one per input byte, for short documents.
const VALUE_ALLOWANCE: u64 = 100_000;
/// Deepest bracket nesting scanned for before parsing (the parsers stop at 128 levels,
/// but the YAML parser takes time quadratic in the depth to get there).
pub const MAX_FLOW_DEPTH: usize = 256;
/// Widest indentation, in columns, scanned for before parsing (same reason, block style).
pub const MAX_INDENT: usize = 1024;

/// One Kubernetes object as read, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDocument {
    /// The file (or `-`) and position: `vs.yaml, document 2` or `all.json, items[7]`.
    pub origin: String,
    /// The object.
    pub value: Value,
}

/// Why a source cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file, directory or stdin cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path (`-` for stdin).
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The path names no regular file (a FIFO, a device, a socket) or a loop of links.
    #[error("cannot read {path}: {why}")]
    NotRegular {
        /// The path.
        path: String,
        /// What it is instead.
        why: InputError,
    },
    /// The source is larger than [`MAX_INPUT_BYTES`].
    #[error("{path} is larger than {} MiB, the most the checker reads from one source", MAX_INPUT_BYTES >> 20)]
    TooLarge {
        /// The path (`-` for stdin).
        path: String,
    },
    /// A directory holds more than [`MAX_FILES`] manifest files.
    #[error("{path} holds more than {MAX_FILES} manifest files")]
    TooManyFiles {
        /// The directory.
        path: String,
    },
    /// The text is not valid YAML or JSON (or nests too deeply).
    #[error("{origin}: {message}")]
    Syntax {
        /// The file and, where known, the line and column.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// The text nests deeper than the parsers allow.
    #[error("{origin}: nests deeper than {what}; no Kubernetes object does")]
    TooDeep {
        /// The file and line.
        origin: String,
        /// Which limit.
        what: String,
    },
    /// Aliases expand to more values than the input could hold on its own.
    #[error(
        "{origin}: its YAML aliases expand to more than {limit} values; expand them (or remove the repetition) first"
    )]
    Expansion {
        /// The file.
        origin: String,
        /// The number of values allowed.
        limit: u64,
    },
    /// A document is not a mapping (a Kubernetes object).
    #[error(
        "{origin}: a Kubernetes object (a mapping with apiVersion and kind) was expected, found {found}"
    )]
    NotAnObject {
        /// The file and document.
        origin: String,
        /// What was found instead.
        found: &'static str,
    },
    /// A `kind: List` whose `items` is not a list.
    #[error("{origin}: field items: a list of objects was expected, found {found}")]
    BadItems {
        /// The file and document.
        origin: String,
        /// What was found instead.
        found: &'static str,
    },
}

/// Reads every source in order (files, directories, `-` for stdin) into documents.
pub fn load_sources<S: AsRef<str>>(sources: &[S]) -> Result<Vec<RawDocument>, LoadError> {
    let mut out = Vec::new();
    for source in sources {
        out.extend(load_source(source.as_ref())?);
    }
    Ok(out)
}

/// Reads one source: a file, a directory (its `.yaml`, `.yml` and `.json` files, sorted,
/// not recursing) or `-` for stdin.
pub fn load_source(source: &str) -> Result<Vec<RawDocument>, LoadError> {
    if source == "-" {
        let text = read_bounded(std::io::stdin().lock(), "-")?;
        return parse_text(&text, "-");
    }
    let path = Path::new(source);
    let read_error = |e| LoadError::Read {
        path: source.to_owned(),
        source: e,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if input_file::is_loop(&e) => {
            return Err(LoadError::NotRegular {
                path: source.to_owned(),
                why: InputError::Loop,
            });
        }
        Err(e) => return Err(read_error(e)),
    };
    if !meta.is_dir() {
        return load_file(path);
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let p = entry.path();
        let is_manifest = p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if is_manifest && p.is_file() {
            if files.len() >= MAX_FILES {
                return Err(LoadError::TooManyFiles {
                    path: source.to_owned(),
                });
            }
            files.push(p);
        }
    }
    files.sort();
    let mut out = Vec::new();
    for file in files {
        out.extend(load_file(&file)?);
    }
    Ok(out)
}

/// Reads one file: a regular file only, opened without blocking (a FIFO, a device such
/// as `/dev/zero`, a socket is refused before anything is read; see [`input_file`]).
fn load_file(path: &Path) -> Result<Vec<RawDocument>, LoadError> {
    let name = path.display().to_string();
    let file = input_file::open_regular(path).map_err(|why| match why {
        InputError::Read(source) => LoadError::Read {
            path: name.clone(),
            source,
        },
        other => LoadError::NotRegular {
            path: name.clone(),
            why: other,
        },
    })?;
    let text = read_bounded(file, &name)?;
    parse_text(&text, &name)
}

/// Reads at most [`MAX_INPUT_BYTES`] of UTF-8 text, refusing anything longer.
fn read_bounded(reader: impl Read, name: &str) -> Result<String, LoadError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| LoadError::Read {
            path: name.to_owned(),
            source: e,
        })?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(LoadError::TooLarge {
            path: name.to_owned(),
        });
    }
    String::from_utf8(bytes).map_err(|e| LoadError::Syntax {
        origin: name.to_owned(),
        message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}

/// Parses `text` (named `name` in messages): JSON when it starts with `{` or `[`, else a
/// YAML stream of one or more documents. `kind: List` documents are expanded into their
/// items; empty documents are skipped.
pub fn parse_text(text: &str, name: &str) -> Result<Vec<RawDocument>, LoadError> {
    check_depth(text, name)?;
    let budget = Budget::new(text.len() as u64 + VALUE_ALLOWANCE);
    let trimmed = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let mut documents = Vec::new();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut de = serde_json::Deserializer::from_str(trimmed);
        let value = BoundedValue(&budget)
            .deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| budget.error(name, e.to_string()))?;
        documents.push((name.to_owned(), value));
    } else {
        for (index, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
            let origin = format!("{name}, document {}", index + 1);
            let value = BoundedValue(&budget)
                .deserialize(doc)
                .map_err(|e| budget.error(&origin, e.to_string()))?;
            documents.push((origin, value));
        }
    }
    let mut out = Vec::new();
    for (origin, value) in documents {
        match value {
            Value::Null => {}
            Value::Object(map) => expand(origin, map, &mut out)?,
            // A JSON array at the top: a bare list of objects.
            Value::Array(items) => expand_items(&origin, items, &mut out)?,
            other => {
                return Err(LoadError::NotAnObject {
                    origin,
                    found: type_name(&other),
                });
            }
        }
    }
    Ok(out)
}

/// Refuses text nesting deeper than the limits before a parser spends its time on it.
fn check_depth(text: &str, name: &str) -> Result<(), LoadError> {
    match too_deep(text) {
        Some((line, what)) => Err(LoadError::TooDeep {
            origin: format!("{name}, line {line}"),
            what,
        }),
        None => Ok(()),
    }
}

/// Where `text` first nests deeper than [`MAX_FLOW_DEPTH`] brackets or [`MAX_INDENT`]
/// columns of indentation, if it does: the 1-based line and which limit. Brackets inside
/// quoted text count too: that over-estimates, never under-estimates. Any YAML read
/// into a struct (a rehearsal's steps file) is checked with it first, since the YAML
/// parser takes time quadratic in the depth to refuse it.
pub fn too_deep(text: &str) -> Option<(usize, String)> {
    let mut depth = 0usize;
    for (number, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if indent > MAX_INDENT {
            return Some((
                number + 1,
                format!("an indentation of {MAX_INDENT} columns"),
            ));
        }
        for b in line.bytes() {
            match b {
                b'[' | b'{' => depth += 1,
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_FLOW_DEPTH {
                return Some((number + 1, format!("{MAX_FLOW_DEPTH} levels of brackets")));
            }
        }
    }
    None
}

fn expand(
    origin: String,
    map: Map<String, Value>,
    out: &mut Vec<RawDocument>,
) -> Result<(), LoadError> {
    let is_list = map
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || (k.ends_with("List") && map.contains_key("items")));
    if !is_list {
        out.push(RawDocument {
            origin,
            value: Value::Object(map),
        });
        return Ok(());
    }
    match map.get("items") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => expand_items(&origin, items.clone(), out),
        Some(other) => Err(LoadError::BadItems {
            origin,
            found: type_name(other),
        }),
    }
}

fn expand_items(
    origin: &str,
    items: Vec<Value>,
    out: &mut Vec<RawDocument>,
) -> Result<(), LoadError> {
    for (i, item) in items.into_iter().enumerate() {
        let origin = format!("{origin}, items[{i}]");
        match item {
            Value::Object(map) => expand(origin, map, out)?,
            other => {
                return Err(LoadError::NotAnObject {
                    origin,
                    found: type_name(&other),
                });
            }
        }
    }
    Ok(())
}

/// The JSON type of `value`, for messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// How many more values may be built from one source.
struct Budget {
    limit: u64,
    left: Cell<u64>,
}

const BUDGET_EXCEEDED: &str = "tcp-canary: value budget exceeded";

impl Budget {
    fn new(limit: u64) -> Self {
        Self {
            limit,
            left: Cell::new(limit),
        }
    }

    fn take<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(E::custom(BUDGET_EXCEEDED)),
        }
    }

    fn error(&self, origin: &str, message: String) -> LoadError {
        // The YAML parser's own alias limit, or ours.
        if message.contains(BUDGET_EXCEEDED) || message.contains("repetition limit exceeded") {
            LoadError::Expansion {
                origin: origin.to_owned(),
                limit: self.limit,
            }
        } else {
            LoadError::Syntax {
                origin: origin.to_owned(),
                message,
            }
        }
    }
}

/// Builds a [`Value`] like `Value::deserialize`, counting every value against a budget.
#[derive(Clone, Copy)]
struct BoundedValue<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for BoundedValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BoundedValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.take()?;
        // NaN and infinities have no JSON form: kept as text, refused later by type.
        Ok(serde_json::Number::from_f64(v)
            .map_or_else(|| Value::String(v.to_string()), Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::String(v))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::Null)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.0.take()?;
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.take()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.take()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
            let value = map.next_value_seed(self)?;
            if out.insert(key.clone(), value).is_some() {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
        }
        Ok(Value::Object(out))
    }
}

/// A mapping key: text, or a number or boolean written as text (YAML allows `80: x`).
#[derive(Clone, Copy)]
struct KeySeed<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        match BoundedValue(self.0).deserialize(deserializer)? {
            Value::String(s) => Ok(s),
            v @ (Value::Number(_) | Value::Bool(_)) => Ok(v.to_string()),
            Value::Null => Ok("null".to_owned()),
            other => Err(serde::de::Error::custom(format!(
                "a mapping key must be text, found {}",
                type_name(&other)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_lists_and_json_expand_into_objects() {
        let yaml = "a: 1\nkind: X\n---\n---\nkind: List\nitems:\n  - kind: Y\n  - kind: Z\n";
        let docs = parse_text(yaml, "f.yaml").expect("parses");
        let origins: Vec<&str> = docs.iter().map(|d| d.origin.as_str()).collect();
        assert_eq!(
            origins,
            [
                "f.yaml, document 1",
                "f.yaml, document 3, items[0]",
                "f.yaml, document 3, items[1]"
            ]
        );
        let json = r#"{"kind":"List","items":[{"kind":"A"},{"kind":"B"}]}"#;
        let docs = parse_text(json, "f.json").expect("parses");
        assert_eq!(docs[1].origin, "f.json, items[1]");
    }

    #[test]
    fn a_billion_laughs_is_refused_not_expanded() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in 'b'..='j' {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
            prev = name;
        }
        let err = parse_text(&text, "lol.yaml").expect_err("must be refused");
        assert!(
            matches!(err, LoadError::Expansion { .. } | LoadError::Syntax { .. }),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_document_and_place() {
        let err = parse_text("kind: A\n---\nkind: [unclosed\n", "bad.yaml").expect_err("bad");
        let text = err.to_string();
        assert!(text.starts_with("bad.yaml, document 2"), "{text}");
        let err = parse_text("- 1\n- 2\n", "seq.yaml").expect_err("not objects");
        assert!(
            err.to_string().contains("items[0]") && err.to_string().contains("found a number"),
            "{err}"
        );
        let err = parse_text("a: 1\na: 2\n", "dup.yaml").expect_err("duplicate key");
        assert!(err.to_string().contains("duplicate"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_text(&text, "deep.json").is_err());
        let text = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_text(&text, "deep.yaml").is_err());
    }
}
