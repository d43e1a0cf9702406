//! Running commands on a node: one logged-in connection, and every command through it
//! logged in the node's transcript (masked), bounded by a time limit, with the lines the
//! command prints offered to the caller as they arrive. Used by every stage that talks to
//! a guest (base, hosts, files, steps, probes) and by `stop`.
//!
//! What a guest prints is bounded here: lines are cut at `ssh::LINE_CAP`, the transcript
//! takes at most `LOG_CAP` bytes of a command's output (then says how much more there was),
//! and memory holds the last lines for a failure message and `HOLD` bytes waiting for the
//! log (so that a secret printed a little before its `tartlab-output` line is still masked).

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::mask::Masker;
use super::ssh::{Connection, Input, Output, Reply, Stream};

/// A logged-in connection to one node and where its commands are logged.
pub struct GuestSession {
    pub vm: String,
    connection: Connection,
    transcript: PathBuf,
    timeout: Duration,
    masker: Arc<Masker>,
}

/// One command to run: what it is for (in messages), the command line, what the transcript
/// shows instead of it (e.g. the script it feeds), and its stdin.
pub struct Command<'a> {
    pub what: &'a str,
    pub line: &'a str,
    pub shown: &'a str,
    pub input: Input<'a>,
}

impl<'a> Command<'a> {
    /// A command logged as itself, with no input.
    pub fn plain(what: &'a str, line: &'a str) -> Command<'a> {
        Command {
            what,
            line,
            shown: line,
            input: Input::Given(None),
        }
    }
}

/// How a command failed.
#[derive(Debug)]
pub enum RunError {
    /// It ran and exited non-zero (or was killed): its status and the last lines it printed.
    Failed { status: Option<u32>, tail: String },
    /// It could not run to its end: the connection broke, or the time limit passed.
    Broken(String),
}

impl GuestSession {
    pub fn new(
        vm: &str,
        connection: Connection,
        transcript: PathBuf,
        timeout: Duration,
        masker: Arc<Masker>,
    ) -> GuestSession {
        GuestSession {
            vm: vm.to_string(),
            connection,
            transcript,
            timeout,
            masker,
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Runs a command, logging it and its output as they come; `on_line` sees each line as
    /// it arrives. Secret values are learnt from each line before it goes anywhere.
    pub async fn run(
        &self,
        command: Command<'_>,
        on_line: &mut (dyn FnMut(Stream, &str) -> Reply + Send),
    ) -> Result<Output, RunError> {
        let mut log = Transcript::start(&self.transcript, &self.vm, &command, &self.masker);
        let mut recent = Recent::default();
        let mut each_line = |stream: Stream, line: &str| {
            if stream == Stream::Stdout {
                self.masker.learn(line);
            }
            log.line(stream, line);
            recent.push(line);
            on_line(stream, line)
        };
        let running = self
            .connection
            .exec_with(command.line, command.input, &mut each_line);
        let result = match tokio::time::timeout(self.timeout, running).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "did not finish within {} s (TARTLAB_COMMAND_TIMEOUT)",
                self.timeout.as_secs()
            )),
        };
        match result {
            Err(e) => {
                log.end(&format!("[error] {e}"));
                Err(RunError::Broken(format!("{}: {e}", command.what)))
            }
            Ok(out) => {
                log.end(&format!(
                    "[exit status {}]",
                    out.status
                        .map_or("none (killed or disconnected)".to_string(), |s| s
                            .to_string())
                ));
                if out.success() {
                    return Ok(out);
                }
                Err(RunError::Failed {
                    status: out.status,
                    tail: self.masker.mask(&recent.text()),
                })
            }
        }
    }

    /// Runs a command that needs no conversation.
    pub async fn run_plain(&self, command: Command<'_>) -> Result<Output, RunError> {
        self.run(command, &mut |_, _| Reply::Nothing).await
    }

    pub async fn close(&self) {
        self.connection.close().await;
    }
}

/// The most of one command's output written to the transcript.
pub const LOG_CAP: u64 = 16 * 1024 * 1024;
/// Output held back from the transcript, so that a secret learnt a little later is masked.
const HOLD: usize = 256 * 1024;
/// How many of the last lines a failure quotes from, and how long each may be there.
const RECENT_LINES: usize = 20;
const RECENT_WIDTH: usize = 500;

/// One command's entry in the transcript, written as the output comes.
struct Transcript<'a> {
    file: Option<std::fs::File>,
    masker: &'a Masker,
    held: Vec<String>,
    held_bytes: usize,
    written: u64,
    not_written: u64,
}

impl<'a> Transcript<'a> {
    /// The entry's header: `=== TIME VM KIND:N WHAT`, KIND `user` for what the lab file
    /// wrote (a step, a probe: the command shown is not the one sent) and `tartlab` for
    /// tartlab's own commands, N the lines of the `$` line that follows (`logs` folds
    /// tartlab's entries and shows the user's as written); then `$ SHOWN`.
    fn start(path: &Path, vm: &str, command: &Command<'_>, masker: &'a Masker) -> Transcript<'a> {
        let mut log = Transcript {
            file: crate::files::open_append(path).ok(),
            masker,
            held: Vec::new(),
            held_bytes: 0,
            written: 0,
            not_written: 0,
        };
        let shown = command.shown;
        let kind = if shown == command.line {
            "tartlab"
        } else {
            "user"
        };
        let header = format!(
            "=== {} {vm} {kind}:{} {}\n$ {shown}\n",
            crate::clock::now_rfc3339_millis(),
            shown.lines().count().max(1),
            command.what.replace('\n', " ")
        );
        log.write(&header);
        log
    }

    fn line(&mut self, stream: Stream, line: &str) {
        let size = line.len() as u64 + 1;
        if self.written + self.held_bytes as u64 + size > LOG_CAP {
            self.not_written += size;
            return;
        }
        let text = match stream {
            Stream::Stdout => format!("{line}\n"),
            Stream::Stderr => format!("[stderr] {line}\n"),
        };
        self.held_bytes += text.len();
        self.held.push(text);
        if self.held_bytes > HOLD {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let text: String = self.held.drain(..).collect();
        self.written += self.held_bytes as u64;
        self.held_bytes = 0;
        self.write(&text);
    }

    fn end(mut self, last: &str) {
        self.flush();
        if self.not_written > 0 {
            let more = format!(
                "[{} more bytes of output not logged: a command's log stops at {} MiB]\n",
                self.not_written,
                LOG_CAP >> 20
            );
            self.write(&more);
        }
        self.write(&format!("{last}\n"));
    }

    fn write(&mut self, text: &str) {
        if let Some(file) = self.file.as_mut() {
            let _ = file.write_all(self.masker.mask(text).as_bytes());
        }
    }
}

/// The last lines a command printed (both streams, in order), each cut for a message.
#[derive(Default)]
struct Recent(VecDeque<String>);

impl Recent {
    fn push(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        if self.0.len() == RECENT_LINES {
            self.0.pop_front();
        }
        let cut = crate::text::cut(line, RECENT_WIDTH);
        self.0.push_back(cut);
    }

    fn text(&self) -> String {
        self.0.iter().map(|l| format!("{l}\n")).collect()
    }
}
