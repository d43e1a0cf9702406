//! What the user sees while tartlab works: a live line per node on a terminal (stage and
//! elapsed time), plain lines when not on a terminal or when `CI` is set, JSON lines with
//! `--json`. Every event also goes to `.tartlab/events.jsonl`. NO_COLOR is honoured.
//!
//! Event schema (one JSON object per line): `time` (RFC 3339), `elapsed_ms` (since the
//! command started), `node` (VM name, or null for the lab), `stage` (e.g. `create`, `boot`,
//! `ip`, `ssh`, `base`, `stop`, `delete`, `pull`), `status` (`started`, `done`, `failed`,
//! `skipped`, `info`), `message` (text, may be empty).

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Started,
    Done,
    Failed,
    Skipped,
    Info,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    pub time: String,
    pub elapsed_ms: u128,
    pub node: Option<&'a str>,
    pub stage: &'a str,
    pub status: Status,
    pub message: &'a str,
}

struct NodeLine {
    node: String,
    stage: String,
    status: Status,
    message: String,
    since: Instant,
    finished: Option<Duration>,
}

struct Screen {
    lines: Vec<NodeLine>,
    lab_line: String,
    drawn: usize,
}

pub struct Ui {
    mode: Mode,
    color: bool,
    start: Instant,
    screen: Mutex<Screen>,
    journal: Option<Mutex<File>>,
    stopped: AtomicBool,
}

impl Ui {
    /// A reporter for these nodes; `journal` is the lab's events.jsonl.
    pub fn new(mode: Mode, nodes: &[String], journal: Option<&Path>) -> Arc<Ui> {
        let now = Instant::now();
        let journal = journal.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
                .map(Mutex::new)
        });
        let ui = Arc::new(Ui {
            mode,
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stderr().is_terminal(),
            start: now,
            screen: Mutex::new(Screen {
                lines: nodes
                    .iter()
                    .map(|n| NodeLine {
                        node: n.clone(),
                        stage: "waiting".into(),
                        status: Status::Started,
                        message: String::new(),
                        since: now,
                        finished: None,
                    })
                    .collect(),
                lab_line: String::new(),
                drawn: 0,
            }),
            journal,
            stopped: AtomicBool::new(false),
        });
        if mode == Mode::Live {
            let ticker = ui.clone();
            std::thread::spawn(move || {
                while !ticker.stopped.load(Ordering::SeqCst) {
                    ticker.redraw();
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        ui
    }

    pub fn started(&self, node: &str, stage: &str, message: &str) {
        self.event(Some(node), stage, Status::Started, message);
    }
    pub fn done(&self, node: &str, stage: &str, message: &str) {
        self.event(Some(node), stage, Status::Done, message);
    }
    pub fn skipped(&self, node: &str, stage: &str, message: &str) {
        self.event(Some(node), stage, Status::Skipped, message);
    }
    pub fn failed(&self, node: &str, stage: &str, message: &str) {
        self.event(Some(node), stage, Status::Failed, message);
    }
    /// A lab-wide line (preflight, image pulls).
    pub fn info(&self, stage: &str, message: &str) {
        self.event(None, stage, Status::Info, message);
    }

    fn event(&self, node: Option<&str>, stage: &str, status: Status, message: &str) {
        let event = Event {
            time: crate::state::now_rfc3339(),
            elapsed_ms: self.start.elapsed().as_millis(),
            node,
            stage,
            status,
            message,
        };
        let json = serde_json::to_string(&event).unwrap_or_default();
        if let Some(journal) = &self.journal {
            if let Ok(mut f) = journal.lock() {
                let _ = writeln!(f, "{json}");
            }
        }
        match self.mode {
            Mode::Json => {
                let _ = writeln!(std::io::stdout(), "{json}");
            }
            Mode::Plain => {
                let who = node.unwrap_or("lab");
                let word = match status {
                    Status::Started => "",
                    Status::Done => " done",
                    Status::Failed => " FAILED",
                    Status::Skipped => " skipped",
                    Status::Info => "",
                };
                let first = message.lines().next().unwrap_or("");
                let _ = writeln!(
                    std::io::stderr(),
                    "[{:>6.1}s] {who}: {stage}{word}{}{first}",
                    self.start.elapsed().as_secs_f64(),
                    if first.is_empty() { "" } else { ": " }
                );
            }
            Mode::Live => {
                if let Ok(mut screen) = self.screen.lock() {
                    match node {
                        None => screen.lab_line = format!("{stage}: {message}"),
                        Some(node) => {
                            if let Some(line) = screen.lines.iter_mut().find(|l| l.node == node) {
                                if line.stage != stage || status != Status::Started {
                                    line.since = Instant::now();
                                }
                                line.stage = stage.to_string();
                                line.status = status;
                                line.message = message.lines().next().unwrap_or("").to_string();
                                if matches!(status, Status::Failed)
                                    || (status == Status::Done
                                        && matches!(stage, "ready" | "stop" | "delete"))
                                {
                                    line.finished = Some(self.start.elapsed());
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn redraw(&self) {
        let Ok(mut screen) = self.screen.lock() else {
            return;
        };
        let width = screen.lines.iter().map(|l| l.node.len()).max().unwrap_or(4);
        let spinner = ["|", "/", "-", "\\"][(self.start.elapsed().as_millis() / 100 % 4) as usize];
        let mut text = String::new();
        if screen.drawn > 0 {
            text.push_str(&format!("\x1b[{}A", screen.drawn));
        }
        let mut count = 0;
        if !screen.lab_line.is_empty() {
            text.push_str(&format!("\r\x1b[2K  {}\n", screen.lab_line));
            count += 1;
        }
        for line in &screen.lines {
            let (mark, time) = match (line.status, line.finished) {
                (Status::Failed, Some(t)) => (self.paint("x", "31"), t),
                (_, Some(t)) => (self.paint("+", "32"), t),
                _ => (spinner.to_string(), line.since.elapsed()),
            };
            text.push_str(&format!(
                "\r\x1b[2K{mark} {:<width$}  {:<9} {:>6.1}s  {}\n",
                line.node,
                line.stage,
                time.as_secs_f64(),
                line.message
            ));
            count += 1;
        }
        screen.drawn = count;
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }

    /// Stops the live display, leaving its last frame on screen.
    pub fn finish(&self) {
        if self.mode == Mode::Live && !self.stopped.swap(true, Ordering::SeqCst) {
            self.redraw();
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }
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
