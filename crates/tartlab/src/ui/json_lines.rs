//! One JSON object per event, on stdout (`--json`) or appended to `.tartlab/events.jsonl`.
//! Schema: `time` (RFC 3339), `elapsed_ms` (since the command started), `node` (VM name, or
//! null for the lab), `stage`, `status` (`started`, `done`, `failed`, `skipped`, `info`),
//! `message`, and `detail` where the event carries typed data: a pull's progress, an
//! address, what a node waits for, the run's start and its end with the recap
//! (docs/LIFECYCLE.md, "Output"); a step's lines of output stay in its transcript. On
//! stdout (`--json`) the run's end is the recap object itself, `{"recap": [...],
//! "exit_code": N}`, the last line.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::engine::events::{Detail, Event, EventSink, Stage, Status};

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    elapsed_ms: u128,
    node: Option<&'a str>,
    stage: Stage,
    status: Status,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a Detail>,
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
        let file = crate::files::open_append(path).ok()?;
        Some(JsonLines {
            target: Target::File(Mutex::new(file)),
        })
    }
}

impl EventSink for JsonLines {
    fn record(&self, event: &Event, elapsed: Duration) {
        if matches!(event.detail, Some(Detail::Output { .. })) {
            return;
        }
        if let (
            Target::Stdout,
            Some(Detail::RunFinished {
                recap, exit_code, ..
            }),
        ) = (&self.target, &event.detail)
        {
            let json = serde_json::json!({ "recap": recap, "exit_code": exit_code });
            let _ = writeln!(std::io::stdout(), "{json}");
            return;
        }
        let line = Line {
            time: crate::clock::now_rfc3339(),
            elapsed_ms: elapsed.as_millis(),
            node: event.node.as_deref(),
            stage: event.stage,
            status: event.status,
            message: &event.message,
            detail: event.detail.as_ref(),
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
