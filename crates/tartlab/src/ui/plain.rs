//! One line per event on stderr, for logs and CI: `[  12.3s] dev-master: ssh done: admin@...`.
//! A pull's progress is shown at most every 10 %, not at every step tart reports; a warning
//! is a `warning:` line, said when it happens and again with the recap (`recap.rs`), which is
//! the run's end. A step's lines of output are left to the transcript (`tartlab logs`).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::engine::events::{Detail, Event, EventSink, Status};

#[derive(Default)]
pub struct Plain {
    /// The last tenth of each pull's progress shown, by what is pulled.
    pulled: Mutex<HashMap<String, u32>>,
    /// The run's warnings, said again with the recap.
    warnings: Mutex<Vec<String>>,
}

impl Plain {
    /// Whether a pull's progress adds a tenth to what was shown.
    fn worth_showing(&self, event: &Event) -> bool {
        let Some(Detail::Pull {
            image,
            percent: Some(percent),
        }) = &event.detail
        else {
            return true;
        };
        if event.status == Status::Done {
            return true;
        }
        let Ok(mut shown) = self.pulled.lock() else {
            return true;
        };
        let tenth = percent / 10;
        match shown.get(image) {
            Some(last) if *last >= tenth => false,
            _ => {
                shown.insert(image.clone(), tenth);
                true
            }
        }
    }
}

impl EventSink for Plain {
    fn record(&self, event: &Event, elapsed: Duration) {
        match &event.detail {
            Some(Detail::RunFinished { command, recap, .. }) => {
                let warnings = self
                    .warnings
                    .lock()
                    .map(|mut w| std::mem::take(&mut *w))
                    .unwrap_or_default();
                return super::recap::show(command, recap, &warnings);
            }
            Some(Detail::RunStarted { .. } | Detail::Output { .. }) => return,
            _ => {}
        }
        if event.status == Status::Warning {
            let _ = writeln!(std::io::stderr(), "warning: {}", event.message);
            if let Ok(mut warnings) = self.warnings.lock() {
                warnings.push(event.message.clone());
            }
            return;
        }
        if !self.worth_showing(event) {
            return;
        }
        let who = event.node.as_deref().unwrap_or("lab");
        let word = match event.status {
            Status::Started | Status::Info => "",
            Status::Done => " done",
            Status::Failed => " FAILED",
            Status::Skipped => " skipped",
            Status::Warning => " warning",
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
