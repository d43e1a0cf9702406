//! One line per event on stderr, for logs and CI: `[  12.3s] dev-master: ssh done: admin@...`.

use std::io::Write;
use std::time::Duration;

use crate::engine::events::{Event, EventSink, Status};

pub struct Plain;

impl EventSink for Plain {
    fn record(&self, event: &Event, elapsed: Duration) {
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
