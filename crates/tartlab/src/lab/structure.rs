//! The structural check: the lab file's tree walked against the JSON Schema that
//! `tartlab schema` prints (the same document, read here), so that every unknown key (with
//! the key it was probably meant to be), wrong type, value outside a list of choices,
//! repeated key and missing key is reported at once, located, in the lab file's words. What
//! passes goes on as JSON to the typed model; what fails is left out of it, so the checks of
//! meaning (`check.rs`) still run on the rest.
//!
//! The walker knows the keywords schemars writes (`$ref`, `type`, `enum`, `anyOf`, `oneOf`,
//! `properties`, `required`, `additionalProperties`, `items`) and tartlab's own `x-name` (a
//! section's name in messages), `x-expects` (what a key takes, in words) and `x-size` (a
//! size, parsed as `up` will). Ranges and patterns are left to `check.rs`, which says more.
//!
//! Over 500 lines, for a reason: one walk of the tree against the schema, its unit tests
//! beside it.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use serde_json::{Map, Value as Json};

use super::hint::Hints;
use super::size;
use super::tree::{Item, Spot, Value};

/// A structural problem: what is wrong, what to do, where, and the key (to find the place
/// by text when the tree has none, as for JSON read without places).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub message: String,
    pub help: String,
    pub at: Spot,
    pub key: String,
}

/// Where each value of the model came from, by path (`clusters.1.nodes.0.name`: indices
/// as in the model, after anything left out), for the checks of meaning to point at.
#[derive(Debug, Default)]
pub struct Spots {
    values: HashMap<String, Spot>,
    keys: HashMap<String, Spot>,
}

impl Spots {
    pub fn value(&self, path: &str) -> Option<Spot> {
        self.values.get(path).copied().filter(|s| s.is_known())
    }

    pub fn key(&self, path: &str) -> Option<Spot> {
        self.keys.get(path).copied().filter(|s| s.is_known())
    }

    fn extend(&mut self, other: Spots) {
        self.values.extend(other.values);
        self.keys.extend(other.keys);
    }
}

/// What the structural pass learnt while reading the file: where each value is, and
/// whether parts that other parts may refer to were left out.
#[derive(Debug, Default)]
pub struct Reading {
    pub spots: Spots,
    /// A list item, a mapping or a collection was left out for its structural problems: a
    /// problem that may only come from what is missing ("matches no node") is not reported.
    pub partial: bool,
}

/// The lab file's JSON Schema, made once.
pub fn schema() -> &'static Json {
    static SCHEMA: OnceLock<Json> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::to_value(schemars::schema_for!(super::model::LabFile)).unwrap_or_default()
    })
}

/// Every structural problem of the tree, the tree as JSON without the parts that have one
/// (`None` when the whole file is unusable, e.g. not a mapping), and where each part is.
pub fn check(root: &Item, json: bool) -> (Vec<Problem>, Option<Json>, Reading) {
    let schema = schema();
    let mut walker = Walker::new(schema, !json);
    let json = walker.walk(root, schema, &Place::top(), "");
    let reading = Reading {
        spots: walker.spots,
        partial: walker.partial,
    };
    (walker.problems, json, reading)
}

/// Where a value is, for messages: the key it is the value of, in words.
#[derive(Clone)]
struct Place {
    /// `` `cpu` ``, or `an item of `groups``.
    name: String,
    key: String,
    /// An item of the list `key`, not its value.
    in_list: bool,
}

impl Place {
    fn top() -> Place {
        Place {
            name: "the lab file".into(),
            key: String::new(),
            in_list: false,
        }
    }

    fn key(key: &str) -> Place {
        Place {
            name: format!("`{key}`"),
            key: key.to_string(),
            in_list: false,
        }
    }

    fn item_of(&self) -> Place {
        Place {
            name: format!("each item of {}", self.name),
            key: self.key.clone(),
            in_list: true,
        }
    }
}

struct Walker<'a> {
    root: &'a Json,
    problems: Vec<Problem>,
    /// YAML: a plain number or boolean where text is wanted is that text. JSON is typed.
    scalars_as_text: bool,
    spots: Spots,
    partial: bool,
    hints: Hints<'a>,
}

impl<'a> Walker<'a> {
    fn new(root: &'a Json, scalars_as_text: bool) -> Walker<'a> {
        Walker {
            root,
            problems: Vec::new(),
            scalars_as_text,
            spots: Spots::default(),
            partial: false,
            hints: Hints::new(root, !scalars_as_text),
        }
    }

    /// A keyword of a schema, looked for there, then along its `$ref`s.
    fn keyword(&self, schema: &'a Json, name: &str) -> Option<&'a Json> {
        let mut current = schema;
        for _ in 0..16 {
            if let Some(found) = current.get(name) {
                return Some(found);
            }
            current = self.target(current)?;
        }
        None
    }

    fn target(&self, schema: &Json) -> Option<&'a Json> {
        let reference = schema.get("$ref")?.as_str()?;
        let name = reference.strip_prefix("#/$defs/")?;
        self.root.get("$defs")?.get(name)
    }

    fn problem(&mut self, at: Spot, place: &Place, message: String, help: String) {
        self.problems.push(Problem {
            message,
            help,
            at,
            key: place.key.clone(),
        });
    }

    /// Checks one value (at `path` in the model) against its schema; its JSON if it passes.
    fn walk(&mut self, item: &Item, schema: &'a Json, place: &Place, path: &str) -> Option<Json> {
        self.spots.values.insert(path.to_string(), item.at);
        if let Some(unit) = self.keyword(schema, "x-size").and_then(Json::as_str) {
            return self.walk_size(item, schema, unit, place);
        }
        if let Some(branches) = self
            .keyword(schema, "anyOf")
            .or_else(|| self.keyword(schema, "oneOf"))
            .and_then(Json::as_array)
        {
            return self.walk_branches(item, schema, branches, place, path);
        }
        if let Some(choices) = self.keyword(schema, "enum").and_then(Json::as_array) {
            return self.walk_enum(item, choices, place);
        }
        if !self.type_fits(item, schema) {
            self.wrong_kind(item, schema, place);
            return None;
        }
        match &item.value {
            Value::Map(_) => self.walk_map(item, schema, place, path),
            Value::List(items) => {
                let each = self.keyword(schema, "items");
                let inner = place.item_of();
                let mut kept = Vec::new();
                for i in items {
                    let child = join(path, kept.len());
                    let json = match each {
                        Some(each) => self.walk(i, each, &inner, &child),
                        None => Some(i.value.to_json()),
                    };
                    match json {
                        Some(json) => kept.push(json),
                        None => self.partial = true,
                    }
                }
                Some(Json::Array(kept))
            }
            // A YAML scalar where text is wanted is text (`mode: 0644`, `name: 1`).
            Value::Int(_) | Value::Bool(_) if self.wants(schema, "string") => {
                let text = match &item.value {
                    Value::Int(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => String::new(),
                };
                Some(Json::String(text))
            }
            other => Some(other.to_json()),
        }
    }

    fn walk_branches(
        &mut self,
        item: &Item,
        schema: &'a Json,
        branches: &'a [Json],
        place: &Place,
        path: &str,
    ) -> Option<Json> {
        let mut tried = Vec::new();
        for branch in branches {
            let mut trial = Walker::new(self.root, self.scalars_as_text);
            let json = trial.walk(item, branch, place, path);
            if trial.problems.is_empty() {
                self.spots.extend(trial.spots);
                self.partial |= trial.partial;
                return json;
            }
            tried.push((branch, trial.problems));
        }
        // The branch of the value's own kind (a mapping for a mapping) says what is wrong
        // inside it; otherwise the value is of a kind the key does not take.
        let same_kind: Vec<_> = tried
            .into_iter()
            .filter(|(branch, _)| self.type_fits(item, branch) && !self.is_any(branch))
            .collect();
        if let [(_, problems)] = same_kind.as_slice() {
            let help = self.what_to_write(schema, place, item);
            self.problems.extend(problems.iter().cloned().map(|mut p| {
                if p.help.is_empty() {
                    p.help = help.clone();
                }
                p
            }));
        } else {
            self.wrong_kind(item, schema, place);
        }
        None
    }

    /// A value of a kind the key does not take.
    fn wrong_kind(&mut self, item: &Item, schema: &'a Json, place: &Place) {
        let message = format!(
            "{} takes {}; got {}",
            place.name,
            self.expects(schema),
            item.value.shown()
        );
        let help = self.what_to_write(schema, place, item);
        self.problem(item.at, place, message, help);
    }

    /// What to write instead of `item`, in the file's format.
    fn what_to_write(&self, schema: &'a Json, place: &Place, item: &Item) -> String {
        self.hints
            .write(schema, &place.key, place.in_list, &item.value)
    }

    fn walk_size(
        &mut self,
        item: &Item,
        schema: &'a Json,
        unit: &str,
        place: &Place,
    ) -> Option<Json> {
        let mib_per = if unit == "GB" { 1024 } else { 1 };
        let parsed = match &item.value {
            Value::Int(n) if *n >= 1 => u32::try_from(*n).map_err(|_| size::SizeError::TooLarge),
            Value::Text(t) => size::parse(t, mib_per, unit),
            // `20.5`, read by YAML as a number: a decimal of the key's unit.
            Value::Float(f) if *f > 0.0 => size::parse(&f.to_string(), mib_per, unit),
            _ => Err(size::SizeError::NotANumber),
        };
        match parsed {
            Ok(n) => Some(Json::from(n)),
            Err(why) => {
                let mut message = format!(
                    "{} takes {}; got {}",
                    place.name,
                    self.expects(schema),
                    item.value.shown()
                );
                // A text that is no number at all: the message says what a size is.
                if why != size::SizeError::NotANumber {
                    message.push_str(&format!(": {why}"));
                }
                let help = self.what_to_write(schema, place, item);
                self.problem(item.at, place, message, help);
                None
            }
        }
    }

    fn walk_enum(&mut self, item: &Item, choices: &[Json], place: &Place) -> Option<Json> {
        let json = item.value.to_json();
        if choices.contains(&json) {
            return Some(json);
        }
        let words: Vec<&str> = choices.iter().filter_map(Json::as_str).collect();
        let given = match &item.value {
            Value::Text(t) => t.clone(),
            other => other.to_json().to_string(),
        };
        let mut message = format!(
            "{} takes one of {}; got {}",
            place.name,
            words.join(", "),
            item.value.shown()
        );
        if let Some(near) = closest(&given, words.iter().copied()) {
            message.push_str(&format!(" (did you mean `{near}`?)"));
        }
        self.problem(
            item.at,
            place,
            message,
            format!("write one of {}", words.join(", ")),
        );
        None
    }

    fn walk_map(
        &mut self,
        item: &Item,
        schema: &'a Json,
        place: &Place,
        path: &str,
    ) -> Option<Json> {
        let Value::Map(entries) = &item.value else {
            return None;
        };
        let properties = self.keyword(schema, "properties").and_then(Json::as_object);
        let others = self.keyword(schema, "additionalProperties");
        let section = self
            .keyword(schema, "x-name")
            .and_then(Json::as_str)
            .map_or_else(|| place.name.clone(), str::to_string);
        let mut out = Map::new();
        let mut seen = BTreeSet::new();
        for entry in entries {
            let child = Place::key(&entry.key);
            if !seen.insert(entry.key.as_str()) {
                self.problem(
                    entry.key_at,
                    &child,
                    format!("`{}` is given twice in {section}", entry.key),
                    "keep one of them".into(),
                );
                continue;
            }
            let child_schema = match (properties.and_then(|p| p.get(&entry.key)), others) {
                (Some(s), _) => s,
                (None, Some(s)) if s.is_object() => s,
                (None, _) => {
                    let known: Vec<&str> = properties
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let mut message = format!("`{}` is not a key of {section}", entry.key);
                    if let Some(near) = closest(&entry.key, known.iter().copied()) {
                        message.push_str(&format!(" (did you mean `{near}`?)"));
                    }
                    self.problem(
                        entry.key_at,
                        &child,
                        message,
                        format!("the keys of {section} are: {}", known.join(", ")),
                    );
                    continue;
                }
            };
            let child_path = join(path, &entry.key);
            self.spots.keys.insert(child_path.clone(), entry.key_at);
            match self.walk(&entry.value, child_schema, &child, &child_path) {
                Some(json) => {
                    out.insert(entry.key.clone(), json);
                }
                None if matches!(entry.value.value, Value::List(_) | Value::Map(_)) => {
                    self.partial = true;
                }
                None => {}
            }
        }
        let required: Vec<&str> = self
            .keyword(schema, "required")
            .and_then(Json::as_array)
            .map(|r| r.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        for key in required.iter().filter(|k| !seen.contains(*k)) {
            let help = match properties.and_then(|p| p.get(*key)) {
                Some(wanted) => self.hints.add(wanted, key),
                None => format!("add `{key}:`"),
            };
            self.problem(item.at, place, format!("{section} needs `{key}`"), help);
        }
        // Without a key it needs (missing, or given but wrong), the mapping cannot be used.
        if required.iter().any(|k| !out.contains_key(*k)) {
            return None;
        }
        Some(Json::Object(out))
    }

    fn is_any(&self, schema: &Json) -> bool {
        schema.as_bool() == Some(true) || schema.as_object().is_some_and(Map::is_empty)
    }

    fn types(&self, schema: &'a Json) -> Vec<&'a str> {
        match self.keyword(schema, "type") {
            Some(Json::String(t)) => vec![t.as_str()],
            Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).collect(),
            _ => Vec::new(),
        }
    }

    fn wants(&self, schema: &'a Json, kind: &str) -> bool {
        self.types(schema).contains(&kind)
    }

    /// Whether the value's kind is one the schema's `type` allows (any, when it has none).
    fn type_fits(&self, item: &Item, schema: &'a Json) -> bool {
        let types = self.types(schema);
        if types.is_empty() {
            return true;
        }
        types.iter().any(|t| match (*t, &item.value) {
            ("null", Value::Null)
            | ("boolean", Value::Bool(_))
            | ("integer", Value::Int(_))
            | ("number", Value::Int(_) | Value::Float(_))
            | ("array", Value::List(_))
            | ("object", Value::Map(_))
            | ("string", Value::Text(_)) => true,
            ("string", Value::Int(_) | Value::Bool(_)) => self.scalars_as_text,
            _ => false,
        })
    }

    /// What a key takes, in words: its `x-expects`, else its types and an example.
    fn expects(&self, schema: &'a Json) -> String {
        if let Some(words) = self.keyword(schema, "x-expects").and_then(Json::as_str) {
            return words.to_string();
        }
        let mut words: Vec<&str> = self
            .types(schema)
            .iter()
            .filter_map(|t| match *t {
                "integer" => Some("a whole number"),
                "number" => Some("a number"),
                "string" => Some("text"),
                "boolean" => Some("true or false"),
                "array" => Some("a list"),
                "object" => Some("a mapping (`key: value` lines)"),
                _ => None,
            })
            .collect();
        if words.is_empty() {
            words.push("another kind of value");
        }
        let mut text = words.join(" or ");
        let example = self
            .keyword(schema, "examples")
            .and_then(|e| e.get(0))
            .map(|e| match e {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            });
        if let Some(example) = example {
            text.push_str(&format!(", e.g. {example}"));
        }
        text
    }
}

fn join(path: &str, child: impl std::fmt::Display) -> String {
    if path.is_empty() {
        child.to_string()
    } else {
        format!("{path}.{child}")
    }
}

/// The candidate nearest to a word someone mistyped, if it is near enough to be meant.
pub fn closest<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    let length = word.chars().count();
    // No name is this long: a huge word would make the distance (a table of both lengths)
    // take time and memory for nothing.
    if length > 256 {
        return None;
    }
    let limit = (length / 3).max(1);
    candidates
        // The distance is at least the difference in length.
        .filter(|c| c.chars().count().abs_diff(length) <= limit)
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(distance, c)| *distance <= limit && *distance < c.chars().count())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::tree::parse_yaml;

    fn problems(text: &str) -> Vec<String> {
        let (found, _, _) = check(&parse_yaml(text).unwrap(), false);
        found
            .iter()
            .map(|p| format!("{}:{} {}", p.at.line, p.at.column, p.message))
            .collect()
    }

    #[test]
    fn every_structural_problem_is_found_at_once_in_order() {
        let found = problems(
            "lab: demo\ncpus: 4\nclusters:\n  - name: dev\n    memroy: 2048\n    cpu: many\n    nodes:\n      - name: a\n        memory: 2 gigs\nusers:\n  - name: bob\n    sudo: nopaswd\nlab: again\n",
        );
        assert_eq!(
            found,
            [
                "2:1 `cpus` is not a key of the lab file",
                "5:5 `memroy` is not a key of a cluster (did you mean `memory`?)",
                "6:10 `cpu` takes a whole number; got `many`",
                "9:17 `memory` takes a whole number of MiB, or a size with a unit (e.g. 4096 or 4GiB); got `2 gigs`: the unit `gigs` is not one tartlab knows (MiB, GiB, TiB, MB, GB, TB)",
                "12:11 `sudo` takes one of none, password, nopasswd; got `nopaswd` (did you mean `nopasswd`?)",
                "13:1 `lab` is given twice in the lab file",
            ]
        );
    }

    #[test]
    fn a_missing_key_is_named_and_what_passes_is_kept() {
        let (found, json, reading) =
            check(&parse_yaml("lab: demo\nclusters:\n  - nodes: [{ name: a }]\n  - name: ok\n    nodes: [{ name: b }]\n").unwrap(), false);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].message, "a cluster needs `name`");
        let json = json.unwrap();
        assert_eq!(json["clusters"].as_array().unwrap().len(), 1);
        assert_eq!(json["clusters"][0]["name"], "ok");
        assert!(reading.partial, "a cluster was left out");
        let spot = reading.spots.value("clusters.0.name").unwrap();
        assert_eq!((spot.line, spot.column), (4, 11));
    }

    #[test]
    fn suggestions_are_only_for_near_words() {
        let keys = ["memory", "image", "cpu"];
        assert_eq!(closest("memroy", keys.into_iter()), Some("memory"));
        assert_eq!(closest("cpus", keys.into_iter()), Some("cpu"));
        assert_eq!(closest("colour", keys.into_iter()), None);
    }
}
