//! The lab file as a tree of plain values, each with the place in the text it came from:
//! what the structural check (`structure.rs`) walks, so that every unknown key, wrong type
//! and missing key is reported at once and located, before the typed model is read from
//! the tree. YAML and JSON both come here (JSON through serde_json when the YAML parser
//! will not take it; its places are then unknown).

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A place in the lab file (1-based); line 0 is unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Spot {
    pub line: usize,
    pub column: usize,
}

impl Spot {
    pub fn is_known(self) -> bool {
        self.line > 0
    }

    fn of<T>(spanned: &Spanned<T>) -> Spot {
        Spot {
            line: spanned.referenced.line() as usize,
            column: spanned.referenced.column() as usize,
        }
    }
}

/// A value of the lab file.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Text(String),
    List(Vec<Item>),
    Map(Vec<Entry>),
}

/// A value and its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub value: Value,
    pub at: Spot,
}

/// A key of a mapping, its value, and the key's place.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_at: Spot,
    pub value: Item,
}

impl Value {
    /// The value as the user wrote it, for a message: a scalar as text, a collection named.
    pub fn shown(&self) -> String {
        match self {
            Value::Null => "nothing".into(),
            Value::Bool(b) => format!("`{b}`"),
            Value::Int(n) => format!("`{n}`"),
            Value::Float(f) => format!("`{f}`"),
            Value::Text(t) => format!("`{}`", crate::text::cut(t, 60)),
            Value::List(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }

    /// The value as JSON, for reading the typed model.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(n) => i64::try_from(*n)
                .map(serde_json::Value::from)
                .or_else(|_| u64::try_from(*n).map(serde_json::Value::from))
                .unwrap_or_else(|_| serde_json::Value::String(n.to_string())),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Text(t) => serde_json::Value::String(t.clone()),
            Value::List(items) => items.iter().map(|i| i.value.to_json()).collect(),
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.value.to_json()))
                    .collect(),
            ),
        }
    }

    fn from_json(json: &serde_json::Value) -> Value {
        let unknown = Spot::default();
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Value::Int(i.into()),
                (_, Some(u), _) => Value::Int(u.into()),
                (_, _, f) => Value::Float(f.unwrap_or_default()),
            },
            serde_json::Value::String(s) => Value::Text(s.clone()),
            serde_json::Value::Array(items) => Value::List(
                items
                    .iter()
                    .map(|v| Item {
                        value: Value::from_json(v),
                        at: unknown,
                    })
                    .collect(),
            ),
            serde_json::Value::Object(map) => Value::Map(
                map.iter()
                    .map(|(k, v)| Entry {
                        key: k.clone(),
                        key_at: unknown,
                        value: Item {
                            value: Value::from_json(v),
                            at: unknown,
                        },
                    })
                    .collect(),
            ),
        }
    }
}

/// A syntax error: its message (the parser's words, its own location taken out), the place
/// of the character at fault, and what to do, in the syntax of the file's format.
#[derive(Debug)]
pub struct SyntaxError {
    pub message: String,
    pub at: Spot,
    pub help: &'static str,
}

const YAML_HELP: &str = "fix the syntax here: a YAML mapping is `key: value` lines, a list is `- item` lines, indented alike";
const YAML_TAB_HELP: &str =
    "replace the tab with spaces, as many as the lines above at the same level have";
const JSON_HELP: &str = "fix the JSON syntax here: keys and text in double quotes, `:` between a key and its value, `,` between items and none after the last";
const JSON_COMMA_HELP: &str =
    "take this comma out: JSON has no comma after the last item of a list or an object";

/// The byte offset of a place (1-based line and column, in characters), if it is in `text`.
fn offset_of(text: &str, at: Spot) -> Option<usize> {
    let line_start = if at.line <= 1 {
        0
    } else {
        text.match_indices('\n').nth(at.line - 2)?.0 + 1
    };
    let line = &text[line_start..];
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    let within = line
        .char_indices()
        .nth(at.column.saturating_sub(1))
        .map_or(line.len(), |(i, _)| i);
    Some(line_start + within)
}

/// The place (1-based line and column, in characters) of a byte offset of `text`.
fn spot_of(text: &str, offset: usize) -> Spot {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Spot {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// A YAML parser complaining of a tab names where the token began (the `master` of the line
/// above an indented tab): the first tab from the start of that line is the character.
fn the_tab(text: &str, reported: Spot) -> Spot {
    let start = offset_of(
        text,
        Spot {
            line: reported.line,
            column: 1,
        },
    );
    start
        .and_then(|start| text[start..].find('\t').map(|i| spot_of(text, start + i)))
        .unwrap_or(reported)
}

/// serde_json names the character after a trailing comma (the `]`): the comma is the last
/// one before it, whitespace between.
fn the_comma(text: &str, reported: Spot) -> Spot {
    offset_of(text, reported)
        .and_then(|end| {
            let before = text[..end].trim_end();
            before
                .ends_with(',')
                .then(|| spot_of(text, before.len() - 1))
        })
        .unwrap_or(reported)
}

/// Reads YAML (or JSON, which is YAML too) into a tree. Repeated keys are kept, so that the
/// check can name each one; a number with a leading zero (`0644`) stays text, and only
/// `true` and `false` are booleans (`yes`, `on` are text, as in YAML 1.2).
pub fn parse_yaml(text: &str) -> Result<Item, SyntaxError> {
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        leading_zero_numbers_as_strings: true,
        strict_booleans: true,
    };
    let parsed: Result<Spanned<Value>, _> = serde_saphyr::from_str_with_options(text, options);
    match parsed {
        Ok(root) => Ok(Item {
            at: Spot::of(&root),
            value: root.value,
        }),
        Err(e) => {
            let message = yaml_message(&e.to_string());
            let reported = e
                .location()
                .map(|l| Spot {
                    line: l.line() as usize,
                    column: l.column() as usize,
                })
                .unwrap_or_default();
            if message.contains("tab") && reported.is_known() {
                let at = the_tab(text, reported);
                // Only spaces before it on its line: the tab is indentation.
                let indents = offset_of(
                    text,
                    Spot {
                        line: at.line,
                        column: 1,
                    },
                )
                .and_then(|start| text[start..].lines().next())
                .is_some_and(|line| line.chars().take(at.column - 1).all(|c| c == ' '));
                return Err(SyntaxError {
                    message: if indents {
                        "a tab indents this line: YAML indents with spaces only".to_string()
                    } else {
                        message
                    },
                    at,
                    help: YAML_TAB_HELP,
                });
            }
            Err(SyntaxError {
                at: reported,
                help: YAML_HELP,
                message,
            })
        }
    }
}

/// Reads JSON into a tree: through the YAML parser for the places, else through serde_json
/// (then the places are unknown). A syntax error is serde_json's, located.
pub fn parse_json(text: &str) -> Result<Item, SyntaxError> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        let reported = Spot {
            line: e.line(),
            column: e.column(),
        };
        let comma = message == "trailing comma";
        SyntaxError {
            at: if comma {
                the_comma(text, reported)
            } else {
                reported
            },
            help: if comma { JSON_COMMA_HELP } else { JSON_HELP },
            message,
        }
    })?;
    match parse_yaml(text) {
        Ok(tree) if tree.value.to_json() == json => Ok(tree),
        _ => Ok(Item {
            value: Value::from_json(&json),
            at: Spot::default(),
        }),
    }
}

/// The parser's first line, without its own location prefix.
fn yaml_message(text: &str) -> String {
    let first = text.lines().next().unwrap_or(text);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let first = match first.find(": ") {
        Some(i) if first[..i].starts_with("line ") => &first[i + 2..],
        _ => first,
    };
    first.trim().to_string()
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i128::try_from(v).map_or_else(|_| Value::Text(v.to_string()), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(Item {
                at: Spot::of(&item),
                value: item.value,
            });
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        // Keys as the text written: `on:` is the key "on", never the boolean YAML 1.1 made it.
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<Value>>()?;
            entries.push(Entry {
                key: key.value.clone(),
                key_at: Spot::of(&key),
                value: Item {
                    at: Spot::of(&value),
                    value: value.value,
                },
            });
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_keeps_its_place_and_repeated_keys_stay() {
        let tree =
            parse_yaml("lab: demo\nclusters:\n  - name: dev\n    cpu: 4\nlab: again\nmode: 0644\n")
                .unwrap();
        let Value::Map(entries) = &tree.value else {
            panic!("{tree:?}")
        };
        let keys: Vec<(&str, usize, usize)> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.key_at.line, e.key_at.column))
            .collect();
        assert_eq!(
            keys,
            [
                ("lab", 1, 1),
                ("clusters", 2, 1),
                ("lab", 5, 1),
                ("mode", 6, 1)
            ]
        );
        let Value::List(clusters) = &entries[1].value.value else {
            panic!()
        };
        let Value::Map(cluster) = &clusters[0].value else {
            panic!()
        };
        assert_eq!(cluster[1].value.value, Value::Int(4));
        assert_eq!(
            (cluster[1].value.at.line, cluster[1].value.at.column),
            (4, 10)
        );
        assert_eq!(entries[3].value.value, Value::Text("0644".into()));
    }

    #[test]
    fn json_is_read_with_places_and_syntax_errors_are_located() {
        let tree = parse_json("{\n  \"lab\": \"demo\",\n  \"clusters\": []\n}\n").unwrap();
        let Value::Map(entries) = &tree.value else {
            panic!()
        };
        assert_eq!(entries[1].key_at.line, 3);
        let error = parse_json("{\n  \"lab\": \"demo\",,\n}").unwrap_err();
        assert_eq!(error.at.line, 2, "{error:?}");
        let error = parse_json("{\"a\": [1, 2,\n  ]}").unwrap_err();
        assert_eq!((error.at.line, error.at.column), (1, 12), "{error:?}");
        assert!(error.help.contains("JSON"), "{error:?}");
    }

    #[test]
    fn a_tab_is_found_where_it_is() {
        let error = parse_yaml("a:\n  b: c\n\td: e\n").unwrap_err();
        assert_eq!((error.at.line, error.at.column), (3, 1), "{error:?}");
        assert_eq!(spot_of("ab\ncé\nx", 7), Spot { line: 3, column: 1 });
        assert_eq!(offset_of("ab\ncé\nx", Spot { line: 2, column: 2 }), Some(4));
    }
}
