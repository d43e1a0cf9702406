//! What the engine reports, typed: the stages a node goes through, the status of each
//! event, and the actions a node's recap lists. The engine writes events to a `Reporter`,
//! which hands them to every sink (`ui/`: live, plain, JSON lines, the journal), as
//! nextest's runner hands events to its reporter. Nothing downstream matches stage or action
//! names as text; the text exists only for people and for the JSON schema
//! (docs/LIFECYCLE.md, "Output").

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};

use super::NodeReport;

/// A stage of a node's work (or the lab's, for `Pull` and `Run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The command as a whole: its start and its end (with the recap).
    Run,
    Pull,
    Check,
    Adopt,
    Create,
    Configure,
    Boot,
    Ip,
    Ssh,
    Base,
    CloudInit,
    Hosts,
    /// The host folders mounted in the guest (`mounts`).
    Mounts,
    Network,
    Files,
    Provision,
    Ready,
    Stop,
    Delete,
    /// A node copied to a snapshot VM (`snapshot save`).
    Snapshot,
    /// A node copied back from its snapshot VM (`snapshot restore`).
    Restore,
    /// A bug: a node's task ended abnormally.
    Internal,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Run => "run",
            Stage::Pull => "pull",
            Stage::Check => "check",
            Stage::Adopt => "adopt",
            Stage::Create => "create",
            Stage::Configure => "configure",
            Stage::Boot => "boot",
            Stage::Ip => "ip",
            Stage::Ssh => "ssh",
            Stage::Base => "base",
            Stage::CloudInit => "cloud-init",
            Stage::Hosts => "hosts",
            Stage::Mounts => "mounts",
            Stage::Network => "network",
            Stage::Files => "files",
            Stage::Provision => "provision",
            Stage::Ready => "ready",
            Stage::Stop => "stop",
            Stage::Delete => "delete",
            Stage::Snapshot => "snapshot",
            Stage::Restore => "restore",
            Stage::Internal => "internal",
        }
    }

    /// Whether a node's work is over when this stage is done (the live display stops its
    /// clock there).
    pub fn ends_the_node(self) -> bool {
        matches!(self, Stage::Ready | Stage::Stop | Stage::Delete)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Stage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Started,
    Done,
    Failed,
    Skipped,
    Info,
    /// Something the user should know that is not a failure.
    Warning,
}

/// A setting whose change needs a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub setting: &'static str,
    pub from: String,
    pub to: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.setting, self.from, self.to)
    }
}

/// A part of the base provisioning, files included, as the recap names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Provisioned {
    Identity,
    Users,
    Hosts,
    CloudInit,
    Files(Vec<String>),
}

impl fmt::Display for Provisioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provisioned::Identity => f.write_str("identity"),
            Provisioned::Users => f.write_str("user"),
            Provisioned::Hosts => f.write_str("hosts"),
            Provisioned::CloudInit => f.write_str("cloud-init"),
            Provisioned::Files(dests) => write!(f, "files {}", dests.join(" ")),
        }
    }
}

/// How a VM came to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopHow {
    /// A shutdown from inside the guest.
    ShutDown,
    /// The provider stopped it.
    Forced,
    AlreadyStopped,
}

/// Something done to a node, for its recap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Created,
    Recreated,
    Adopted,
    Changed(Vec<Change>),
    Booted,
    Provisioned(Vec<Provisioned>),
    RanSteps(Vec<String>),
    Stopped(StopHow),
    Deleted,
    DeletedOrphan,
    Snapshotted,
    Restored,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: Vec<String>| items.join(", ");
        match self {
            Action::Created => f.write_str("created"),
            Action::Recreated => f.write_str("recreated"),
            Action::Adopted => f.write_str("adopted"),
            Action::Changed(changes) => {
                f.write_str(&list(changes.iter().map(Change::to_string).collect()))
            }
            Action::Booted => f.write_str("booted"),
            Action::Provisioned(parts) => write!(
                f,
                "provisioned {}",
                list(parts.iter().map(Provisioned::to_string).collect())
            ),
            Action::RanSteps(steps) => write!(f, "ran {}", steps.join(", ")),
            Action::Stopped(StopHow::ShutDown) => f.write_str("shut down"),
            Action::Stopped(StopHow::Forced) => f.write_str("stopped (forced)"),
            Action::Stopped(StopHow::AlreadyStopped) => f.write_str("already stopped"),
            Action::Deleted => f.write_str("deleted"),
            Action::DeletedOrphan => f.write_str("deleted (orphan)"),
            Action::Snapshotted => f.write_str("saved to the snapshot"),
            Action::Restored => f.write_str("restored from the snapshot"),
        }
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What an event carries beyond its words, typed, for the sinks that need it (none parses a
/// message back).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    /// A pull's progress: the image, and how far it is (percent) once tart says.
    Pull { image: String, percent: Option<u32> },
    /// A node's address, now known.
    Address { address: String },
    /// A command began: its verb and the VMs it works on.
    RunStarted { command: String, nodes: Vec<String> },
    /// A command is over: each node's report (the recap), and its exit code.
    RunFinished {
        command: String,
        recap: Vec<NodeReport>,
        exit_code: i32,
    },
    /// A node waits, and for what.
    Waiting { wait: Wait },
    /// The last line a node's running step printed (masked, printable, bounded). The live
    /// display shows it; the other sinks leave it out (the transcript has every line).
    Output { line: String },
}

/// What a node waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "for", rename_all = "snake_case")]
pub enum Wait {
    /// Other nodes of the lab (their addresses, their sshd, a phase they are still in);
    /// empty when it is every node still at work.
    Peers { nodes: Vec<String> },
    /// An image being pulled.
    Image { image: String },
    /// A command an earlier tartlab started on the guest, which holds its lock.
    Lock,
}

/// One event: a node's (or the lab's) stage changed status.
#[derive(Debug, Clone)]
pub struct Event {
    /// The VM; `None` for the lab as a whole (image pulls, the run).
    pub node: Option<String>,
    pub stage: Stage,
    pub status: Status,
    pub message: String,
    pub detail: Option<Detail>,
}

impl Event {
    /// Whether this event ends its node's work (a failure, or the last stage done): the
    /// node's time, on the live display and in the recap, is the timestamp of the last such
    /// event, so both show the same.
    pub fn ends_the_node(&self) -> bool {
        self.node.is_some()
            && (self.status == Status::Failed
                || (self.status == Status::Done && self.stage.ends_the_node()))
    }
}

/// Where events go: a display, a file.
pub trait EventSink: Send + Sync {
    /// One event, `elapsed` since the command started.
    fn record(&self, event: &Event, elapsed: Duration);
    /// The command is over: a display leaves its last frame.
    fn finish(&self) {}
}

/// The engine's one way to say what happens: it stamps each event and hands it to every sink.
pub struct Reporter {
    start: Instant,
    sinks: Vec<Box<dyn EventSink>>,
    /// When each node's work ended (its last ending event), for the recap's times.
    ended: Mutex<HashMap<String, Duration>>,
}

impl Reporter {
    pub fn new(sinks: Vec<Box<dyn EventSink>>) -> Arc<Reporter> {
        Reporter::starting_at(Instant::now(), sinks)
    }

    /// A reporter whose clock started at `start` (the clock the live display reads too).
    pub fn starting_at(start: Instant, sinks: Vec<Box<dyn EventSink>>) -> Arc<Reporter> {
        Arc::new(Reporter {
            start,
            sinks,
            ended: Mutex::new(HashMap::new()),
        })
    }

    /// A reporter that shows nothing (tests, and commands that print only their result).
    pub fn silent() -> Arc<Reporter> {
        Reporter::new(Vec::new())
    }

    pub fn emit(&self, node: Option<&str>, stage: Stage, status: Status, message: &str) {
        self.send(Event {
            node: node.map(str::to_string),
            stage,
            status,
            message: message.to_string(),
            detail: None,
        });
    }

    fn send(&self, event: Event) {
        let elapsed = self.start.elapsed();
        if let (true, Some(node), Ok(mut ended)) =
            (event.ends_the_node(), &event.node, self.ended.lock())
        {
            ended.insert(node.clone(), elapsed);
        }
        for sink in &self.sinks {
            sink.record(&event, elapsed);
        }
    }

    /// A pull's progress (`percent` once tart reports it; `done` when it is over).
    pub fn pull(&self, image: &str, percent: Option<u32>, done: bool) {
        let message = match (done, percent) {
            (true, _) => format!("{image}: pulled"),
            (false, Some(p)) => format!("{image}: {p}%"),
            (false, None) => format!("{image}: pulling"),
        };
        self.send(Event {
            node: None,
            stage: Stage::Pull,
            status: if done { Status::Done } else { Status::Info },
            message,
            detail: Some(Detail::Pull {
                image: image.to_string(),
                percent: if done { Some(100) } else { percent },
            }),
        });
    }

    /// A pull that failed: what the registry (or tart) said, for the lab's line.
    pub fn pull_failed(&self, image: &str, why: &str) {
        self.send(Event {
            node: None,
            stage: Stage::Pull,
            status: Status::Failed,
            message: format!("{image}: {why}"),
            detail: Some(Detail::Pull {
                image: image.to_string(),
                percent: None,
            }),
        });
    }

    /// A node's address is known.
    pub fn address(&self, node: &str, address: &str) {
        self.send(Event {
            node: Some(node.to_string()),
            stage: Stage::Ip,
            status: Status::Done,
            message: address.to_string(),
            detail: Some(Detail::Address {
                address: address.to_string(),
            }),
        });
    }

    /// Something the user should know at `stage` that is not a failure.
    pub fn warning(&self, node: Option<&str>, stage: Stage, message: &str) {
        self.emit(node, stage, Status::Warning, message);
    }

    /// A node waits for `wait`; `message` says it in words.
    pub fn waiting(&self, node: &str, stage: Stage, wait: Wait, message: &str) {
        self.send(Event {
            node: Some(node.to_string()),
            stage,
            status: Status::Started,
            message: message.to_string(),
            detail: Some(Detail::Waiting { wait }),
        });
    }

    /// A line a node's running step printed, as guest text: masked before it comes here,
    /// made printable and bounded here.
    pub fn output(&self, node: &str, stage: Stage, line: &str) {
        let line = crate::text::printable(line, crate::text::QUOTED_LINE).replace('\t', " ");
        self.send(Event {
            node: Some(node.to_string()),
            stage,
            status: Status::Info,
            message: String::new(),
            detail: Some(Detail::Output { line }),
        });
    }

    /// A command begins on these VMs.
    pub fn run_started(&self, command: &str, nodes: &[String]) {
        self.send(Event {
            node: None,
            stage: Stage::Run,
            status: Status::Started,
            message: format!("{command}: {} node(s)", nodes.len()),
            detail: Some(Detail::RunStarted {
                command: command.to_string(),
                nodes: nodes.to_vec(),
            }),
        });
    }

    /// A command is over: its recap, rendered by the sinks (a table, the JSON object, the
    /// journal's line).
    pub fn run_finished(&self, command: &str, recap: &[NodeReport], exit_code: i32) {
        // Each node's time is when its last ending event was stamped: the live display
        // stopped its clock at the same stamp.
        let mut recap = recap.to_vec();
        if let Ok(ended) = self.ended.lock() {
            for report in &mut recap {
                if let Some(at) = ended.get(&report.node) {
                    report.seconds = at.as_secs_f64();
                }
            }
        }
        let failed = recap.iter().filter(|r| r.failure.is_some()).count();
        self.send(Event {
            node: None,
            stage: Stage::Run,
            status: if failed == 0 {
                Status::Done
            } else {
                Status::Failed
            },
            message: format!(
                "{command}: {} of {} node(s) ok",
                recap.len() - failed,
                recap.len()
            ),
            detail: Some(Detail::RunFinished {
                command: command.to_string(),
                recap,
                exit_code,
            }),
        });
    }

    pub fn started(&self, node: &str, stage: Stage, message: &str) {
        self.emit(Some(node), stage, Status::Started, message);
    }
    pub fn done(&self, node: &str, stage: Stage, message: &str) {
        self.emit(Some(node), stage, Status::Done, message);
    }
    pub fn skipped(&self, node: &str, stage: Stage, message: &str) {
        self.emit(Some(node), stage, Status::Skipped, message);
    }
    pub fn failed(&self, node: &str, stage: Stage, message: &str) {
        self.emit(Some(node), stage, Status::Failed, message);
    }
    /// A lab-wide line (image pulls).
    pub fn info(&self, stage: Stage, message: &str) {
        self.emit(None, stage, Status::Info, message);
    }

    pub fn finish(&self) {
        for sink in &self.sinks {
            sink.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_as_the_recap_shows_them() {
        let change = Change {
            setting: "cpu",
            from: "2".into(),
            to: "4".into(),
        };
        assert_eq!(Action::Changed(vec![change]).to_string(), "cpu 2 -> 4");
        assert_eq!(
            Action::Provisioned(vec![
                Provisioned::Identity,
                Provisioned::Users,
                Provisioned::Hosts,
                Provisioned::Files(vec!["/etc/motd".into()])
            ])
            .to_string(),
            "provisioned identity, user, hosts, files /etc/motd"
        );
        assert_eq!(
            serde_json::to_string(&Action::RanSteps(vec!["a".into(), "b".into()])).unwrap(),
            "\"ran a, b\""
        );
        assert_eq!(serde_json::to_string(&Stage::Ip).unwrap(), "\"ip\"");
    }
}
