//! Waiting for something to become true, as a named requirement with a hint, checked by one
//! retry loop (Lima's `pkg/hostagent/requirements.go` is the model): "sshd answers on
//! IP:22", with what was last seen when it never does. `doctor` reuses it for host checks.

use std::future::Future;
use std::time::{Duration, Instant};

/// Something that must hold before the work goes on.
pub struct Requirement {
    /// What must hold, as the user reads it ("sshd on dev-master answers").
    pub name: String,
    /// What to do when it never holds.
    pub hint: String,
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
    pub async fn wait_for<T, E, F, Fut>(&self, mut check: F) -> Result<T, Unmet<E>>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Check<T, E>>,
    {
        let deadline = Instant::now() + self.timeout;
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
            tokio::time::sleep(self.interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requirement(timeout_ms: u64) -> Requirement {
        Requirement {
            name: "it holds".into(),
            hint: String::new(),
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
}
