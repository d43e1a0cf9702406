//! The live display on a terminal: a line per node (a spinner, the stage, the time spent in
//! it, the detail), a line for the lab (image pulls), redrawn ten times a second on stderr.
//! Warnings wait until the frame is done; then the recap (`recap.rs`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::events::{Detail, Event, EventSink, Status};

struct NodeLine {
    node: String,
    stage: String,
    status: Status,
    message: String,
    since: Instant,
    finished: Option<Duration>,
    /// Once failed, the node's line says so to the end (a VM stopped after a failure does
    /// not turn it into a success).
    failed: bool,
}

struct Screen {
    lines: Vec<NodeLine>,
    lab_line: String,
    drawn: usize,
    /// Shown under the last frame.
    warnings: Vec<String>,
}

struct Shared {
    colour: bool,
    start: Instant,
    screen: Mutex<Screen>,
    stopped: AtomicBool,
}

pub struct Live {
    shared: Arc<Shared>,
}

impl Live {
    /// Starts drawing, one line per node.
    pub fn start(nodes: &[String], colour: bool) -> Live {
        let now = Instant::now();
        let shared = Arc::new(Shared {
            colour,
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
                        failed: false,
                    })
                    .collect(),
                lab_line: String::new(),
                drawn: 0,
                warnings: Vec::new(),
            }),
            stopped: AtomicBool::new(false),
        });
        let ticker = shared.clone();
        std::thread::spawn(move || {
            while !ticker.stopped.load(Ordering::SeqCst) {
                ticker.redraw();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Live { shared }
    }
}

impl EventSink for Live {
    fn record(&self, event: &Event, _elapsed: Duration) {
        match &event.detail {
            Some(Detail::RunFinished { command, recap, .. }) => {
                self.finish();
                super::recap::show(command, recap);
                return;
            }
            Some(Detail::RunStarted { .. }) => return,
            _ => {}
        }
        let Ok(mut screen) = self.shared.screen.lock() else {
            return;
        };
        if event.status == Status::Warning {
            screen.warnings.push(event.message.clone());
            return;
        }
        let first = event.message.lines().next().unwrap_or("").to_string();
        let Some(node) = &event.node else {
            screen.lab_line = format!("{}: {first}", event.stage);
            return;
        };
        let Some(line) = screen.lines.iter_mut().find(|l| &l.node == node) else {
            return;
        };
        if line.stage != event.stage.as_str() || event.status != Status::Started {
            line.since = Instant::now();
        }
        line.stage = event.stage.to_string();
        line.status = event.status;
        line.message = first;
        line.failed |= event.status == Status::Failed;
        let ends = event.status == Status::Failed
            || (event.status == Status::Done && event.stage.ends_the_node());
        if ends && line.finished.is_none() {
            line.finished = Some(self.shared.start.elapsed());
        }
    }

    fn finish(&self) {
        if !self.shared.stopped.swap(true, Ordering::SeqCst) {
            self.shared.redraw();
            let warnings = self
                .shared
                .screen
                .lock()
                .map(|mut s| std::mem::take(&mut s.warnings))
                .unwrap_or_default();
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
        }
    }
}

impl Shared {
    fn paint(&self, text: &str, code: &str) -> String {
        if self.colour {
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
        // The last frame (after `finish`) has no spinner: what did not end shows `-`.
        let spinner = if self.stopped.load(Ordering::SeqCst) {
            "-"
        } else {
            ["|", "/", "-", "\\"][(self.start.elapsed().as_millis() / 100 % 4) as usize]
        };
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
            let (mark, time) = match (line.failed, line.finished) {
                (true, Some(t)) => (self.paint("x", "31"), t),
                (false, Some(t)) => (self.paint("+", "32"), t),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::Stage;

    #[test]
    fn a_failed_node_keeps_its_cross_and_a_finished_one_its_time() {
        let live = Live::start(&["a".into(), "b".into()], false);
        let event = |node: &str, stage, status| Event {
            node: Some(node.into()),
            stage,
            status,
            message: String::new(),
            detail: None,
        };
        live.record(&event("a", Stage::Ssh, Status::Failed), Duration::ZERO);
        // The VM is stopped after its failure: still a failure on the screen.
        live.record(&event("a", Stage::Stop, Status::Done), Duration::ZERO);
        live.record(&event("b", Stage::Ready, Status::Done), Duration::ZERO);
        live.record(&event("b", Stage::Base, Status::Started), Duration::ZERO);
        live.shared.stopped.store(true, Ordering::SeqCst);
        let screen = live.shared.screen.lock().unwrap();
        assert!(screen.lines[0].finished.is_some() && screen.lines[0].failed);
        assert!(screen.lines[1].finished.is_some() && !screen.lines[1].failed);
    }
}
