//! One line per event on stderr, for logs and CI: `[  12.3s] dev-master: ssh done: admin@...`.
//! A pull's progress is shown at most every 10 %, not at every step tart reports.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::engine::events::{Event, EventSink, Stage, Status};

#[derive(Default)]
pub struct Plain {
    /// The last tenth of each pull's progress shown, by what is pulled.
    pulled: Mutex<HashMap<String, u32>>,
}

impl Plain {
    /// Whether a pull's progress line (`IMAGE: 45%`) adds a tenth to what was shown.
    fn worth_showing(&self, event: &Event) -> bool {
        if event.stage != Stage::Pull || !matches!(event.status, Status::Started | Status::Info) {
            return true;
        }
        let Some((image, percent)) = event.message.rsplit_once(": ") else {
            return true;
        };
        let Some(percent) = percent
            .strip_suffix('%')
            .and_then(|p| p.parse::<u32>().ok())
        else {
            return true;
        };
        let Ok(mut shown) = self.pulled.lock() else {
            return true;
        };
        let tenth = percent / 10;
        match shown.get(image) {
            Some(last) if *last >= tenth => false,
            _ => {
                shown.insert(image.to_string(), tenth);
                true
            }
        }
    }
}

impl EventSink for Plain {
    fn record(&self, event: &Event, elapsed: Duration) {
        if !self.worth_showing(event) {
            return;
        }
        let who = event.node.as_deref().unwrap_or("lab");
        let word = match event.status {
            Status::Started | Status::Info => "",
            Status::Done => " done",
            Status::Failed => " FAILED",
            Status::Skipped => " skipped",
        };
        let first = event.message.lines().next().unwrap_or("");
        let _ = writeln!(
            std::io::stderr(),
            "[{:>6.1}s] {who}: {}{word}{}{first}",
            elapsed.as_secs_f64(),
            event.stage,
            if first.is_empty() { "" } else { ": " }
        );
    }
}
