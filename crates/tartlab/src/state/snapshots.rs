//! What `state.json` keeps of the lab's snapshots: per snapshot its time, the lab file's
//! hash and, per node, the snapshot VM (owned by its identity, as nodes are), the node's own
//! identity and address to put back, its provisioning records and its pinned host keys. And
//! the journal of a save or restore under way, so the next command finishes or undoes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::OwnedVm;

/// One whole-lab snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Snapshot {
    pub at: String,
    /// The lab file's hash when it was saved.
    pub lab_hash: String,
    /// Counts the saves of this name (`--force`), so a new save never clones over the old one.
    pub generation: u32,
    /// False while a save is under way: such a snapshot is never listed or restored.
    pub complete: bool,
    pub nodes: BTreeMap<String, SnapshotNode>,
}

/// One node in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotNode {
    /// The VM that holds the node's disk, never booted.
    pub vm: String,
    /// The snapshot VM's identity (tart: its MAC); `None` while its clone is not confirmed.
    pub identity: Option<String>,
    /// The node as the state recorded it then: its identity (to put back), address,
    /// provisioning records and outputs.
    pub node: OwnedVm,
    /// Its pinned host keys, in OpenSSH form.
    #[serde(default)]
    pub host_keys: Vec<String>,
}

/// A save or restore that began and has not ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Journal {
    pub op: JournalOp,
    pub snapshot: String,
    pub nodes: Vec<String>,
    /// The nodes that ran before a save stopped them (started again at its end).
    #[serde(default)]
    pub running: Vec<String>,
    /// The older snapshot a `save --force` replaces, deleted once the new one is whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Snapshot>,
    pub at: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JournalOp {
    Save,
    Restore,
}

impl Snapshot {
    /// The name of the VM that holds `vm`'s disk in snapshot `name`: a dot never appears
    /// in a node's name, so it cannot be one.
    pub fn vm_name(vm: &str, name: &str, generation: u32) -> String {
        format!("{vm}.snapshot.{name}.{generation}")
    }
}
