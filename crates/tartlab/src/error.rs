//! Exit codes, all in one place, and the one error type a command returns: a failure before
//! (or instead of) the nodes' work, bad usage, an invalid lab file, or Ctrl-C. `main` prints
//! it, once; per-node failures are data (the recap) and never come through here.

use crate::lab::Diagnostic;

/// How tartlab exits (docs/LIFECYCLE.md, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done.
    Ok = 0,
    /// Every node failed, or something failed before any node (lock held, tart missing).
    Failed = 1,
    /// Bad usage or an invalid lab file; nothing was changed.
    Invalid = 2,
    /// Some nodes failed; the others are fine.
    Partial = 3,
    /// Ctrl-C: the work stopped cleanly, the VMs keep running, the state is saved.
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The exit for per-node results: all fine, all failed, or some of each.
    pub fn for_results(failed: usize, total: usize) -> Exit {
        match failed {
            0 => Exit::Ok,
            n if n == total => Exit::Failed,
            _ => Exit::Partial,
        }
    }
}

/// Why a command stopped without doing its work (or all of it).
#[derive(Debug)]
pub enum Error {
    /// A failure before or instead of the nodes' work: what happened and what to do.
    Fatal { message: String, hint: String },
    /// A command line that asks for something that does not exist or cannot be.
    Usage { message: String, hint: String },
    /// Every problem of the lab file; with `--json`, one JSON object on stdout.
    InvalidLab {
        problems: Vec<Diagnostic>,
        json: bool,
        /// Whether the command would have changed something (and so says it did not).
        changing: bool,
    },
    /// The host needs a one-time set-up first: what, and the command (run as root) that
    /// does it, which a command on a terminal may offer to run.
    NeedsSetup {
        message: String,
        hint: String,
        command: Vec<String>,
    },
    /// Ctrl-C during the work.
    Interrupted,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn fatal(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Fatal {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn exit(&self) -> Exit {
        match self {
            Error::Fatal { .. } | Error::NeedsSetup { .. } => Exit::Failed,
            Error::Usage { .. } | Error::InvalidLab { .. } => Exit::Invalid,
            Error::Interrupted => Exit::Interrupted,
        }
    }

    /// The text for the user: what goes to stdout (JSON only) and what goes to stderr.
    pub fn render(&self) -> (String, String) {
        let with_hint = |message: &str, hint: &str| {
            let mut text = format!("error: {message}\n");
            if !hint.is_empty() {
                text.push_str(&format!("  hint: {hint}\n"));
            }
            text
        };
        match self {
            Error::Fatal { message, hint }
            | Error::Usage { message, hint }
            | Error::NeedsSetup { message, hint, .. } => (String::new(), with_hint(message, hint)),
            Error::InvalidLab {
                problems,
                json: true,
                ..
            } => (
                format!(
                    "{}\n",
                    serde_json::json!({ "valid": false, "errors": problems })
                ),
                String::new(),
            ),
            Error::InvalidLab {
                problems,
                json: false,
                changing,
            } => {
                let mut text: String = problems.iter().map(Diagnostic::render).collect();
                let n = problems.len();
                text.push_str(&format!(
                    "{n} problem{} found{}\n",
                    if n == 1 { "" } else { "s" },
                    if *changing { "; nothing was changed" } else { "" }
                ));
                (String::new(), text)
            }
            Error::Interrupted => (
                String::new(),
                "interrupted: the VMs keep running and the state is saved; `tartlab up` finishes the lab\n"
                    .to_string(),
            ),
        }
    }

    /// Prints the error where it belongs.
    pub fn print(&self) {
        use std::io::Write;
        let (stdout, stderr) = self.render();
        if !stdout.is_empty() {
            let _ = std::io::stdout().write_all(stdout.as_bytes());
        }
        if !stderr.is_empty() {
            let _ = std::io::stderr().write_all(stderr.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_map_to_the_documented_exit_codes() {
        assert_eq!(Exit::for_results(0, 3).code(), 0);
        assert_eq!(Exit::for_results(3, 3).code(), 1);
        assert_eq!(Exit::for_results(1, 3).code(), 3);
        assert_eq!(Exit::for_results(0, 0).code(), 0);
        assert_eq!(Error::Interrupted.exit().code(), 130);
        assert_eq!(Error::usage("x", "").exit().code(), 2);
    }

    #[test]
    fn a_fatal_error_says_what_and_what_to_do() {
        let (out, err) = Error::fatal("tart is missing", "install it").render();
        assert!(out.is_empty());
        assert_eq!(err, "error: tart is missing\n  hint: install it\n");
    }
}
