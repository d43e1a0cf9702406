//! The checker's notebook: the problems found so far, each located in the lab file, and
//! the host files the lab names, read once each and refused once each.

use std::collections::HashSet;
use std::path::Path;

use super::diagnostic::{Diagnostic, Source};
use super::input::{self, Confinement, Inputs, Kind, Refusal};
use super::structure::Reading;

pub(super) struct Checker<'a> {
    pub(super) source: &'a Source,
    pub(super) reading: &'a Reading,
    pub(super) problems: Vec<Diagnostic>,
    /// Where the lab's inputs may be, those read so far (each once), and the inputs
    /// refused or checked already (each said once).
    pub(super) confinement: Confinement,
    pub(super) inputs: Inputs,
    pub(super) refused: HashSet<String>,
}

/// Where a problem is: the value at a path of the model (`clusters.1.name`), or the key.
pub(super) enum Here {
    Value(String),
    Key(String),
}

impl<'a> Checker<'a> {
    pub(super) fn new(source: &'a Source, reading: &'a Reading) -> Self {
        Checker {
            source,
            reading,
            problems: Vec::new(),
            confinement: Confinement::new(&source.dir()),
            inputs: Inputs::default(),
            refused: HashSet::new(),
        }
    }

    pub(super) fn error(&mut self, here: Here, message: String, help: &str) {
        let (path, spot) = match &here {
            Here::Value(path) => (path, self.reading.spots.value(path)),
            Here::Key(path) => (path, self.reading.spots.key(path)),
        };
        let problem = match spot {
            Some(spot) => self.source.at_line(spot.line, spot.column, &message, help),
            // Read without places (JSON the YAML parser refused): found by its key's text.
            None => {
                let key = path.rsplit('.').find(|p| p.parse::<usize>().is_err());
                self.source
                    .problem(key.unwrap_or(""), "", 0, message, help.to_string())
            }
        };
        self.problems.push(problem);
    }

    /// A problem at character `offset` of the string `value` at `path`: the caret goes
    /// there when the value is written as it is (plain or in quotes, on its line), else at the
    /// value's start (an escape or a folded line moves the characters).
    pub(super) fn error_within(
        &mut self,
        path: &str,
        (value, offset): (&str, usize),
        message: String,
        help: &str,
    ) {
        let Some(spot) = self.reading.spots.value(path) else {
            return self.error(Here::Value(path.to_string()), message, help);
        };
        let line = self.source.text.lines().nth(spot.line.saturating_sub(1));
        let from: String = line
            .unwrap_or("")
            .chars()
            .skip(spot.column.saturating_sub(1))
            .collect();
        let column = if from.starts_with(value) {
            spot.column + offset
        } else if from.starts_with(['"', '\'']) && from[1..].starts_with(value) {
            spot.column + 1 + offset
        } else {
            spot.column
        };
        let problem = self.source.at_line(spot.line, column, &message, help);
        self.problems.push(problem);
    }

    /// A problem about something missing, reported only when the whole file was read.
    pub(super) fn absent(&mut self, here: Here, message: String, help: &str) {
        if !self.reading.partial {
            self.error(here, message, help);
        }
    }

    /// Reads an input the lab file names at `here` (`written` as written, found at `path`),
    /// once; a refusal is reported once per path, with `missing` as the help when it does
    /// not exist. Whether it was read.
    pub(super) fn input(
        &mut self,
        here: Here,
        written: &str,
        path: &Path,
        kind: Kind,
        missing: &str,
    ) -> bool {
        let read_before = self.inputs.get(written).map(|b| b.len() as u64);
        if read_before.is_some_and(|len| len <= kind.limit()) {
            return true;
        }
        let said = format!("{kind:?} {written}");
        if self.refused.contains(&said) {
            return false;
        }
        let what = kind.name();
        let (message, help) = match input::read(path, kind, &self.confinement) {
            Ok(bytes) if self.inputs.total() + bytes.len() as u64 > input::TOTAL_LIMIT => (
                format!("{what} `{written}` takes the lab's inputs over 256 MiB together"),
                "copy large data with a step (or `tartlab cp`) instead of `files:`".to_string(),
            ),
            Ok(bytes) => {
                self.inputs.insert(written, bytes);
                return true;
            }
            Err(refusal) => (
                format!(
                    "{what} `{written}` {}",
                    refusal.describe(kind, self.confinement.lab_dir())
                ),
                refusal_help(&refusal, kind, missing),
            ),
        };
        self.refused.insert(said);
        self.error(here, message, &help);
        false
    }
}

/// What to do about an input that was refused.
fn refusal_help(refusal: &Refusal, kind: Kind, missing: &str) -> String {
    let limit = kind.limit_text();
    match refusal {
        Refusal::Missing => missing.to_string(),
        Refusal::Outside(_) => "keep the lab's inputs in its directory, or name the directory they come from in `allow_paths_outside:` at the top of the lab file (docs/LAB-FILE.md, \"Paths outside the lab\")".to_string(),
        Refusal::NotRegular(_) => "give a regular file".to_string(),
        Refusal::TooLarge(_) if kind == Kind::File => format!(
            "a `files` source may be at most {limit}; copy larger data with a step (or `tartlab cp`)"
        ),
        Refusal::TooLarge(_) => {
            format!("at most {limit}: keep it short and fetch what it needs from the guest")
        }
        Refusal::Io(_) => "check the file's permissions".to_string(),
    }
}

/// Child paths, as the structural pass writes them.
pub(super) fn at(path: &str, child: impl std::fmt::Display) -> String {
    if path.is_empty() {
        child.to_string()
    } else {
        format!("{path}.{child}")
    }
}

/// A path the lab file names: `~/` is the user's home; other paths are relative to the
/// lab file.
pub(super) fn expand_home(path: &str, source: &Source) -> std::path::PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        return Path::new(&std::env::var("HOME").unwrap_or_default()).join(rest);
    }
    source.dir().join(path)
}
