//! Problems in a lab file, each with file, line and column, a snippet and a one-line fix,
//! rendered like a compiler's (and as JSON with `--json`).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::text;

/// The most characters of a value quoted in a message (between backticks).
const QUOTED_WIDTH: usize = 80;
/// The most characters of a whole message or help.
const MESSAGE_WIDTH: usize = 2000;
/// The most characters of the source line shown under a problem.
const SNIPPET_WIDTH: usize = 100;

/// A message as shown: each value quoted in backticks cut to `QUOTED_WIDTH`, control
/// characters escaped, the whole cut to `MESSAGE_WIDTH` (a 10 MB name in the file makes a
/// line of error, not 10 MB of it).
fn tidy(message: &str) -> String {
    let quoted_cut: Vec<String> = message
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                // A quoted value stays on the message's line.
                let one_line = part.replace('\n', "\\n").replace('\t', "\\t");
                text::cut(&one_line, QUOTED_WIDTH)
            } else {
                text::cut(part, MESSAGE_WIDTH)
            }
        })
        .collect();
    text::cut(
        &text::printable(&quoted_cut.join("`"), text::MESSAGE),
        MESSAGE_WIDTH,
    )
}

/// The part of a source line shown under a problem, escaped, and where the caret goes in
/// it (1-based): at most `SNIPPET_WIDTH` characters around `column`, `…` where cut.
fn snippet_view(line: &str, column: usize) -> (String, usize) {
    let target = column.saturating_sub(1);
    let start = target.saturating_sub(SNIPPET_WIDTH / 2);
    let mut shown = String::new();
    let mut caret = 1;
    if start > 0 {
        shown.push('…');
        caret += 1;
    }
    let mut width = 0;
    let mut chars = line.chars().skip(start).enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        let piece = text::printable(c.encode_utf8(&mut [0; 4]), 1).into_owned();
        if start + i < target {
            caret += piece.chars().count();
        }
        width += piece.chars().count();
        shown.push_str(&piece);
        if width >= SNIPPET_WIDTH && chars.peek().is_some() {
            shown.push('…');
            break;
        }
    }
    (shown, caret)
}

/// The lab file's text, kept to locate and show problems.
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    pub fn new(path: &Path, text: String) -> Source {
        Source {
            path: path.to_path_buf(),
            text,
        }
    }

    pub fn is_json(&self) -> bool {
        self.path.extension().is_some_and(|e| e == "json")
    }

    /// The directory relative paths in the file are resolved against.
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    pub fn at_line(&self, line: usize, column: usize, message: &str, help: &str) -> Diagnostic {
        Diagnostic {
            message: tidy(message),
            help: tidy(help),
            file: Some(tidy(&self.path.display().to_string())),
            line: Some(line),
            column: Some(column.max(1)),
            snippet: self
                .text
                .lines()
                .nth(line.saturating_sub(1))
                .map(str::to_string),
        }
    }

    /// Locates the `nth` (0-based) place where `key` is given the value `value`, in YAML
    /// (`key: value`, `{ key: value }`) or JSON (`"key": "value"`). A value inside a list
    /// (`key: [a, value]`, or a `- value` item) is found when no `key: value` is.
    pub fn find(&self, key: &str, value: &str, nth: usize) -> Option<(usize, usize)> {
        let mut keyed = Vec::new();
        let mut listed = Vec::new();
        for (i, line) in self.text.lines().enumerate() {
            if value.is_empty() {
                // No value to look for: point at the key itself.
                if let Some(col) = line.find(&format!("{key}:")) {
                    keyed.push((i + 1, col + 1));
                }
                continue;
            }
            for (col, _) in line.match_indices(value) {
                let before = line[..col].trim_end_matches(['"', '\'', ' ']);
                let after = line[col + value.len()..].chars().next();
                if after.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_') {
                    continue;
                }
                let is_keyed = before
                    .strip_suffix(':')
                    .is_some_and(|b| b.trim_end_matches(['"', '\'']).ends_with(key));
                if is_keyed {
                    keyed.push((i + 1, col + 1));
                } else if before.ends_with(['-', '[', ',']) {
                    listed.push((i + 1, col + 1));
                }
            }
        }
        let hits = if keyed.is_empty() { listed } else { keyed };
        hits.get(nth).copied()
    }

    /// A diagnostic at the `nth` place `key` has `value`, or unlocated within the file.
    pub fn problem(
        &self,
        key: &str,
        value: &str,
        nth: usize,
        message: String,
        help: String,
    ) -> Diagnostic {
        // A value written otherwise (`4GiB` for 4096) is not found as given: the key then.
        match self
            .find(key, value, nth)
            .or_else(|| self.find(key, value, 0))
            .or_else(|| self.find(key, "", nth))
        {
            Some((line, column)) => self.at_line(line, column, &message, &help),
            None => Diagnostic::unlocated(&message, &help).in_file(self),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub help: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    #[serde(skip)]
    pub snippet: Option<String>,
}

impl Diagnostic {
    pub fn unlocated(message: &str, help: &str) -> Diagnostic {
        Diagnostic {
            message: tidy(message),
            help: tidy(help),
            file: None,
            line: None,
            column: None,
            snippet: None,
        }
    }

    pub fn in_file(mut self, source: &Source) -> Diagnostic {
        self.file = Some(tidy(&source.path.display().to_string()));
        self
    }

    /// `error: ...`, ` --> file:line:col`, the source line with a caret, `= help: ...`.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", self.message);
        match (&self.file, self.line, self.column) {
            (Some(file), Some(line), Some(column)) => {
                let width = line.to_string().len();
                out.push_str(&format!("{:width$}--> {file}:{line}:{column}\n", ""));
                if let Some(snippet) = &self.snippet {
                    let (shown, caret) = snippet_view(snippet, column);
                    out.push_str(&format!("{:width$} |\n", ""));
                    out.push_str(&format!("{line} | {shown}\n"));
                    out.push_str(&format!("{:width$} | {:>col$}\n", "", "^", col = caret));
                }
                out.push_str(&format!("{:width$} = help: {}\n", "", self.help));
            }
            (Some(file), _, _) => {
                out.push_str(&format!(" --> {file}\n = help: {}\n", self.help));
            }
            _ => out.push_str(&format!(" = help: {}\n", self.help)),
        }
        out
    }
}
