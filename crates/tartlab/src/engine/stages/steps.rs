//! The lab's provisioning steps, in phases: a step starts on any node only when the one
//! before has finished on every node it selected, so values a step prints
//! (`tartlab-output KEY=VALUE`) can flow to the nodes of later steps. A step runs on a node
//! only when its inputs changed since it last succeeded there (`inputs.rs`). A failure stops
//! the later steps of that node's cluster; other clusters go on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::{command_failure, failed_clusters, show_note, GuestLink, NodeRun};
use crate::engine::events::{Action, Stage, Wait};
use crate::engine::inputs::{self, Outputs};
use crate::engine::remote::as_root_locked;
use crate::engine::{Context, Failure, WRITABLE};
use crate::guest::mask::OUTPUT_PREFIX;
use crate::guest::runner::{Command, GuestSession};
use crate::guest::ssh::{Input, Reply, Stream};
use crate::lab::model::StepSpec;
use crate::lab::{selects, Node};

const RUN_STEP: &str = r#"set -euo pipefail
name=$1 user=$2
install -d -m 0711 /var/lib/tartlab /var/lib/tartlab/steps
file=/var/lib/tartlab/steps/$name.sh
(umask 077; cat > "$file")
if [ -n "$user" ]; then
  chown "$user" "$file"
  exec sudo -n -u "$user" -H /bin/bash "$file" < /dev/null
fi
exec /bin/bash "$file" < /dev/null
"#;

/// A file name for the step's script on the guest.
fn script_name(step: &str) -> String {
    step.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The longest value an output may have.
pub const OUTPUT_VALUE_CAP: usize = 32 * 1024;

/// The `tartlab-output KEY=VALUE` lines a step prints, for the keys it declares, taken as
/// the lines arrive (the last value of a key wins); a value over `OUTPUT_VALUE_CAP` is kept
/// out and remembered as too long.
#[derive(Default)]
struct PrintedOutputs {
    values: BTreeMap<String, String>,
    too_long: BTreeSet<String>,
}

impl PrintedOutputs {
    fn take(&mut self, line: &str, declared: &BTreeSet<&str>) {
        let Some((key, value)) = line
            .strip_prefix(OUTPUT_PREFIX)
            .and_then(|kv| kv.split_once('='))
        else {
            return;
        };
        let key = key.trim();
        if !declared.contains(key) {
            return;
        }
        if value.len() > OUTPUT_VALUE_CAP {
            self.values.remove(key);
            self.too_long.insert(key.to_string());
        } else {
            self.too_long.remove(key);
            self.values.insert(key.to_string(), value.to_string());
        }
    }
}

/// A node a step runs on: where it is, its session, and the hash of the files it gets.
#[derive(Clone)]
struct Target {
    node: Node,
    ip: String,
    guest: Arc<GuestLink>,
    files: String,
}

/// Runs one step on one node (when its inputs changed or it is forced); returns whether it ran.
async fn run_step(
    ctx: &Context,
    step: &StepSpec,
    target: &Target,
    outputs: &Outputs,
) -> Result<bool, Failure> {
    let Target {
        node, ip, files, ..
    } = target;
    let vm = &node.vm_name;
    let inputs = inputs::step_inputs(&ctx.lab, step, node, files, outputs)
        .map_err(|e| Failure::new(Stage::Provision, e.to_string(), e.hint()))?;
    if is_done(ctx, step, vm, &inputs.hash) {
        ctx.reporter
            .skipped(vm, Stage::Provision, &format!("{} (unchanged)", step.name));
        return Ok(false);
    }
    let _slot = ctx.limit.acquire().await;
    let guest = target.guest.get(ctx, node, ip).await?;
    ctx.reporter.started(vm, Stage::Provision, &step.name);
    let printed = execute(ctx, &guest, step, &inputs.script).await?;
    let printed = declared_outputs(ctx, vm, step, printed)?;
    ctx.store
        .update_vm(vm, |o| {
            o.outputs.extend(printed);
            o.applied.insert(inputs::step_key(&step.name), inputs.hash);
        })
        .map_err(|e| Failure::new(Stage::Provision, e, WRITABLE))?;
    ctx.reporter.done(vm, Stage::Provision, &step.name);
    Ok(true)
}

/// Whether the step last succeeded on the node with these inputs (and left its outputs),
/// and is not forced to run again.
fn is_done(ctx: &Context, step: &StepSpec, vm: &str, hash: &str) -> bool {
    let recorded = ctx.store.vm(vm).unwrap_or_default();
    let outputs_present = step
        .outputs
        .iter()
        .all(|o| recorded.outputs.contains_key(o.name()));
    !ctx.options.reprovision.forces(&step.name)
        && recorded
            .applied
            .get(&inputs::step_key(&step.name))
            .map(String::as_str)
            == Some(hash)
        && outputs_present
}

/// Runs the step's script on the node (as root, or as its `user`); returns the outputs it
/// printed.
async fn execute(
    ctx: &Context,
    guest: &GuestSession,
    step: &StepSpec,
    script: &str,
) -> Result<PrintedOutputs, Failure> {
    let vm = &guest.vm;
    let what = format!("step `{}`", step.name);
    let command = as_root_locked(
        &what,
        RUN_STEP,
        &[&script_name(&step.name), step.user.as_deref().unwrap_or("")],
    );
    let as_user = step
        .user
        .as_ref()
        .map_or(String::new(), |u| format!(" as {u}"));
    let shown = format!("step `{}`{as_user}:\n{script}", step.name);
    let declared: BTreeSet<&str> = step.outputs.iter().map(|o| o.name()).collect();
    // A step with a secret output shows no line live: a secret printed before the line
    // that declares it is masked only from then on.
    let shows_lines = !step.outputs.iter().any(|o| o.secret());
    let show = |line: &str| {
        if shows_lines && !line.trim().is_empty() && !line.starts_with(OUTPUT_PREFIX) {
            ctx.reporter
                .output(vm, Stage::Provision, &ctx.masker.mask(line));
        }
    };
    let mut printed = PrintedOutputs::default();
    guest
        .run(
            Command {
                what: &what,
                line: &command,
                shown: &shown,
                input: Input::Given(Some(script.as_bytes())),
            },
            &mut |stream, line| {
                match stream {
                    Stream::Stderr => {
                        if !show_note(ctx, vm, Stage::Provision, &what, line) {
                            show(line);
                        }
                    }
                    Stream::Stdout => {
                        printed.take(line, &declared);
                        show(line);
                    }
                }
                Reply::Nothing
            },
        )
        .await
        .map_err(|e| command_failure(ctx, vm, Stage::Provision, &what, e))?;
    Ok(printed)
}

/// The outputs the step declares, from what it printed; a declared one it did not print
/// fails it.
fn declared_outputs(
    ctx: &Context,
    vm: &str,
    step: &StepSpec,
    printed: PrintedOutputs,
) -> Result<BTreeMap<String, String>, Failure> {
    if let Some(key) = printed.too_long.first() {
        return Err(Failure::new(
            Stage::Provision,
            format!(
                "step `{}` printed an output `{key}` longer than {} KiB, the limit for a value",
                step.name,
                OUTPUT_VALUE_CAP / 1024
            ),
            "pass large data as a file the step writes on the guest, and its path as the output",
        ));
    }
    let printed = printed.values;
    let missing: Vec<&str> = step
        .outputs
        .iter()
        .map(|o| o.name())
        .filter(|k| !printed.contains_key(*k))
        .collect();
    if missing.is_empty() {
        return Ok(printed);
    }
    Err(Failure::new(
        Stage::Provision,
        format!(
            "step `{}` succeeded but printed no `tartlab-output {}=...`",
            step.name,
            missing.join("=...`, `tartlab-output ")
        ),
        format!(
            "print each declared output on its own line; see {}",
            ctx.dir.provision_log(vm).display()
        ),
    ))
}

/// The nodes that came up, as steps reach them.
fn targets(ctx: &Context, runs: &[NodeRun]) -> HashMap<String, Target> {
    runs.iter()
        .filter(|r| r.report.failure.is_none())
        .filter_map(|r| {
            Some((
                r.node.vm_name.clone(),
                Target {
                    node: r.node.clone(),
                    ip: r.ip.clone()?,
                    guest: r.guest.clone(),
                    files: inputs::files_digest(&ctx.lab, &r.node),
                },
            ))
        })
        .collect()
}

/// What the phases did, node by node.
#[derive(Default)]
struct Phases {
    /// The clusters with a failed node, each with the node that failed first.
    failed: BTreeMap<String, String>,
    ran: HashMap<String, Vec<String>>,
    /// Steps that did not run on a healthy node because its cluster had a failure.
    skipped: HashMap<String, Vec<String>>,
}

/// Runs the steps phase by phase on the nodes that came up.
pub async fn run(ctx: &Arc<Context>, runs: &mut [NodeRun]) {
    prune_outputs(ctx);
    let targets = targets(ctx, runs);
    let mut phases = Phases {
        failed: failed_clusters(runs),
        ..Phases::default()
    };
    for step in &ctx.lab.file.provision {
        let outputs = Arc::new(inputs::outputs_of(&ctx.store.snapshot()));
        say_who_waits(ctx, step, &targets, &phases.failed, &outputs);
        let mut tasks = Vec::new();
        for node in ctx.lab.nodes.iter().filter(|n| selects(&step.on, n)) {
            let Some(target) = targets.get(&node.vm_name).cloned() else {
                continue;
            };
            if phases.failed.contains_key(&node.cluster) {
                phases
                    .skipped
                    .entry(node.vm_name.clone())
                    .or_default()
                    .push(step.name.clone());
                continue;
            }
            let (ctx, step, outputs) = (ctx.clone(), step.clone(), outputs.clone());
            tasks.push(tokio::spawn(async move {
                let result = run_step(&ctx, &step, &target, &outputs).await;
                (target.node, result)
            }));
        }
        for task in tasks {
            let Ok((node, result)) = task.await else {
                continue;
            };
            match result {
                Ok(true) => phases
                    .ran
                    .entry(node.vm_name.clone())
                    .or_default()
                    .push(step.name.clone()),
                Ok(false) => {}
                Err(failure) => {
                    ctx.reporter
                        .failed(&node.vm_name, failure.stage, &failure.message);
                    phases
                        .failed
                        .entry(node.cluster.clone())
                        .or_insert(node.vm_name.clone());
                    if let Some(run) = runs.iter_mut().find(|r| r.node.vm_name == node.vm_name) {
                        run.report.failure = Some(failure);
                    }
                }
            }
        }
    }
    phases.report(ctx, runs);
}

/// Tells, for a step that will run somewhere, that the nodes it does not select wait for
/// the nodes where it runs (the next step starts when it has finished on all of them). A
/// step unchanged everywhere says nothing: a converged run stays quiet.
fn say_who_waits(
    ctx: &Context,
    step: &StepSpec,
    targets: &HashMap<String, Target>,
    failed: &BTreeMap<String, String>,
    outputs: &Outputs,
) {
    let going = |n: &&Node| targets.contains_key(&n.vm_name) && !failed.contains_key(&n.cluster);
    let (selected, others): (Vec<&Node>, Vec<&Node>) = ctx
        .lab
        .nodes
        .iter()
        .filter(going)
        .partition(|n| selects(&step.on, n));
    let runs_on = |node: &&&Node| {
        let Some(target) = targets.get(&node.vm_name) else {
            return false;
        };
        inputs::step_inputs(&ctx.lab, step, node, &target.files, outputs)
            .map_or(true, |i| !is_done(ctx, step, &node.vm_name, &i.hash))
    };
    let busy: Vec<String> = selected
        .iter()
        .filter(runs_on)
        .map(|n| n.vm_name.clone())
        .collect();
    if busy.is_empty() {
        return;
    }
    let message = format!("waiting for {} (step `{}`)", super::names(&busy), step.name);
    for node in others {
        ctx.reporter.waiting(
            &node.vm_name,
            Stage::Provision,
            Wait::Peers {
                nodes: busy.clone(),
            },
            &message,
        );
    }
}

/// Drops from the state the outputs no step of the lab declares for the node any more (a
/// removed step's, a renamed output's) and values over the limit an older tartlab kept:
/// the state holds only what a later step can ask for.
fn prune_outputs(ctx: &Context) {
    let declared = |node: &Node| -> BTreeSet<String> {
        ctx.lab
            .file
            .provision
            .iter()
            .filter(|s| selects(&s.on, node))
            .flat_map(|s| s.outputs.iter().map(|o| o.name().to_string()))
            .collect()
    };
    let keep = |node: &Node, key: &str, value: &str| {
        value.len() <= OUTPUT_VALUE_CAP && declared(node).contains(key)
    };
    let state = ctx.store.snapshot();
    let stale = ctx.lab.nodes.iter().any(|node| {
        state
            .vms
            .get(&node.vm_name)
            .is_some_and(|vm| vm.outputs.iter().any(|(k, v)| !keep(node, k, v)))
    });
    if stale {
        let _ = ctx.store.update(|state| {
            for node in &ctx.lab.nodes {
                if let Some(vm) = state.vms.get_mut(&node.vm_name) {
                    vm.outputs.retain(|k, v| keep(node, k, v));
                }
            }
        });
    }
}

impl Phases {
    /// Each node's steps in its recap; a healthy node whose steps stopped because another
    /// node of its cluster failed is not fully provisioned, and says which node to fix.
    fn report(mut self, ctx: &Context, runs: &mut [NodeRun]) {
        for run in runs.iter_mut() {
            if let Some(steps) = self.ran.remove(&run.node.vm_name) {
                run.report.actions.push(Action::RanSteps(steps));
            }
            let (Some(culprit), Some(steps)) = (
                self.failed.get(&run.node.cluster),
                self.skipped.get(&run.node.vm_name),
            ) else {
                continue;
            };
            if run.report.failure.is_some() {
                continue;
            }
            let steps: Vec<String> = steps.iter().map(|s| format!("`{s}`")).collect();
            let mut failure = Failure::new(
                Stage::Provision,
                format!(
                    "not fully provisioned: {culprit} failed, so {} did not run on cluster {}",
                    steps.join(", "),
                    run.node.cluster
                ),
                format!("fix {culprit} (see its error above), then run `tartlab up` again"),
            );
            failure.caused_by = Some(culprit.clone());
            ctx.reporter
                .failed(&run.node.vm_name, failure.stage, &failure.message);
            run.report.failure = Some(failure);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_declared_outputs_are_taken() {
        let step: StepSpec = serde_json::from_value(serde_json::json!({
            "name": "server", "run": "x", "outputs": ["token", {"name": "pw", "secret": true}]
        }))
        .unwrap();
        let declared: BTreeSet<&str> = step.outputs.iter().map(|o| o.name()).collect();
        let mut printed = PrintedOutputs::default();
        let long = format!("tartlab-output token={}", "x".repeat(OUTPUT_VALUE_CAP + 1));
        for line in [
            "hello",
            &long,
            "tartlab-output token=abc=def",
            "tartlab-output other=1",
            "tartlab-output pw=s3cret",
        ] {
            printed.take(line, &declared);
        }
        let outputs = &printed.values;
        assert_eq!(outputs.get("token").map(String::as_str), Some("abc=def"));
        assert_eq!(outputs.get("pw").map(String::as_str), Some("s3cret"));
        assert!(!outputs.contains_key("other"));
        assert!(printed.too_long.is_empty(), "a later value that fits wins");
        printed.take(&long, &declared);
        assert!(printed.too_long.contains("token") && !printed.values.contains_key("token"));
    }

    #[test]
    fn script_names_are_safe_file_names() {
        assert_eq!(script_name("install k3s/server"), "install_k3s_server");
        assert_eq!(script_name("a-b_c"), "a-b_c");
    }
}
