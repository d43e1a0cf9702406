//! The live display on a terminal, redrawn ten times a second on stderr: one overall line
//! (how many nodes are ready, the time since the command began, the slowest stage now), a
//! line for the lab (image pulls), and a line per node (a mark, its stage, the time spent in
//! it, and what it does: what it waits for, or its running step's last line of output). Every
//! line is cut to the terminal's width, so none wraps and the next redraw covers it all.
//! Times are the events' own stamps, read on the reporter's clock. When the run ends the
//! frame is erased and the recap (`recap.rs`) takes its place, with the warnings of the run.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::events::{Detail, Event, EventSink, Status};

struct NodeLine {
    node: String,
    stage: String,
    message: String,
    /// The running step's last line of output, until the stage moves on.
    output: Option<String>,
    /// Whether the node waits (for peers, an image, a lock) rather than works.
    waiting: bool,
    /// When the current stage began, on the reporter's clock.
    since: Duration,
    /// When the node's work ended, on the reporter's clock (its last ending event).
    finished: Option<Duration>,
    /// Once failed, the node's line says so to the end (a VM stopped after a failure does
    /// not turn it into a success).
    failed: bool,
}

struct Screen {
    command: String,
    lines: Vec<NodeLine>,
    lab_line: String,
    drawn: usize,
    /// Shown with the recap.
    warnings: Vec<String>,
    /// When the run ended, on the reporter's clock: the overall line stops there.
    ended: Option<Duration>,
}

struct Shared {
    colour: bool,
    /// The reporter's clock: every time shown is measured from here.
    start: Instant,
    screen: Mutex<Screen>,
    stopped: AtomicBool,
}

pub struct Live {
    shared: Arc<Shared>,
}

impl Live {
    /// Starts drawing, one line per node, on the clock that stamps the events.
    pub fn start(nodes: &[String], colour: bool, start: Instant) -> Live {
        let shared = Arc::new(Shared {
            colour,
            start,
            screen: Mutex::new(Screen {
                command: String::new(),
                lines: nodes
                    .iter()
                    .map(|n| NodeLine {
                        node: n.clone(),
                        stage: "waiting".into(),
                        message: String::new(),
                        output: None,
                        waiting: true,
                        since: Duration::ZERO,
                        finished: None,
                        failed: false,
                    })
                    .collect(),
                lab_line: String::new(),
                drawn: 0,
                warnings: Vec::new(),
                ended: None,
            }),
            stopped: AtomicBool::new(false),
        });
        let ticker = shared.clone();
        std::thread::spawn(move || {
            while !ticker.stopped.load(Ordering::SeqCst) {
                ticker.redraw(terminal_width(), false);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Live { shared }
    }
}

impl EventSink for Live {
    fn record(&self, event: &Event, elapsed: Duration) {
        let Ok(mut screen) = self.shared.screen.lock() else {
            return;
        };
        match &event.detail {
            Some(Detail::RunFinished { command, recap, .. }) => {
                screen.ended = Some(elapsed);
                drop(screen);
                let warnings = self.stop();
                super::recap::show(command, recap, &warnings);
                return;
            }
            Some(Detail::RunStarted { command, .. }) => {
                screen.command = command.clone();
                return;
            }
            _ => {}
        }
        if event.status == Status::Warning {
            screen.warnings.push(event.message.clone());
            return;
        }
        let Some(node) = &event.node else {
            let first = event.message.lines().next().unwrap_or("");
            screen.lab_line = format!("{}: {first}", event.stage);
            return;
        };
        let Some(line) = screen.lines.iter_mut().find(|l| &l.node == node) else {
            return;
        };
        if let Some(Detail::Output { line: output }) = &event.detail {
            line.output = Some(output.clone());
            return;
        }
        if line.stage != event.stage.as_str() || event.status != Status::Started {
            line.since = elapsed;
        }
        line.stage = event.stage.to_string();
        line.message = event.message.lines().next().unwrap_or("").to_string();
        line.output = None;
        line.waiting = matches!(event.detail, Some(Detail::Waiting { .. }));
        line.failed |= event.status == Status::Failed;
        if event.ends_the_node() {
            line.finished = Some(elapsed);
        }
    }

    fn finish(&self) {
        // Interrupted (Ctrl-C) or ended without a recap: the last frame stays, warnings under it.
        for warning in self.stop() {
            eprintln!("warning: {warning}");
        }
    }
}

impl Live {
    /// Stops the ticker once; the frame is erased when the recap will take its place on the
    /// same terminal, else drawn a last time. Returns the run's warnings (once).
    fn stop(&self) -> Vec<String> {
        if self.shared.stopped.swap(true, Ordering::SeqCst) {
            return Vec::new();
        }
        // The last state is drawn once, every node's end shown, even when the recap then
        // takes its place at once.
        self.shared.redraw(terminal_width(), true);
        let recap_on_screen = std::io::stdout().is_terminal();
        let Ok(mut screen) = self.shared.screen.lock() else {
            return Vec::new();
        };
        if recap_on_screen && screen.ended.is_some() && screen.drawn > 0 {
            let mut err = std::io::stderr().lock();
            // Line by line, up from the bottom: an erase of the whole screen (`\x1b[J` from
            // its top) sends what it clears into tmux's history, a second copy.
            let _ = write!(err, "\r\x1b[2K{}", "\x1b[1A\x1b[2K".repeat(screen.drawn));
            let _ = err.flush();
            screen.drawn = 0;
        }
        std::mem::take(&mut screen.warnings)
    }
}

/// The width of the terminal on stderr, in columns (80 when it does not say).
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize we own; a failure leaves it zeroed.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
}

impl Screen {
    /// The overall line: how many nodes are ready (and failed), the time since the command
    /// began, and the stage that has run longest among the nodes at work.
    fn overall(&self, now: Duration) -> String {
        let total = self.lines.len();
        let done = self
            .lines
            .iter()
            .filter(|l| l.finished.is_some() && !l.failed)
            .count();
        let failed = self.lines.iter().filter(|l| l.failed).count();
        let word = match self.command.as_str() {
            "up" | "start" | "restart" => "ready",
            _ => "done",
        };
        let verb = if self.command.is_empty() {
            "tartlab"
        } else {
            &self.command
        };
        let mut text = format!(
            "{verb}: {done} of {total} {word}{}  {:.1}s",
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            },
            now.as_secs_f64()
        );
        let slowest = self
            .lines
            .iter()
            .filter(|l| l.finished.is_none() && !l.failed && !l.waiting)
            .min_by_key(|l| l.since);
        if let (Some(slowest), None) = (slowest, self.ended) {
            text.push_str(&format!(
                "  slowest now: {} {} {:.1}s",
                slowest.node,
                slowest.stage,
                now.saturating_sub(slowest.since).as_secs_f64()
            ));
        }
        text
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

    /// Draws the frame over the last one; a tick (`last` false) once the display stopped
    /// draws nothing (checked under the lock, so no tick lands after the recap).
    fn redraw(&self, columns: usize, last: bool) {
        let Ok(mut screen) = self.screen.lock() else {
            return;
        };
        if !last && self.stopped.load(Ordering::SeqCst) {
            return;
        }
        let now = screen.ended.unwrap_or_else(|| self.start.elapsed());
        let width = screen.lines.iter().map(|l| l.node.len()).max().unwrap_or(4);
        // The last frame (after `finish`) has no spinner: what did not end shows `-`.
        let spinner = if self.stopped.load(Ordering::SeqCst) {
            "-"
        } else {
            ["|", "/", "-", "\\"][(self.start.elapsed().as_millis() / 100 % 4) as usize]
        };
        // One column is left free: a line that fills the last one makes some terminals wrap.
        let fit = |text: String| crate::text::cut(&text, columns.saturating_sub(2).max(10));
        let mut rows = vec![fit(screen.overall(now))];
        if !screen.lab_line.is_empty() {
            rows.push(fit(format!("  {}", screen.lab_line)));
        }
        for line in &screen.lines {
            let (mark, time) = match (line.failed, line.finished) {
                (true, Some(t)) => ("x", t),
                (false, Some(t)) => ("+", t),
                _ => (spinner, now.saturating_sub(line.since)),
            };
            let doing = match &line.output {
                Some(output) if line.message.is_empty() => output.clone(),
                Some(output) => format!("{}: {output}", line.message),
                None => line.message.clone(),
            };
            let row = fit(format!(
                "{mark} {:<width$}  {:<10} {:>6.1}s  {doing}",
                line.node,
                line.stage,
                time.as_secs_f64(),
            ));
            // The mark is painted after the cut: escapes take no columns.
            let painted = match mark {
                "x" => self.paint("x", "31"),
                "+" => self.paint("+", "32"),
                _ => mark.to_string(),
            };
            rows.push(format!("{painted}{}", &row[mark.len()..]));
        }
        let mut text = String::new();
        if screen.drawn > 0 {
            text.push_str(&format!("\x1b[{}A", screen.drawn));
        }
        for row in &rows {
            text.push_str(&format!("\r\x1b[2K{}\n", row.trim_end()));
        }
        screen.drawn = rows.len();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::{Stage, Wait};

    fn event(node: &str, stage: Stage, status: Status) -> Event {
        Event {
            node: Some(node.into()),
            stage,
            status,
            message: String::new(),
            detail: None,
        }
    }

    #[test]
    fn a_failed_node_keeps_its_cross_and_a_finished_one_its_time() {
        let live = Live::start(&["a".into(), "b".into()], false, Instant::now());
        live.shared.stopped.store(true, Ordering::SeqCst);
        let at = Duration::from_millis;
        live.record(&event("a", Stage::Ssh, Status::Failed), at(100));
        // The VM is stopped after its failure: still a failure on the screen.
        live.record(&event("a", Stage::Stop, Status::Done), at(200));
        live.record(&event("b", Stage::Ready, Status::Done), at(300));
        live.record(&event("b", Stage::Base, Status::Started), at(400));
        let screen = live.shared.screen.lock().unwrap();
        assert!(screen.lines[0].finished == Some(at(200)) && screen.lines[0].failed);
        assert!(screen.lines[1].finished == Some(at(300)) && !screen.lines[1].failed);
    }

    #[test]
    fn the_overall_line_counts_and_names_the_slowest_stage_at_work() {
        let live = Live::start(&["a".into(), "b".into(), "c".into()], false, Instant::now());
        live.shared.stopped.store(true, Ordering::SeqCst);
        let at = Duration::from_secs;
        live.record(&event("a", Stage::Ready, Status::Done), at(1));
        live.record(&event("b", Stage::Provision, Status::Started), at(2));
        let waiting = Event {
            detail: Some(Detail::Waiting {
                wait: Wait::Peers {
                    nodes: vec!["b".into()],
                },
            }),
            ..event("c", Stage::Provision, Status::Started)
        };
        live.record(&waiting, at(1));
        let mut screen = live.shared.screen.lock().unwrap();
        screen.command = "up".into();
        assert_eq!(
            screen.overall(at(5)),
            "up: 1 of 3 ready  5.0s  slowest now: b provision 3.0s"
        );
    }
}
