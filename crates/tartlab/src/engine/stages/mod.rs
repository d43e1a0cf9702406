//! The stages of `up`, each a small type in its own file, run in the order `NODE_STAGES`
//! gives (kind's create "actions" are the model: `pkg/cluster/internal/create/actions/`, one
//! per step, each `Execute(ctx)`), every node at once; then the lab-wide phases, `steps` and
//! `ready`, which run across nodes. Adding a stage never touches the others, and no stage
//! calls another: what several need (a graceful stop, a delete, a power cycle) is an
//! operation, in `engine/operations/`.

pub mod address;
pub mod base;
pub mod boot;
pub mod check;
pub mod cloud_init;
pub mod configure;
pub mod create;
pub mod files;
pub mod hosts;
pub mod mounts;
pub mod network;
pub mod ready;
pub mod ssh;
pub mod steps;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OwnedSemaphorePermit};

use super::events::{Action, Provisioned, Stage, Wait};
use super::plan::{Lifecycle, NodePlan};
use super::watch::Address;
use super::{fanout, internal_failure, Context, Failure, NodeReport, Provisioning};
use crate::guest::runner::GuestSession;
use crate::lab::Node;
use crate::provider::{BoxFuture, Inventory, Power};
use crate::text::MESSAGE;

/// A node's logged-in session, made on first need and shared by its stages and phases.
#[derive(Default)]
pub struct GuestLink {
    session: Mutex<Option<Arc<GuestSession>>>,
}

impl GuestLink {
    /// The session, logging in first if there is none yet.
    pub async fn get(
        &self,
        ctx: &Context,
        node: &Node,
        ip: &str,
    ) -> Result<Arc<GuestSession>, Failure> {
        let mut session = self.session.lock().await;
        if let Some(s) = session.as_ref() {
            return Ok(s.clone());
        }
        let fresh = Arc::new(ssh::connect(ctx, node, ip).await?);
        *session = Some(fresh.clone());
        Ok(fresh)
    }

    pub async fn close(&self) {
        if let Some(session) = self.session.lock().await.take() {
            session.close().await;
        }
    }
}

/// What one node carries through its stages.
pub struct NodeRun {
    pub node: Node,
    pub lifecycle: Lifecycle,
    pub report: NodeReport,
    /// Whether the VM runs now.
    pub running: bool,
    /// Whether it was booted in this run: then it is ready only once SSH answers.
    pub booted: bool,
    pub ip: Option<String>,
    pub guest: Arc<GuestLink>,
    /// What the base, hosts and files stages applied.
    pub provisioned: Vec<Provisioned>,
    /// The `/etc/hosts` block the node needs (a peer is new or moved), which the network
    /// stage writes.
    pub pending_hosts: Option<hosts::PendingHosts>,
    /// A slot of `--parallel` while the node logs in and provisions.
    slot: Option<OwnedSemaphorePermit>,
}

impl NodeRun {
    pub fn new(node: Node, lifecycle: Lifecycle, power: Power) -> NodeRun {
        NodeRun {
            report: NodeReport::new(&node.vm_name),
            node,
            lifecycle,
            running: power == Power::Running,
            booted: false,
            ip: None,
            guest: Arc::new(GuestLink::default()),
            provisioned: Vec::new(),
            pending_hosts: None,
            slot: None,
        }
    }

    /// The node's session, logging in on first need.
    pub async fn guest(&self, ctx: &Context) -> Result<Arc<GuestSession>, Failure> {
        let ip = self.ip.clone().ok_or_else(|| {
            Failure::new(
                Stage::Ssh,
                format!("{} has no address", self.node.vm_name),
                "",
            )
        })?;
        self.guest.get(ctx, &self.node, &ip).await
    }

    /// Holds a `--parallel` slot (if not held already) until `release_slot`.
    pub async fn hold_slot(&mut self, ctx: &Context) {
        if self.slot.is_none() {
            self.slot = ctx.limit.clone().acquire_owned().await.ok();
        }
    }

    pub fn release_slot(&mut self) {
        self.slot = None;
    }

    pub fn provisioning(&self, ctx: &Context) -> bool {
        ctx.options.provision == Provisioning::Full
    }
}

/// One stage of a node's `up`.
pub trait NodeStage: Sync {
    /// Does the stage's work on the node, or nothing when the node does not need it.
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>>;
}

/// The stages every node goes through, in order.
pub const NODE_STAGES: &[&dyn NodeStage] = &[
    &check::Check,
    &create::Create,
    &configure::Configure,
    &boot::Boot,
    &address::WaitForAddress,
    &ssh::Connect,
    &base::Base,
    &cloud_init::CloudInit,
    &mounts::Mounts,
    &hosts::Hosts,
    &network::CheckNetwork,
    &files::Files,
];

/// `up` of the planned nodes: each through `NODE_STAGES`, then the steps and probes across
/// them. Reports keep the plans' order.
pub async fn up(
    ctx: &Arc<Context>,
    inventory: &Inventory,
    plans: Vec<NodePlan>,
) -> Vec<NodeReport> {
    let started = Instant::now();
    // Nodes outside the selection keep the address the state knows, if they run.
    let state = ctx.store.snapshot();
    for node in &ctx.lab.nodes {
        if !plans.iter().any(|p| p.vm == node.vm_name) {
            let known = state.vms.get(&node.vm_name).and_then(|o| o.ip.clone());
            let address = match known {
                Some(ip) if inventory.running(&node.vm_name) => Address::Known(ip),
                _ => Address::Failed,
            };
            ctx.addresses.publish(&node.vm_name, address.clone());
            ctx.reachable.publish(&node.vm_name, address);
        }
    }
    // A node kept running as it is uses the address the state knows (the address stage
    // takes it as it is): known to its peers from the start, so they do not wait on it.
    // Where addresses move (Orchard), the address stage asks, and peers wait for that.
    let stable = ctx.provider.capabilities().stable_address;
    for plan in plans
        .iter()
        .filter(|p| stable && p.lifecycle == Lifecycle::Keep)
    {
        let known = state.vms.get(&plan.vm).and_then(|o| o.ip.clone());
        if let (Some(ip), true) = (known, inventory.running(&plan.vm)) {
            ctx.addresses.publish(&plan.vm, Address::Known(ip));
        }
    }
    let runs: Vec<NodeRun> = plans
        .into_iter()
        .filter_map(|plan| {
            let node = ctx.node(&plan.vm)?.clone();
            let power = Power::of(inventory.running(&plan.vm));
            Some(NodeRun::new(node, plan.lifecycle, power))
        })
        .collect();
    let names: Vec<Node> = runs.iter().map(|r| r.node.clone()).collect();
    let count = runs.len();
    let finished = fanout::each(runs, count, |run| run_node(ctx.clone(), run)).await;
    let mut runs: Vec<NodeRun> = finished
        .into_iter()
        .zip(names)
        .map(|(run, node)| {
            run.unwrap_or_else(|| {
                let mut run = NodeRun::new(node, Lifecycle::Keep, Power::Stopped);
                run.report.failure = Some(internal_failure());
                run
            })
        })
        .collect();
    if ctx.options.provision == Provisioning::Full {
        steps::run(ctx, &mut runs).await;
        ready::run(ctx, &mut runs).await;
    }
    for run in &runs {
        run.guest.close().await;
    }
    runs.into_iter()
        .map(|run| finish(ctx, run, started))
        .collect()
}

/// A node's report once everything is over, its last event sent.
fn finish(ctx: &Context, mut run: NodeRun, started: Instant) -> NodeReport {
    // Steps run in phases across nodes: a node that ran one was busy until the end.
    let in_steps = run
        .report
        .actions
        .iter()
        .any(|a| matches!(a, Action::RanSteps(_)))
        || run
            .report
            .failure
            .as_ref()
            .is_some_and(|f| matches!(f.stage, Stage::Provision | Stage::Ready));
    if in_steps {
        run.report.seconds = started.elapsed().as_secs_f64();
    }
    if run.report.failure.is_none() {
        let summary = if run.report.actions.is_empty() {
            "unchanged".to_string()
        } else {
            actions_text(&run.report.actions)
        };
        ctx.reporter.done(&run.node.vm_name, Stage::Ready, &summary);
    }
    run.report
}

/// A guest command's failure at `stage`, with the output's last lines and where the whole
/// transcript is.
pub fn command_failure(
    ctx: &Context,
    vm: &str,
    stage: Stage,
    what: &str,
    error: crate::guest::runner::RunError,
) -> Failure {
    use crate::guest::runner::RunError;
    let hint = format!(
        "the whole transcript is in {}",
        ctx.dir.provision_log(vm).display()
    );
    match error {
        RunError::Broken(e) => Failure::new(stage, crate::text::printable(&e, MESSAGE), hint),
        RunError::Failed { status, tail } => {
            let hint = if sudo_wanted_a_password(&tail) {
                format!("the login user needs passwordless sudo on the image; {hint}")
            } else {
                hint
            };
            Failure::new(stage, failed_message(what, status, &tail), hint)
        }
    }
}

/// Whether sudo on the guest stopped to ask for a password. This reads the guest's output,
/// which is text by nature: sudo says so only in words ("a password is required", with
/// `-n`), and its exit status (1) is the same as for any other failure.
fn sudo_wanted_a_password(output: &str) -> bool {
    output.contains("a password is required")
}

/// "WHAT failed (exit status N):" and the output's last lines, or that it printed nothing
/// (so a message never ends on a colon with nothing after it).
fn failed_message(what: &str, status: Option<u32>, tail: &str) -> String {
    let status = status.map_or("none".into(), |s| s.to_string());
    let lines = crate::text::last_lines(tail, 8);
    if lines.is_empty() {
        format!("{what} failed (exit status {status}) and printed nothing")
    } else {
        format!("{what} failed (exit status {status}):\n{lines}")
    }
}

/// Runs a script as root under the node's provisioning lock, with `stdin` as its input,
/// showing what it says it waits for; a failure names the stage, with the output's end.
pub async fn run_locked_script(
    ctx: &Context,
    guest: &GuestSession,
    vm: &str,
    stage: Stage,
    (what, script, args): (&str, &str, &[&str]),
    stdin: Option<&[u8]>,
) -> Result<(), Failure> {
    use crate::guest::runner::Command;
    use crate::guest::ssh::{Input, Reply, Stream};
    let command = super::remote::as_root_locked(what, script, args);
    guest
        .run(
            Command {
                what,
                line: &command,
                shown: &command,
                input: Input::Given(stdin),
            },
            &mut |stream, line| {
                if stream == Stream::Stderr {
                    show_note(ctx, vm, stage, what, line);
                }
                Reply::Nothing
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| command_failure(ctx, vm, stage, what, e))
}

/// Shows what a guest command says it waits for (a `tartlab-note:` line) as the node's
/// current activity: the lock of an earlier tartlab's command, then that it goes on.
/// Returns whether the line was a note.
pub fn show_note(ctx: &Context, vm: &str, stage: Stage, what: &str, line: &str) -> bool {
    use crate::engine::remote::{NOTE_PREFIX, WAIT_NOTE_PREFIX};
    let Some(note) = line.strip_prefix(NOTE_PREFIX) else {
        return false;
    };
    let shown = format!("{what}: {}", crate::text::printable(note, 200));
    if note.starts_with(WAIT_NOTE_PREFIX) {
        ctx.reporter.waiting(vm, stage, Wait::Lock, &shown);
    } else {
        ctx.reporter.started(vm, stage, &shown);
    }
    true
}

/// Nodes named for a line: the first three, then how many more.
pub fn names(nodes: &[String]) -> String {
    match nodes {
        [] => "the other nodes".to_string(),
        [one] => one.clone(),
        [first @ .., last] if nodes.len() <= 3 => format!("{} and {last}", first.join(", ")),
        _ => format!("{} and {} more", nodes[..3].join(", "), nodes.len() - 3),
    }
}

/// Actions as the recap lists them.
pub fn actions_text(actions: &[Action]) -> String {
    actions
        .iter()
        .map(Action::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The clusters with a failed node, each with the first node that failed there.
pub fn failed_clusters(runs: &[NodeRun]) -> std::collections::BTreeMap<String, String> {
    let mut failed = std::collections::BTreeMap::new();
    for run in runs.iter().filter(|r| r.report.failure.is_some()) {
        failed
            .entry(run.node.cluster.clone())
            .or_insert(run.node.vm_name.clone());
    }
    failed
}

/// One node through every stage, as far as it gets.
async fn run_node(ctx: Arc<Context>, mut run: NodeRun) -> NodeRun {
    let started = Instant::now();
    let mut result = Ok(());
    for stage in NODE_STAGES {
        result = stage.run(&ctx, &mut run).await;
        if result.is_err() {
            break;
        }
    }
    run.release_slot();
    let worked = !run.provisioned.is_empty() || !run.report.actions.is_empty();
    if result.is_ok() && worked {
        // Done with its own stages, the node waits for the others (the lab-wide phases
        // start when every node is through); a converged run stays quiet.
        ctx.reporter.waiting(
            &run.node.vm_name,
            Stage::Provision,
            Wait::Peers { nodes: Vec::new() },
            "waiting for the other nodes",
        );
    }
    if !run.provisioned.is_empty() {
        run.report
            .actions
            .push(Action::Provisioned(std::mem::take(&mut run.provisioned)));
    }
    let vm = run.node.vm_name.clone();
    match result {
        Ok(()) => {}
        Err(mut failure) => {
            // A VM booted now that never became reachable is stopped, so the next `up`
            // starts it afresh instead of waiting on the same broken boot; where a stopped
            // VM cannot start again (Orchard), it is left for the user to look at.
            let restartable = ctx.provider.capabilities().start_after_stop;
            if run.booted && restartable && matches!(failure.stage, Stage::Ip | Stage::Ssh) {
                let _ = ctx.provider.stop(&vm, Duration::from_secs(5)).await;
                failure
                    .message
                    .push_str(&format!("\n{vm} was stopped; `tartlab up` boots it again"));
            }
            // Other nodes' /etc/hosts keep a failed node's last address, if it had one.
            let last = ctx.store.vm(&vm).and_then(|o| o.ip);
            ctx.addresses
                .publish(&vm, last.map_or(Address::Failed, Address::Known));
            ctx.reachable.publish(&vm, Address::Failed);
            ctx.reporter.failed(&vm, failure.stage, &failure.message);
            run.report.failure = Some(failure);
        }
    }
    run.report.seconds = started.elapsed().as_secs_f64();
    run
}

#[cfg(test)]
mod failure_tests {
    use super::failed_message;

    #[test]
    fn a_failure_shows_the_output_s_end_or_says_there_was_none() {
        assert_eq!(
            failed_message("base provisioning", Some(1), "one\ntwo\n"),
            "base provisioning failed (exit status 1):\n    | one\n    | two"
        );
        assert_eq!(
            failed_message("base provisioning", Some(1), "\n  \n"),
            "base provisioning failed (exit status 1) and printed nothing"
        );
        assert_eq!(
            failed_message("a step", None, ""),
            "a step failed (exit status none) and printed nothing"
        );
    }
}
