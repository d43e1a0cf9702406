//! Provisioning after the base: the lab's files (SFTP, then put in place atomically as root),
//! the steps in phases (a step starts only when the one before has finished on every node it
//! selected), values passed between nodes as outputs, and the ready probes. A step runs on a
//! node only when its inputs changed since it last succeeded there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::base::{as_root, as_root_locked, hash};
use super::stages::{connect, remote, remote_shown, WRITABLE};
use super::{Context, Failure, Lab, NodeReport};
use crate::guest::quote;
use crate::guest::ssh::Session;
use crate::lab::model::{FileSpec, StepSpec};
use crate::lab::{output_references, selects, Node};

/// A lab file as it will land on one node.
struct Upload<'a> {
    spec: &'a FileSpec,
    content: Vec<u8>,
    hash: String,
}

fn uploads_for<'a>(lab: &'a Lab, node: &Node) -> Result<Vec<Upload<'a>>, Failure> {
    let mut uploads = Vec::new();
    for spec in lab.file.files.iter().filter(|f| selects(&f.on, node)) {
        let path = lab.source.dir().join(&spec.src);
        let content = std::fs::read(&path).map_err(|e| {
            Failure::new(
                "files",
                format!("cannot read {}: {e}", path.display()),
                "paths are relative to the lab file",
            )
        })?;
        let text = String::from_utf8_lossy(&content);
        let hash = hash(&[
            "file/1",
            &spec.dest,
            spec.mode.as_deref().unwrap_or("0644"),
            spec.owner.as_deref().unwrap_or("root"),
            &text,
        ]);
        uploads.push(Upload {
            spec,
            content,
            hash,
        });
    }
    Ok(uploads)
}

/// One hash over every file a node gets: a changed file re-runs that node's steps.
fn files_digest(lab: &Lab, node: &Node) -> String {
    let uploads = uploads_for(lab, node).unwrap_or_default();
    let hashes: Vec<&str> = uploads.iter().map(|u| u.hash.as_str()).collect();
    hash(&hashes)
}

const PLACE_FILE: &str = r#"set -euo pipefail
src=$1 dest=$2 mode=$3 owner=$4 group=$5
mkdir -p "$(dirname "$dest")"
install -m "$mode" -o "$owner" -g "$group" "$src" "$dest.tartlab-tmp"
mv -f "$dest.tartlab-tmp" "$dest"
rm -f "$src"
"#;

/// Uploads the files selected for this node whose content, mode or owner changed: SFTP into
/// the login user's home, then `install` and `rename` as root so the file appears whole.
pub async fn upload_files(
    ctx: &Context,
    node: &Node,
    ip: &str,
    session: &mut Option<Session>,
) -> Result<Vec<String>, Failure> {
    let vm = &node.vm_name;
    let applied = ctx.store.vm(vm).map(|o| o.applied).unwrap_or_default();
    let uploads: Vec<Upload> = uploads_for(&ctx.lab, node)?
        .into_iter()
        .filter(|u| applied.get(&format!("file:{}", u.spec.dest)) != Some(&u.hash))
        .collect();
    if uploads.is_empty() {
        return Ok(Vec::new());
    }
    if session.is_none() {
        let _permit = ctx.limit.acquire().await;
        *session = Some(connect(ctx, node, ip).await?);
    }
    let Some(s) = session.as_ref() else {
        return Ok(Vec::new());
    };
    ctx.ui
        .started(vm, "files", &format!("{} file(s)", uploads.len()));
    let sftp = s
        .sftp()
        .await
        .map_err(|e| Failure::new("files", e, "the image's sshd needs its sftp subsystem"))?;
    let home = sftp.canonicalize(".").await.map_err(|e| {
        Failure::new(
            "files",
            format!("SFTP: {e}"),
            "the image's sshd needs its sftp subsystem",
        )
    })?;
    let mut done = Vec::new();
    for (i, upload) in uploads.iter().enumerate() {
        let staged = format!("{home}/.tartlab-upload-{i}");
        crate::guest::ssh::sftp_put(&sftp, &staged, &upload.content)
            .await
            .map_err(|e| {
                Failure::new(
                    "files",
                    format!("uploading {} to {vm}: {e}", upload.spec.src),
                    format!("check the free space on {vm}"),
                )
            })?;
        let owner = upload.spec.owner.clone().unwrap_or_else(|| "root".into());
        let (user, group) = owner.split_once(':').unwrap_or((&owner, &owner));
        let mode = upload.spec.mode.clone().unwrap_or_else(|| "0644".into());
        let what = format!("placing {}", upload.spec.dest);
        let command = as_root_locked(
            &what,
            PLACE_FILE,
            &[&staged, &upload.spec.dest, &mode, user, group],
        );
        remote(ctx, s, vm, "files", &what, &command, None).await?;
        ctx.store
            .update_vm(vm, |o| {
                o.applied
                    .insert(format!("file:{}", upload.spec.dest), upload.hash.clone());
            })
            .map_err(|e| Failure::new("files", e, WRITABLE))?;
        done.push(upload.spec.dest.clone());
    }
    let _ = sftp.close().await;
    Ok(done)
}

/// The value of `{{ SCOPE.TARGET.outputs.KEY }}` for `node`: a node's own output, or the
/// output of the node with that role in the same cluster.
fn output_value(
    lab: &Lab,
    outputs: &HashMap<String, BTreeMap<String, String>>,
    node: &Node,
    scope: &str,
    target: &str,
    key: &str,
) -> Option<String> {
    let source = match scope {
        "node" => lab
            .nodes
            .iter()
            .find(|n| n.vm_name == target || n.hostname == target)?,
        "cluster" => lab
            .nodes
            .iter()
            .find(|n| {
                n.cluster == node.cluster
                    && n.role == target
                    && outputs.get(&n.vm_name).is_some_and(|o| o.contains_key(key))
            })
            .or_else(|| {
                lab.nodes
                    .iter()
                    .find(|n| n.cluster == node.cluster && n.role == target)
            })?,
        _ => return None,
    };
    outputs.get(&source.vm_name)?.get(key).cloned()
}

/// The step's environment for this node, with every output reference filled in.
fn environment(
    lab: &Lab,
    outputs: &HashMap<String, BTreeMap<String, String>>,
    step: &StepSpec,
    node: &Node,
) -> Result<BTreeMap<String, String>, Failure> {
    let mut env = BTreeMap::new();
    env.insert("TARTLAB_NODE".to_string(), node.vm_name.clone());
    env.insert("TARTLAB_CLUSTER".to_string(), node.cluster.clone());
    env.insert("TARTLAB_ROLE".to_string(), node.role.clone());
    for (name, value) in &step.env {
        let mut filled = value.clone();
        for reference in output_references(value) {
            let found = output_value(lab, outputs, node, &reference.scope, &reference.target, &reference.key)
                .ok_or_else(|| {
                    Failure::new(
                        "provision",
                        format!(
                            "step `{}`: {} has no value for {} (no node printed `tartlab-output {}=...`)",
                            step.name, reference.text, node.vm_name, reference.key
                        ),
                        "the step that declares this output must succeed first; see `tartlab logs` of the node it comes from",
                    )
                })?;
            filled = filled.replace(&reference.text, &found);
        }
        env.insert(name.clone(), filled);
    }
    Ok(env)
}

/// The whole script a step runs on a node: its environment, strict mode, then the body.
fn step_script(
    lab: &Lab,
    step: &StepSpec,
    env: &BTreeMap<String, String>,
) -> Result<String, Failure> {
    let body = match (&step.run, &step.script) {
        (Some(run), _) => run.clone(),
        (None, Some(path)) => {
            let full = lab.source.dir().join(path);
            std::fs::read_to_string(&full).map_err(|e| {
                Failure::new(
                    "provision",
                    format!("cannot read {}: {e}", full.display()),
                    "paths are relative to the lab file",
                )
            })?
        }
        (None, None) => String::new(),
    };
    let mut script = String::new();
    for (name, value) in env {
        script.push_str(&format!("export {name}={}\n", quote::quote(value)));
    }
    script.push_str("set -euo pipefail\n");
    script.push_str(&body);
    if !script.ends_with('\n') {
        script.push('\n');
    }
    Ok(script)
}

/// The script a step runs on a node, and the hash of everything that decides whether it
/// must run again: the script with its environment filled in, the user, the nodes the step
/// selects, and the files the node gets.
fn step_inputs(
    lab: &Lab,
    step: &StepSpec,
    node: &Node,
    selection: &str,
    files: &str,
    outputs: &HashMap<String, BTreeMap<String, String>>,
) -> Result<(String, String), Failure> {
    let env = environment(lab, outputs, step, node)?;
    let script = step_script(lab, step, &env)?;
    let inputs = hash(&[
        "step/1",
        &script,
        step.user.as_deref().unwrap_or(""),
        selection,
        files,
    ]);
    Ok((script, inputs))
}

/// The nodes a step selects, as recorded in its input hash.
fn selection(lab: &Lab, step: &StepSpec) -> String {
    lab.nodes
        .iter()
        .filter(|n| selects(&step.on, n))
        .map(|n| n.vm_name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// What `up` would provision on a node besides the base, for `plan`: changed files and the
/// steps whose inputs changed (or that never succeeded there).
pub fn pending(lab: &Lab, state: &crate::state::State, node: &Node) -> Vec<String> {
    let Some(owned) = state.vms.get(&node.vm_name) else {
        return Vec::new();
    };
    let mut pending = Vec::new();
    if let Ok(uploads) = uploads_for(lab, node) {
        if uploads
            .iter()
            .any(|u| owned.applied.get(&format!("file:{}", u.spec.dest)) != Some(&u.hash))
        {
            pending.push("files".to_string());
        }
    }
    let outputs: HashMap<String, BTreeMap<String, String>> = state
        .vms
        .iter()
        .map(|(vm, o)| (vm.clone(), o.outputs.clone()))
        .collect();
    let files = files_digest(lab, node);
    for step in lab.file.provision.iter().filter(|s| selects(&s.on, node)) {
        let key = format!("step:{}", step.name);
        match step_inputs(lab, step, node, &selection(lab, step), &files, &outputs) {
            Ok((_, inputs)) if owned.applied.get(&key) == Some(&inputs) => {}
            _ => pending.push(format!("step {}", step.name)),
        }
    }
    pending
}

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

/// The `tartlab-output KEY=VALUE` lines a step printed, for the keys it declares.
fn parse_outputs(stdout: &str, step: &StepSpec) -> BTreeMap<String, String> {
    let declared: BTreeSet<&str> = step.outputs.iter().map(|o| o.name()).collect();
    stdout
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("tartlab-output "))
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| declared.contains(k.trim()))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

/// Every secret output value the state knows, so it can be masked from the start.
pub fn known_secrets(ctx: &Context) -> BTreeSet<String> {
    let secret_keys = ctx.secret_output_keys();
    ctx.store
        .snapshot()
        .vms
        .values()
        .flat_map(|vm| {
            vm.outputs
                .iter()
                .filter(|(k, _)| secret_keys.contains(k.as_str()))
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Connections kept open across phases, one per node, made on first need.
struct Sessions {
    open: tokio::sync::Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    async fn get(&self, ctx: &Context, node: &Node, ip: &str) -> Result<Arc<Session>, Failure> {
        if let Some(s) = self.open.lock().await.get(&node.vm_name) {
            return Ok(s.clone());
        }
        let session = Arc::new(connect(ctx, node, ip).await?);
        self.open
            .lock()
            .await
            .insert(node.vm_name.clone(), session.clone());
        Ok(session)
    }
}

/// A node a step runs on: where it is, and the hash of the files it gets.
struct Target {
    node: Node,
    ip: String,
    files: String,
}

/// Runs one step on one node (when its inputs changed or it is forced); returns whether it ran.
async fn run_step(
    ctx: &Context,
    sessions: &Sessions,
    step: &StepSpec,
    target: &Target,
    selection: &str,
    outputs: &HashMap<String, BTreeMap<String, String>>,
) -> Result<bool, Failure> {
    let Target { node, ip, files } = target;
    let vm = &node.vm_name;
    let (script, inputs) = step_inputs(&ctx.lab, step, node, selection, files, outputs)?;
    let key = format!("step:{}", step.name);
    let forced = match &ctx.options.reprovision {
        Some(None) => true,
        Some(Some(name)) => *name == step.name,
        None => false,
    };
    let recorded = ctx.store.vm(vm).unwrap_or_default();
    let declared_present = step
        .outputs
        .iter()
        .all(|o| recorded.outputs.contains_key(o.name()));
    if !forced && recorded.applied.get(&key) == Some(&inputs) && declared_present {
        ctx.ui
            .skipped(vm, "provision", &format!("{} (unchanged)", step.name));
        return Ok(false);
    }
    let _permit = ctx.limit.acquire().await;
    let session = sessions.get(ctx, node, ip).await?;
    ctx.ui.started(vm, "provision", &step.name);
    let what = format!("step `{}`", step.name);
    let command = as_root_locked(
        &what,
        RUN_STEP,
        &[&script_name(&step.name), step.user.as_deref().unwrap_or("")],
    );
    let shown = format!(
        "step `{}`{}:\n{script}",
        step.name,
        step.user
            .as_ref()
            .map_or(String::new(), |u| format!(" as {u}"))
    );
    let out = remote_shown(
        ctx,
        &session,
        vm,
        "provision",
        &what,
        &command,
        &shown,
        Some(&script),
    )
    .await?;
    let printed = parse_outputs(&out.stdout_text(), step);
    let missing: Vec<&str> = step
        .outputs
        .iter()
        .map(|o| o.name())
        .filter(|k| !printed.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(Failure::new(
            "provision",
            format!(
                "step `{}` succeeded but printed no `tartlab-output {}=...`",
                step.name,
                missing.join("=...`, `tartlab-output ")
            ),
            format!(
                "print each declared output on its own line; see {}",
                ctx.dir.provision_log(vm).display()
            ),
        ));
    }
    ctx.store
        .update_vm(vm, |o| {
            o.outputs.extend(printed);
            o.applied.insert(key, inputs);
        })
        .map_err(|e| Failure::new("provision", e, WRITABLE))?;
    ctx.ui.done(vm, "provision", &step.name);
    Ok(true)
}

/// Runs the steps phase by phase, then the ready probes, on the nodes that came up. A
/// failure stops the later steps of that node's cluster; other clusters go on.
pub async fn run(ctx: Arc<Context>, reports: &mut [NodeReport]) {
    if let Ok(mut secrets) = ctx.secrets.lock() {
        secrets.extend(known_secrets(&ctx));
    }
    let ready: HashMap<String, String> = reports
        .iter()
        .filter(|r| r.failure.is_none())
        .filter_map(|r| Some((r.node.clone(), r.ip.clone()?)))
        .collect();
    let mut failed_clusters: BTreeMap<String, String> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.failure.is_some()) {
        if let Some(node) = ctx.node(&r.node) {
            failed_clusters
                .entry(node.cluster.clone())
                .or_insert(r.node.clone());
        }
    }
    let sessions = Arc::new(Sessions {
        open: tokio::sync::Mutex::new(HashMap::new()),
    });
    let mut ran: HashMap<String, Vec<String>> = HashMap::new();
    // Steps that did not run on a healthy node because its cluster had a failure.
    let mut skipped: HashMap<String, Vec<String>> = HashMap::new();
    // Each node's files, read and hashed once for all its steps.
    let files: HashMap<String, String> = ctx
        .lab
        .nodes
        .iter()
        .filter(|n| ready.contains_key(&n.vm_name))
        .map(|n| (n.vm_name.clone(), files_digest(&ctx.lab, n)))
        .collect();
    for step in ctx.lab.file.provision.clone() {
        let selected: Vec<Node> = ctx
            .lab
            .nodes
            .iter()
            .filter(|n| selects(&step.on, n))
            .cloned()
            .collect();
        let selection = selection(&ctx.lab, &step);
        let outputs: Arc<HashMap<String, BTreeMap<String, String>>> = Arc::new(
            ctx.store
                .snapshot()
                .vms
                .into_iter()
                .map(|(vm, o)| (vm, o.outputs))
                .collect(),
        );
        let mut tasks = Vec::new();
        for node in selected {
            let Some(ip) = ready.get(&node.vm_name).cloned() else {
                continue;
            };
            if failed_clusters.contains_key(&node.cluster) {
                skipped
                    .entry(node.vm_name.clone())
                    .or_default()
                    .push(step.name.clone());
                continue;
            }
            let target = Target {
                files: files.get(&node.vm_name).cloned().unwrap_or_default(),
                node,
                ip,
            };
            let (ctx, sessions, step, selection, outputs) = (
                ctx.clone(),
                sessions.clone(),
                step.clone(),
                selection.clone(),
                outputs.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let result = run_step(&ctx, &sessions, &step, &target, &selection, &outputs).await;
                (target.node, result)
            }));
        }
        for task in tasks {
            let Ok((node, result)) = task.await else {
                continue;
            };
            match result {
                Ok(true) => ran
                    .entry(node.vm_name.clone())
                    .or_default()
                    .push(step.name.clone()),
                Ok(false) => {}
                Err(failure) => {
                    ctx.ui
                        .failed(&node.vm_name, failure.stage, &failure.message);
                    failed_clusters
                        .entry(node.cluster.clone())
                        .or_insert(node.vm_name.clone());
                    if let Some(r) = reports.iter_mut().find(|r| r.node == node.vm_name) {
                        r.failure = Some(failure);
                    }
                }
            }
        }
    }
    run_probes(&ctx, &sessions, &ready, &failed_clusters, reports).await;
    for r in reports.iter_mut() {
        if let Some(steps) = ran.get(&r.node) {
            r.actions.push(format!("ran {}", steps.join(", ")));
        }
        let Some(node) = ctx.node(&r.node) else {
            continue;
        };
        if r.failure.is_none() {
            if let (Some(culprit), Some(steps)) =
                (failed_clusters.get(&node.cluster), skipped.get(&r.node))
            {
                let steps: Vec<String> = steps.iter().map(|s| format!("`{s}`")).collect();
                let mut failure = Failure::new(
                    "provision",
                    format!(
                        "not fully provisioned: {culprit} failed, so {} did not run on cluster {}",
                        steps.join(", "),
                        node.cluster
                    ),
                    format!("fix {culprit} (see its error above), then run `tartlab up` again"),
                );
                failure.caused_by = Some(culprit.clone());
                r.failure = Some(failure);
            }
        }
    }
    for (_, session) in sessions.open.lock().await.drain() {
        if let Ok(session) = Arc::try_unwrap(session) {
            session.close().await;
        }
    }
}

/// The `ready` probes, on every node they select that came up and whose cluster did not fail.
async fn run_probes(
    ctx: &Arc<Context>,
    sessions: &Arc<Sessions>,
    ready: &HashMap<String, String>,
    failed_clusters: &BTreeMap<String, String>,
    reports: &mut [NodeReport],
) {
    let mut tasks = Vec::new();
    for (i, probe) in ctx.lab.file.ready.iter().enumerate() {
        for node in ctx.lab.nodes.iter().filter(|n| selects(&probe.on, n)) {
            let Some(ip) = ready.get(&node.vm_name).cloned() else {
                continue;
            };
            if failed_clusters.contains_key(&node.cluster) {
                continue;
            }
            let (ctx, sessions, node) = (ctx.clone(), sessions.clone(), node.clone());
            tasks.push(tokio::spawn(async move {
                let probe = &ctx.lab.file.ready[i];
                let vm = node.vm_name.clone();
                ctx.ui.started(&vm, "ready", &probe.run);
                let result = async {
                    let session = sessions.get(&ctx, &node, &ip).await?;
                    let command = as_root(&format!("set -euo pipefail\n{}", probe.run), &[]);
                    let shown = format!("ready probe: {}", probe.run);
                    let what = format!("ready probe `{}`", probe.run);
                    remote_shown(&ctx, &session, &vm, "ready", &what, &command, &shown, None)
                        .await
                        .map(|_| ())
                }
                .await
                .map_err(|mut f| {
                    f.stage = "ready";
                    if let Some(hint) = &probe.hint {
                        f.hint = hint.clone();
                    }
                    f
                });
                (vm, result)
            }));
        }
    }
    for task in tasks {
        let Ok((vm, Err(failure))) = task.await else {
            continue;
        };
        ctx.ui.failed(&vm, failure.stage, &failure.message);
        if let Some(r) = reports
            .iter_mut()
            .find(|r| r.node == vm && r.failure.is_none())
        {
            r.failure = Some(failure);
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
        let outputs = parse_outputs("hello\ntartlab-output token=abc=def\ntartlab-output other=1\ntartlab-output pw=s3cret\r\n", &step);
        assert_eq!(outputs.get("token").map(String::as_str), Some("abc=def"));
        assert_eq!(outputs.get("pw").map(String::as_str), Some("s3cret"));
        assert!(!outputs.contains_key("other"));
    }

    #[test]
    fn script_names_are_safe_file_names() {
        assert_eq!(script_name("install k3s/server"), "install_k3s_server");
        assert_eq!(script_name("a-b_c"), "a-b_c");
    }
}
