//! What to write instead of a value of the wrong kind (or for a key that is missing), in the
//! syntax of the lab file's own format: `nodes: [{ name: ... }]` in YAML,
//! `"nodes": [{"name": "..."}]` in JSON. The example is made from the lab file's schema
//! (its `examples`, defaults, ranges and required keys), or from the value given when that
//! value only needs another form (`groups: docker` is `groups: [docker]`).

use serde_json::{Map, Value as Json};

use super::tree::Value;

/// How deep an example goes into mappings and lists.
const DEPTH: usize = 3;

/// Help lines for one lab file: its schema, and whether it is JSON.
pub struct Hints<'a> {
    root: &'a Json,
    json: bool,
}

impl<'a> Hints<'a> {
    pub fn new(root: &'a Json, json: bool) -> Hints<'a> {
        Hints { root, json }
    }

    /// A keyword of a schema, looked for there, then along its `$ref`s.
    fn keyword(&self, schema: &'a Json, name: &str) -> Option<&'a Json> {
        let mut current = schema;
        for _ in 0..16 {
            if let Some(found) = current.get(name) {
                return Some(found);
            }
            let reference = current.get("$ref")?.as_str()?;
            current = self
                .root
                .get("$defs")?
                .get(reference.strip_prefix("#/$defs/")?)?;
        }
        None
    }

    /// The schema's types, but `null` (a key that may be left out).
    fn types(&self, schema: &'a Json) -> Vec<&'a str> {
        match self.keyword(schema, "type") {
            Some(Json::String(t)) => vec![t.as_str()],
            Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).collect(),
            _ => Vec::new(),
        }
        .into_iter()
        .filter(|t| *t != "null")
        .collect()
    }

    /// The branch of an `anyOf`/`oneOf` that is more than `null`.
    fn branch(&self, schema: &'a Json) -> Option<&'a Json> {
        self.keyword(schema, "anyOf")
            .or_else(|| self.keyword(schema, "oneOf"))
            .and_then(Json::as_array)?
            .iter()
            .find(|b| b.get("type") != Some(&Json::from("null")))
    }

    /// A value of the schema's kind, to show as an example.
    fn example(&self, schema: &'a Json, depth: usize) -> Json {
        if depth > DEPTH {
            return Json::from("...");
        }
        if let Some(unit) = self.keyword(schema, "x-size").and_then(Json::as_str) {
            return Json::from(if unit == "GB" { "50GB" } else { "4GiB" });
        }
        let given = self
            .keyword(schema, "examples")
            .and_then(|e| e.get(0))
            .or_else(|| self.keyword(schema, "default").filter(|d| !d.is_null()))
            .or_else(|| self.keyword(schema, "const"))
            .or_else(|| self.keyword(schema, "enum").and_then(|e| e.get(0)));
        if let Some(given) = given {
            return given.clone();
        }
        if let Some(branch) = self.branch(schema) {
            return self.example(branch, depth);
        }
        match self.types(schema).first().copied() {
            Some("integer" | "number") => Json::from(self.sample_number(schema)),
            Some("boolean") => Json::from(true),
            Some("array") => Json::Array(
                self.keyword(schema, "items")
                    .map(|items| vec![self.example(items, depth + 1)])
                    .unwrap_or_default(),
            ),
            Some("object") => Json::Object(self.example_map(schema, depth)),
            _ => Json::from("..."),
        }
    }

    /// The keys a mapping needs (or one key, when it needs none), each with an example.
    fn example_map(&self, schema: &'a Json, depth: usize) -> Map<String, Json> {
        let mut out = Map::new();
        let properties = self.keyword(schema, "properties").and_then(Json::as_object);
        if let Some(properties) = properties {
            let required: Vec<&str> = self
                .keyword(schema, "required")
                .and_then(Json::as_array)
                .map(|r| r.iter().filter_map(Json::as_str).collect())
                .unwrap_or_default();
            let keys: Vec<&String> = if required.is_empty() {
                // None needed: the first key with an example or a default to show.
                let shown = properties.iter().find(|(_, p)| {
                    self.keyword(p, "examples").is_some()
                        || self.keyword(p, "default").is_some_and(|d| !d.is_null())
                });
                shown
                    .map(|(k, _)| k)
                    .or_else(|| properties.keys().next())
                    .into_iter()
                    .collect()
            } else {
                properties
                    .keys()
                    .filter(|k| required.contains(&k.as_str()))
                    .collect()
            };
            for key in keys {
                out.insert(key.clone(), self.example(&properties[key], depth + 1));
            }
        } else if let Some(each) = self
            .keyword(schema, "additionalProperties")
            .filter(|s| s.is_object())
        {
            out.insert("NAME".into(), self.example(each, depth + 1));
        }
        out
    }

    /// A whole number in the schema's range: one above its least, as `cpu: 2`.
    fn sample_number(&self, schema: &'a Json) -> u64 {
        let min = self
            .keyword(schema, "minimum")
            .and_then(Json::as_u64)
            .unwrap_or(1);
        let max = self.keyword(schema, "maximum").and_then(Json::as_u64);
        if max.is_none_or(|max| max > min) {
            min + 1
        } else {
            min
        }
    }

    /// The value given, in the form the schema wants when only the form is wrong (a text
    /// in quotes in JSON, a single item as a list); else an example.
    fn adapted(&self, schema: &'a Json, given: &Value) -> Json {
        let scalar = match given {
            Value::Text(t) => Some(t.clone()),
            Value::Int(n) => Some(n.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let types = self.types(schema);
        match (types.first().copied(), scalar) {
            (Some("string"), Some(text)) if types.len() == 1 => Json::from(text),
            (Some("array"), Some(_)) => match self.keyword(schema, "items") {
                Some(items) if self.types(items) == ["string"] => {
                    Json::Array(vec![self.adapted(items, given)])
                }
                _ => self.example(schema, 0),
            },
            _ => self.example(schema, 0),
        }
    }

    /// What to write for `key` (or for an item of the list `key`, when `in_list`), the value
    /// given being `given` (none for a missing key).
    pub fn write(&self, schema: &'a Json, key: &str, in_list: bool, given: &Value) -> String {
        let value = self.adapted(schema, given);
        let shown = self.render(&value);
        if in_list {
            return format!("write each item as `{shown}`");
        }
        let pair = self.pair(key, &shown);
        if let Some(unit) = self.keyword(schema, "x-size").and_then(Json::as_str) {
            let decimal = if unit == "GB" { "0.5TB" } else { "2.5GB" };
            return format!(
                "write a size such as `{pair}` or `{}` (a GB is 1024 MiB), or a whole number of {unit}",
                self.pair(key, &self.render(&Json::from(decimal)))
            );
        }
        let types = self.types(schema);
        if types.first() == Some(&"integer") {
            let min = self.keyword(schema, "minimum").and_then(Json::as_u64);
            let max = self.keyword(schema, "maximum").and_then(Json::as_u64);
            if let (Some(min), Some(max)) = (min, max) {
                return format!("write a whole number from {min} to {max}, e.g. `{pair}`");
            }
            return format!("write a whole number, e.g. `{pair}`");
        }
        // A list of mappings is most often written one `- key: value` item per line.
        if let (false, Json::Array(items)) = (self.json, &value) {
            if let Some(Json::Object(first)) = items.first() {
                let item = first
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", self.render(v)))
                    .collect::<Vec<_>>()
                    .join(", ");
                return format!("write `{pair}`, or one `- {item}` line per item below `{key}:`");
            }
        }
        format!("write `{pair}`")
    }

    /// What to add for a key a mapping needs.
    pub fn add(&self, schema: &'a Json, key: &str) -> String {
        let shown = self.render(&self.example(schema, 0));
        format!("add `{}`", self.pair(key, &shown))
    }

    fn pair(&self, key: &str, shown: &str) -> String {
        if self.json {
            format!("{}: {shown}", Json::from(key))
        } else {
            format!("{key}: {shown}")
        }
    }

    /// A value as the file's format writes it on one line: JSON, or YAML's flow style.
    fn render(&self, value: &Json) -> String {
        match value {
            Json::Array(items) => {
                let items: Vec<String> = items.iter().map(|i| self.render(i)).collect();
                format!("[{}]", items.join(", "))
            }
            Json::Object(map) if self.json => {
                let entries: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{}: {}", Json::from(k.as_str()), self.render(v)))
                    .collect();
                format!("{{{}}}", entries.join(", "))
            }
            Json::Object(map) => {
                let entries: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", self.render(v)))
                    .collect();
                format!("{{ {} }}", entries.join(", "))
            }
            Json::String(text) if !self.json && plain_in_yaml(text) => text.clone(),
            other => other.to_string(),
        }
    }
}

/// Whether a text reads as itself, unquoted, in YAML (not a number, boolean or null, and
/// nothing YAML gives a meaning to).
fn plain_in_yaml(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | '~')
        })
        && !text.starts_with(['-', ':'])
        && !text.ends_with(':')
        && !text.contains(": ")
        && text.parse::<f64>().is_err()
        && !matches!(text, "true" | "false" | "null" | "~")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_are_written_in_the_files_format() {
        let schema = super::super::structure::schema();
        let cluster = &schema["$defs"]["ClusterSpec"]["properties"];
        let yaml = Hints::new(schema, false);
        let json = Hints::new(schema, true);
        assert_eq!(
            yaml.write(&cluster["nodes"], "nodes", false, &Value::Int(5)),
            "write `nodes: [{ name: ... }]`, or one `- name: ...` line per item below `nodes:`"
        );
        assert_eq!(
            json.write(&cluster["nodes"], "nodes", false, &Value::Int(5)),
            "write `\"nodes\": [{\"name\": \"...\"}]`"
        );
        assert_eq!(
            json.write(&cluster["name"], "name", false, &Value::Int(5)),
            "write `\"name\": \"5\"`"
        );
        let user = &schema["$defs"]["UserSpec"]["properties"];
        assert_eq!(
            yaml.write(
                &user["groups"],
                "groups",
                false,
                &Value::Text("docker".into())
            ),
            "write `groups: [docker]`"
        );
        assert_eq!(
            yaml.write(&cluster["cpu"], "cpu", false, &Value::Text("many".into())),
            "write a whole number from 1 to 32, e.g. `cpu: 2`"
        );
        assert_eq!(
            yaml.add(&schema["properties"]["lab"], "lab"),
            "add `lab: k8s`"
        );
        assert!(!plain_in_yaml("0644") && !plain_in_yaml("yes: no") && plain_in_yaml("k8s"));
    }
}
