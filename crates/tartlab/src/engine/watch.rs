//! The addresses of the lab's nodes as the node tasks learn them, for every node that waits
//! on its peers (the `/etc/hosts` block).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;

/// What is known of a node's address (or, on the readiness board, whether its sshd
/// answers): not yet, an address, or never (the node failed).
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

    /// The VMs of `scope` that have no address yet (and have not failed).
    pub fn pending(&self, scope: &[String]) -> Vec<String> {
        let now = self.tx.borrow();
        scope
            .iter()
            .filter(|vm| matches!(now.get(*vm), Some(Address::Pending)))
            .cloned()
            .collect()
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
