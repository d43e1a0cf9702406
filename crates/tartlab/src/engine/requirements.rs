//! Waiting for something to become true, as a named requirement with a hint, checked by one
//! retry loop (Lima's `pkg/hostagent/requirements.go` is the model: description, script,
//! debug hint). Every wait of a node goes through it: its address, sshd answering, the host
//! key sshd serves, cloud-init's end. One that never holds fails in one shape: what
//! happened with what was last seen, the last lines of the log that shows why, what to do.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::engine::events::Stage;
use crate::engine::Failure;

/// How many lines of a requirement's log a failure quotes.
const LOG_LINES: usize = 10;

/// Something that must hold before the work goes on.
pub struct Requirement {
    /// What must hold, as the user reads it ("sshd on dev-master answers").
    pub name: String,
    /// What to do when it never holds.
    pub hint: String,
    /// The log that shows why it does not hold (a VM's console output), if there is one on
    /// this host: its last lines go into the failure.
    pub log: Option<PathBuf>,
    pub timeout: Duration,
    /// The pause between two checks.
    pub interval: Duration,
}

/// One check's verdict.
pub enum Check<T, E> {
    Met(T),
    /// Not yet, and why (kept for the message if it never holds).
    NotYet(String),
    /// It never will: stop waiting.
    Fatal(E),
}

/// Why a requirement was not met.
#[derive(Debug)]
pub enum Unmet<E> {
    /// The timeout passed; the last reason seen.
    TimedOut {
        last: String,
    },
    Fatal(E),
}

impl Requirement {
    /// Checks until met, fatal, or out of time. Each check is told how long it may take.
    pub async fn wait_for<T, E, F, Fut>(&self, check: F) -> Result<T, Unmet<E>>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Check<T, E>>,
    {
        self.wait_eagerly_for(None, check).await
    }

    /// As `wait_for`, but during the first `window` the checks come every `first`: for a
    /// check that is cheap while it fails (a refused TCP connection), of something expected
    /// any moment (sshd, a moment after the lease).
    pub async fn wait_eagerly_for<T, E, F, Fut>(
        &self,
        eager: Option<(Duration, Duration)>,
        mut check: F,
    ) -> Result<T, Unmet<E>>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Check<T, E>>,
    {
        let start = Instant::now();
        let deadline = start + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match check(left.max(Duration::from_secs(1))).await {
                Check::Met(value) => return Ok(value),
                Check::Fatal(e) => return Err(Unmet::Fatal(e)),
                Check::NotYet(reason) => {
                    if Instant::now() >= deadline {
                        return Err(Unmet::TimedOut { last: reason });
                    }
                }
            }
            let interval = match eager {
                Some((first, window)) if start.elapsed() < window => first.min(self.interval),
                _ => self.interval,
            };
            tokio::time::sleep(interval).await;
        }
    }

    /// The failure when it never held: `happened` (what was last seen in it), then the last
    /// lines of the requirement's log when it has any, and the hint.
    pub fn failure(&self, stage: Stage, happened: String) -> Failure {
        let tail = self.log.as_deref().and_then(|log| {
            let bytes = crate::files::read_tail(log, 64 * 1024).ok()?;
            let lines = crate::text::last_lines(&String::from_utf8_lossy(&bytes), LOG_LINES);
            (!lines.is_empty()).then(|| format!("last lines of {}:\n{lines}", log.display()))
        });
        let message = match tail {
            Some(tail) => format!("{happened}\n{tail}"),
            None => happened,
        };
        Failure::new(stage, message, self.hint.clone())
    }

    /// Seconds it waits, for messages.
    pub fn secs(&self) -> u64 {
        self.timeout.as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requirement(timeout_ms: u64) -> Requirement {
        Requirement {
            name: "it holds".into(),
            hint: String::new(),
            log: None,
            timeout: Duration::from_millis(timeout_ms),
            interval: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn a_requirement_is_checked_until_met_and_says_why_it_never_was() {
        let mut tries = 0;
        let met: Result<u32, Unmet<()>> = requirement(5_000)
            .wait_for(|_| {
                tries += 1;
                let verdict = if tries < 3 {
                    Check::NotYet(format!("try {tries}"))
                } else {
                    Check::Met(tries)
                };
                async move { verdict }
            })
            .await;
        assert_eq!(met.unwrap(), 3);
        let never: Result<(), Unmet<()>> = requirement(20)
            .wait_for(|_| async { Check::NotYet("refused".into()) })
            .await;
        assert!(matches!(never, Err(Unmet::TimedOut { last }) if last == "refused"));
        let fatal: Result<(), Unmet<&str>> = requirement(5_000)
            .wait_for(|_| async { Check::Fatal("wrong password") })
            .await;
        assert!(matches!(fatal, Err(Unmet::Fatal("wrong password"))));
    }

    #[test]
    fn a_failure_quotes_the_last_lines_of_the_log_and_gives_the_hint() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.log");
        std::fs::write(&log, "booting\n\nkernel panic\x1b[2J\n").unwrap();
        let mut it = requirement(10);
        it.hint = "look at the console".into();
        it.log = Some(log.clone());
        let failure = it.failure(Stage::Ip, "no address within 0 s: none".into());
        assert_eq!(
            failure.message,
            format!(
                "no address within 0 s: none\nlast lines of {}:\n    | booting\n    | kernel panic\\x1b[2J",
                log.display()
            )
        );
        assert_eq!(failure.hint, "look at the console");
        // No log, or an empty one: what happened alone.
        std::fs::write(&log, "").unwrap();
        assert_eq!(it.failure(Stage::Ip, "none".into()).message, "none");
        it.log = None;
        assert_eq!(it.failure(Stage::Ip, "none".into()).message, "none");
    }
}
