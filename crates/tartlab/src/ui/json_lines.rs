//! One JSON object per event, on stdout (`--json`) or appended to `.tartlab/events.jsonl`.
//! Schema: `time` (RFC 3339), `elapsed_ms` (since the command started), `node` (VM name, or
//! null for the lab), `stage`, `status` (`started`, `done`, `failed`, `skipped`, `info`),
//! `message` (docs/LIFECYCLE.md, "Output").

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::engine::events::{Event, EventSink, Stage, Status};

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    elapsed_ms: u128,
    node: Option<&'a str>,
    stage: Stage,
    status: Status,
    message: &'a str,
}

enum Target {
    Stdout,
    File(Mutex<File>),
}

pub struct JsonLines {
    target: Target,
}

impl JsonLines {
    pub fn stdout() -> JsonLines {
        JsonLines {
            target: Target::Stdout,
        }
    }

    /// Appends to the file (the journal); `None` if it cannot be opened.
    pub fn append_to(path: &Path) -> Option<JsonLines> {
        let file = crate::state::open_append(path).ok()?;
        Some(JsonLines {
            target: Target::File(Mutex::new(file)),
        })
    }
}

impl EventSink for JsonLines {
    fn record(&self, event: &Event, elapsed: Duration) {
        let line = Line {
            time: crate::state::now_rfc3339(),
            elapsed_ms: elapsed.as_millis(),
            node: event.node.as_deref(),
            stage: event.stage,
            status: event.status,
            message: &event.message,
        };
        let Ok(json) = serde_json::to_string(&line) else {
            return;
        };
        match &self.target {
            Target::Stdout => {
                let _ = writeln!(std::io::stdout(), "{json}");
            }
            Target::File(file) => {
                if let Ok(mut f) = file.lock() {
                    let _ = writeln!(f, "{json}");
                }
            }
        }
    }
}
