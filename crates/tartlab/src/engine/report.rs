//! How a node ended, for the recap and `--json`: its actions, its address and time, and,
//! when it failed, the `Failure` (the stage, what happened, what to do).

use serde::Serialize;

use super::events::{Action, Stage};

/// Why a node failed: the stage, what happened (with log lines), and what to do.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    pub message: String,
    pub hint: String,
    /// The node whose failure caused this one (its cluster's steps stopped), if any: the
    /// recap prints that node's failure first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<String>,
}

impl Failure {
    /// A failure; its message and hint are made printable and bounded as a backstop (each
    /// piece of guest text in them was already, where it was quoted).
    pub fn new(stage: Stage, message: impl Into<String>, hint: impl Into<String>) -> Failure {
        let shown = |text: String| crate::text::printable(&text, crate::text::MESSAGE).into_owned();
        Failure {
            stage,
            message: shown(message.into()),
            hint: shown(hint.into()),
            caused_by: None,
        }
    }

    /// A provider's failure at `stage`. Its fix, a one-time set-up of the host, is kept in
    /// the hint as the command to run: a failure in the recap has no terminal to offer it on.
    pub fn from_provider(stage: Stage, e: crate::provider::ProviderError) -> Failure {
        let hint = match e.fix {
            Some(words) => {
                let once = format!("once: `sudo {}`", crate::quote::command(&words));
                if e.hint.is_empty() {
                    once
                } else {
                    format!("{}; {once}", e.hint)
                }
            }
            None => e.hint,
        };
        Failure::new(stage, e.message, hint)
    }
}

/// How one node ended.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub node: String,
    /// What was done; empty when nothing needed doing.
    pub actions: Vec<Action>,
    pub failure: Option<Failure>,
    pub ip: Option<String>,
    pub seconds: f64,
    /// The connectivity check's verdict per peer, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<std::collections::BTreeMap<String, bool>>,
}

impl NodeReport {
    pub fn new(node: &str) -> NodeReport {
        NodeReport {
            node: node.to_string(),
            actions: Vec::new(),
            failure: None,
            ip: None,
            seconds: 0.0,
            network: None,
        }
    }
}

/// The hint for a failed write of the state, the pinned keys or the logs.
pub const WRITABLE: &str = "check that .tartlab/ is writable and the disk is not full";
