//! The lab file: found (`-f`, else `tartlab.yaml`, `.yml`, `.json`), parsed from YAML or
//! JSON into the typed model, validated with every problem located, and expanded into the
//! nodes that will exist (`Lab`).

mod check;
mod diagnostic;
pub mod model;
mod network;

use std::path::{Path, PathBuf};

pub use check::{authorized_key_text, output_references, selects, validate, Node, OutputReference};
pub use diagnostic::{Diagnostic, Source};
use model::LabFile;
pub use network::NetworkMode;

/// A lab file read and parsed, not yet validated, with where it came from.
pub struct ParsedLab {
    pub source: Source,
    pub file: LabFile,
}

/// A valid lab: the file as written, where it came from, and the nodes it declares (every
/// setting resolved, counts expanded, names as they will be).
pub struct Lab {
    pub file: LabFile,
    pub source: Source,
    pub nodes: Vec<Node>,
}

impl Lab {
    /// Reads, parses and validates a lab file; every problem found, or the lab.
    pub fn open(path: &Path) -> Result<Lab, Vec<Diagnostic>> {
        let parsed = load(path)?;
        let nodes = validate(&parsed.file, &parsed.source)?;
        Ok(Lab {
            file: parsed.file,
            source: parsed.source,
            nodes,
        })
    }

    pub fn name(&self) -> &str {
        &self.file.lab
    }

    pub fn node(&self, vm: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.vm_name == vm)
    }
}

/// Where the lab file is: the given path, or the first default that exists.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, Box<Diagnostic>> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    ["tartlab.yaml", "tartlab.yml", "tartlab.json"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Box::new(Diagnostic::unlocated(
                "no lab file here: looked for tartlab.yaml, tartlab.yml and tartlab.json",
                "pass one with -f FILE, or start from examples/minimal.yaml",
            ))
        })
}

/// Reads and parses a lab file. Syntax and type errors come back located.
pub fn load(path: &Path) -> Result<ParsedLab, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::unlocated(
            &format!("cannot read {}: {e}", path.display()),
            "check the path given with -f",
        )]
    })?;
    parse(Source::new(path, text))
}

/// Parses lab file text (YAML, or JSON when the path ends in `.json`). Never panics, whatever
/// the bytes: a property test holds it to that.
pub fn parse(source: Source) -> Result<ParsedLab, Vec<Diagnostic>> {
    let parsed = if source.is_json() {
        serde_json::from_str::<LabFile>(&source.text).map_err(|e| {
            let (line, column) = (e.line(), e.column());
            source.at_line(line, column, &json_message(&e), &help_for(&e.to_string()))
        })
    } else {
        serde_saphyr::from_str::<LabFile>(&source.text).map_err(|e| {
            let message = yaml_message(&e.to_string());
            match e.location() {
                Some(loc) => source.at_line(
                    loc.line() as usize,
                    loc.column() as usize,
                    &message,
                    &help_for(&message),
                ),
                None => Diagnostic::unlocated(&message, &help_for(&message)).in_file(&source),
            }
        })
    };
    match parsed {
        Ok(file) => Ok(ParsedLab { source, file }),
        Err(d) => Err(vec![d]),
    }
}

fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// serde-saphyr puts the location and a snippet in its message; we render our own.
fn yaml_message(text: &str) -> String {
    let first = text.lines().next().unwrap_or(text);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let first = match first.find(": ") {
        Some(i) if first[..i].starts_with("line ") => &first[i + 2..],
        _ => first,
    };
    match first.trim() {
        m if m.starts_with("invalid u") || m.starts_with("invalid i") => {
            format!("expected a whole number here ({m})")
        }
        m => m.to_string(),
    }
}

fn help_for(message: &str) -> String {
    if message.contains("unknown field") {
        "remove the key or fix its spelling; `tartlab schema` lists every key".into()
    } else if message.contains("missing field") {
        "add the key; `tartlab schema` shows what each section needs".into()
    } else if message.contains("invalid") || message.contains("expected a whole number") {
        "give the value the type the key expects; `tartlab schema` shows it".into()
    } else {
        "fix the syntax at this place".into()
    }
}
