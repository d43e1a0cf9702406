//! Shared views that many node tasks wait on: the addresses of the lab's nodes (for
//! `/etc/hosts`), and which VMs are running (one `tart list` poll for all waiters, instead
//! of a process per VM).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::provider::{ListEntry, Tart};

/// What is known of a node's address: not yet, an address, or never (the node failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Pending,
    Known(String),
    Failed,
}

/// Every node's address, as the node tasks learn them.
#[derive(Clone)]
pub struct AddressBoard {
    tx: Arc<watch::Sender<HashMap<String, Address>>>,
}

impl AddressBoard {
    pub fn new(initial: HashMap<String, Address>) -> AddressBoard {
        AddressBoard {
            tx: Arc::new(watch::channel(initial).0),
        }
    }

    pub fn publish(&self, vm: &str, address: Address) {
        self.tx.send_modify(|m| {
            m.insert(vm.to_string(), address);
        });
    }

    /// Waits until every VM in `scope` has an address or has failed; returns the addresses.
    pub async fn settled(&self, scope: &[String]) -> Vec<(String, String)> {
        let mut rx = self.tx.subscribe();
        let settled = rx
            .wait_for(|m| {
                scope
                    .iter()
                    .all(|vm| !matches!(m.get(vm), Some(Address::Pending)))
            })
            .await;
        match settled {
            Ok(m) => scope
                .iter()
                .filter_map(|vm| match m.get(vm) {
                    Some(Address::Known(ip)) => Some((vm.clone(), ip.clone())),
                    _ => None,
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

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
