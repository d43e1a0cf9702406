//! Which VMs run, for everyone who waits for one to stop: one `tart list` every half second
//! while anyone waits, instead of a process per VM.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::cli::{ListEntry, Tart};

/// Polls `tart list` every half second while someone waits for a VM to stop.
#[derive(Clone)]
pub struct RunningVms {
    rx: watch::Receiver<Arc<Vec<ListEntry>>>,
    waiting: Arc<AtomicUsize>,
}

impl RunningVms {
    /// Starts the poller; it lives as long as the runtime and costs nothing while idle.
    pub fn start(tart: Tart) -> RunningVms {
        let (tx, rx) = watch::channel(Arc::new(Vec::new()));
        let waiting = Arc::new(AtomicUsize::new(0));
        let demand = waiting.clone();
        tokio::spawn(async move {
            loop {
                if demand.load(Ordering::SeqCst) > 0 {
                    if let Ok(list) = tart.list().await {
                        let _ = tx.send(Arc::new(list));
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        RunningVms { rx, waiting }
    }

    /// Whether `vm` stopped within `timeout`.
    pub async fn wait_stopped(&self, vm: &str, timeout: Duration) -> bool {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut rx = self.rx.clone();
        rx.borrow_and_update();
        let stopped = tokio::time::timeout(timeout, async {
            // The first value may predate our request: only trust lists sent after it.
            let _ = rx.changed().await;
            let _ = rx
                .wait_for(|list| {
                    !list
                        .iter()
                        .any(|e| e.is_local() && e.name == vm && e.is_running())
                })
                .await;
        })
        .await
        .is_ok();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        stopped
    }
}
