//! What the user sees while tartlab works: the engine's events drawn by one of three sinks
//! (a live line per node on a terminal, `live.rs`; plain lines when not on a terminal or
//! when `CI` is set, `plain.rs`; JSON lines with `--json`, `json_lines.rs`), and every event
//! also in `.tartlab/events.jsonl` (the same JSON lines). NO_COLOR is honoured. Also the
//! plain text tables the commands print.

mod json_lines;
mod live;
mod plain;
pub mod recap;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use crate::engine::events::{EventSink, Reporter};
pub use json_lines::JsonLines;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Plain,
    Json,
}

impl Mode {
    pub fn detect(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
            Mode::Live
        } else {
            Mode::Plain
        }
    }
}

/// A line of the command's result, on stdout.
pub fn out(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// Whether to colour what goes to stderr.
pub fn colour_on_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// The reporter for a command working on `nodes`: the display `mode` asks for, and the
/// lab's journal (`events.jsonl`) when given.
pub fn reporter(mode: Mode, nodes: &[String], journal: Option<&Path>) -> Arc<Reporter> {
    let start = std::time::Instant::now();
    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    match mode {
        Mode::Live => sinks.push(Box::new(live::Live::start(
            nodes,
            colour_on_stderr(),
            start,
        ))),
        Mode::Plain => sinks.push(Box::new(plain::Plain::default())),
        Mode::Json => sinks.push(Box::new(JsonLines::stdout())),
    }
    if let Some(journal) = journal.and_then(JsonLines::append_to) {
        sinks.push(Box::new(journal));
    }
    Reporter::starting_at(start, sinks)
}

/// A plain text table: left-aligned columns two spaces apart, no trailing spaces.
pub fn table<S: AsRef<str>>(header: &[&str], rows: &[Vec<S>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.as_ref().chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text.push('\n');
        text.push_str(&line(row.iter().map(AsRef::as_ref).collect()));
    }
    text
}
