//! Running commands on a node: one logged-in connection, and every command through it
//! logged in the node's transcript (masked), bounded by a time limit, with the lines the
//! command prints offered to the caller as they arrive. Used by every stage that talks to
//! a guest (base, hosts, files, steps, probes) and by `stop`.

use std::io::Write;
use std::path::PathBuf;
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

    /// Runs a command, logging it and its output; `on_line` sees each line as it arrives.
    pub async fn run(
        &self,
        command: Command<'_>,
        on_line: &mut (dyn FnMut(Stream, &str) -> Reply + Send),
    ) -> Result<Output, RunError> {
        let running = self
            .connection
            .exec_with(command.line, command.input, on_line);
        let result = match tokio::time::timeout(self.timeout, running).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "did not finish within {} s (TARTLAB_COMMAND_TIMEOUT)",
                self.timeout.as_secs()
            )),
        };
        match result {
            Err(e) => {
                self.log(command.shown, None, Some(&e));
                Err(RunError::Broken(format!("{}: {e}", command.what)))
            }
            Ok(out) => {
                self.masker.learn(&out.stdout_text());
                self.log(command.shown, Some(&out), None);
                if out.success() {
                    return Ok(out);
                }
                let text = self
                    .masker
                    .mask(&format!("{}{}", out.stdout_text(), out.stderr_text()));
                Err(RunError::Failed {
                    status: out.status,
                    tail: text,
                })
            }
        }
    }

    /// Runs a command that needs no conversation.
    pub async fn run_plain(&self, command: Command<'_>) -> Result<Output, RunError> {
        self.run(command, &mut |_, _| Reply::Nothing).await
    }

    /// Appends one command, its status and output to the transcript, masked.
    fn log(&self, shown: &str, output: Option<&Output>, error: Option<&str>) {
        let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.transcript)
        else {
            return;
        };
        let mut text = format!(
            "=== {} {}\n$ {shown}\n",
            crate::state::now_rfc3339(),
            self.vm
        );
        if let Some(out) = output {
            let status = out
                .status
                .map_or("none (killed or disconnected)".to_string(), |s| {
                    s.to_string()
                });
            text.push_str(&format!("[exit status {status}]\n{}", out.stdout_text()));
            if !out.stderr.is_empty() {
                text.push_str(&format!("[stderr]\n{}", out.stderr_text()));
            }
        }
        if let Some(e) = error {
            text.push_str(&format!("[error] {e}\n"));
        }
        let _ = file.write_all(self.masker.mask(&text).as_bytes());
    }

    pub async fn close(&self) {
        self.connection.close().await;
    }
}
