//! What decides whether a piece of provisioning must run (again) on a node: the hash of its
//! inputs, compared with the one the state file recorded when it last succeeded there. One
//! place for base parts (with the users' `authorized_keys` lines, `user_keys`), the
//! `/etc/hosts` block, the user-data, files and steps, so that `plan` (which predicts) and
//! the stages (which do) can never disagree. What cannot be made fails with an
//! `InputError` that says what to do.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::remote::hash;
use crate::lab::model::{FileSpec, HostsScope, LabFile, StepSpec, SudoMode, UserSpec};
use crate::lab::{output_references, selects, Lab, Node, NotRead, Scope, UserDataError};
use crate::quote;
use crate::state::State;

/// The state key of the identity part (hostname, machine-id, host keys).
pub const IDENTITY: &str = "identity";
/// The applied key of the cloud-init user-data.
pub const CLOUD_INIT: &str = "cloud-init";
/// The state key of the `/etc/hosts` block.
pub const HOSTS: &str = "hosts";
/// The state key recording that the lab key is in the login user's authorized_keys.
pub const LAB_KEY: &str = "lab-key";

/// The state key of a lab user's part.
pub fn user_key(name: &str) -> String {
    format!("user:{name}")
}

/// The state key of a file.
pub fn file_key(dest: &str) -> String {
    format!("file:{dest}")
}

/// The state key of a step.
pub fn step_key(name: &str) -> String {
    format!("step:{name}")
}

pub fn identity_hash(hostname: &str) -> String {
    hash(&["identity/2", hostname])
}

/// A lab user as the base script gets it: its arguments (never a secret among them), the
/// password hash (sent on stdin), and the hash of all of it.
pub struct UserInputs {
    pub args: Vec<String>,
    pub password_hash: Option<String>,
    pub hash: String,
}

pub fn user_inputs(user: &UserSpec, keys: &[String]) -> UserInputs {
    let sudo = match user.sudo {
        SudoMode::None => "none",
        SudoMode::Password => "password",
        SudoMode::Nopasswd => "nopasswd",
    };
    let args = vec![
        user.name.clone(),
        user.shell.clone().unwrap_or_else(|| "/bin/bash".into()),
        sudo.to_string(),
        user.groups.join(","),
        keys.join("\n"),
        if user.password_hash.is_some() {
            "1"
        } else {
            "0"
        }
        .to_string(),
    ];
    let secret = user.password_hash.clone().unwrap_or_default();
    let mut inputs = vec!["user/1"];
    inputs.extend(args.iter().map(String::as_str));
    inputs.push(&secret);
    UserInputs {
        hash: hash(&inputs),
        args,
        password_hash: user.password_hash.clone(),
    }
}

/// The VMs whose names go into this node's `/etc/hosts` block.
pub fn hosts_scope(file: &LabFile, nodes: &[Node], node: &Node) -> Vec<String> {
    match file.hosts {
        HostsScope::None => Vec::new(),
        HostsScope::Cluster => nodes
            .iter()
            .filter(|n| n.cluster == node.cluster)
            .map(|n| n.vm_name.clone())
            .collect(),
        HostsScope::Lab => nodes.iter().map(|n| n.vm_name.clone()).collect(),
    }
}

/// The lab's block in `/etc/hosts`: one `IP NAME` line per node in scope (empty: no block).
pub fn hosts_block(entries: &[(String, String)]) -> String {
    entries
        .iter()
        .map(|(vm, ip)| format!("{ip} {vm}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn hosts_hash(block: &str) -> String {
    hash(&["hosts/1", block])
}

/// A lab file as it will land on one node.
pub struct Upload<'a> {
    pub spec: &'a FileSpec,
    pub content: Arc<[u8]>,
    pub hash: String,
}

/// Why a node's input (a file, its user-data, a step's script or environment) cannot be
/// made; each says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// A file the lab names that `validate` did not read.
    NotRead(NotRead),
    /// The node's `cloud_init:` file (as written) is not user-data tartlab takes.
    UserData {
        file: String,
        problem: UserDataError,
    },
    /// A reference in a step's `env` has no value yet.
    NoValue {
        step: String,
        node: String,
        reference: String,
        why: NoValue,
    },
}

/// Why an output reference has no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoValue {
    /// No node answers it for the node the step runs on.
    NoNode { node: String },
    /// The node that answers it has not printed the output (yet).
    NoOutput { source: String, key: String },
}

impl std::fmt::Display for NoValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoValue::NoNode { node } => write!(f, "no node answers it for {node}"),
            NoValue::NoOutput { source, key } => write!(
                f,
                "{source} has no output `{key}` yet: the step that prints it has not succeeded there"
            ),
        }
    }
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::NotRead(e) => e.fmt(f),
            InputError::UserData { file, problem } => write!(f, "{file}: {problem}"),
            InputError::NoValue {
                step,
                node,
                reference,
                why,
            } => write!(
                f,
                "step `{step}` on {node}: `{reference}` has no value: {why}"
            ),
        }
    }
}

impl InputError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            InputError::NotRead(_) => "run `tartlab validate`",
            InputError::UserData { .. } => "fix the user-data file named by cloud_init:",
            InputError::NoValue { .. } => "the step that declares this output must succeed first; see `tartlab logs` of the node it comes from",
        }
    }
}

impl From<NotRead> for InputError {
    fn from(e: NotRead) -> InputError {
        InputError::NotRead(e)
    }
}

/// A lab user's key that cannot be read: which, whose, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadKey {
    pub key: String,
    pub user: String,
    pub why: NotRead,
}

impl std::fmt::Display for UnreadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot read key `{}` of user {}: {}",
            self.key, self.user, self.why
        )
    }
}

/// Each lab user's authorized_keys lines: their own keys, then the lab key.
pub fn user_keys(
    lab: &Lab,
    lab_public_key: &str,
) -> Result<HashMap<String, Vec<String>>, UnreadKey> {
    let mut all = HashMap::new();
    for user in &lab.file.users {
        let mut keys = Vec::new();
        for k in &user.authorized_keys {
            keys.push(
                crate::lab::authorized_key_text(k, lab).map_err(|why| UnreadKey {
                    key: k.clone(),
                    user: user.name.clone(),
                    why,
                })?,
            );
        }
        keys.push(lab_public_key.trim().to_string());
        all.insert(user.name.clone(), keys);
    }
    Ok(all)
}

/// The files a node gets, as `validate` read them (`lab::input`: inside the lab's
/// directory, a regular file, bounded, never read again from disk), each with its hash; or
/// the first that is missing.
pub fn uploads<'a>(lab: &'a Lab, node: &Node) -> Result<Vec<Upload<'a>>, InputError> {
    let mut uploads = Vec::new();
    for spec in lab.file.files.iter().filter(|f| selects(&f.on, node)) {
        let content = lab.inputs.read(&spec.src)?.clone();
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

/// The node's cloud-init user-data (its `cloud_init:` file with tartlab's values filled in)
/// and its hash; `None` when it has none.
pub fn cloud_init(lab: &Lab, node: &Node) -> Option<Result<(String, String), InputError>> {
    let relative = node.cloud_init.as_ref()?;
    let text = lab
        .inputs
        .read(relative)
        .map_err(InputError::from)
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .and_then(|t| {
            crate::lab::cloud_init::user_data(&t, node, lab.name()).map_err(|problem| {
                InputError::UserData {
                    file: relative.clone(),
                    problem,
                }
            })
        });
    Some(text.map(|text| {
        let digest = hash(&["cloud-init/1", &text, &node.hostname]);
        (text, digest)
    }))
}

/// One hash over every file a node gets: a changed file re-runs that node's steps.
pub fn files_digest(lab: &Lab, node: &Node) -> String {
    let uploads = uploads(lab, node).unwrap_or_default();
    let hashes: Vec<&str> = uploads.iter().map(|u| u.hash.as_str()).collect();
    hash(&hashes)
}

/// Every node's outputs, as steps read them.
pub type Outputs = HashMap<String, BTreeMap<String, String>>;

pub fn outputs_of(state: &State) -> Outputs {
    state
        .vms
        .iter()
        .map(|(vm, o)| (vm.clone(), o.outputs.clone()))
        .collect()
}

/// The value of `{{ SCOPE.TARGET.outputs.KEY }}` for `node`: a node's own output, or the
/// output of the node with that role in the same cluster; else why there is none.
fn output_value(
    lab: &Lab,
    outputs: &Outputs,
    node: &Node,
    scope: Option<Scope>,
    target: &str,
    key: &str,
) -> Result<String, NoValue> {
    let source = match scope {
        Some(Scope::Node) => crate::lab::named(&lab.nodes, target),
        Some(Scope::Cluster) => lab
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
            }),
        None => None,
    };
    let Some(source) = source else {
        return Err(NoValue::NoNode {
            node: node.vm_name.clone(),
        });
    };
    outputs
        .get(&source.vm_name)
        .and_then(|o| o.get(key))
        .cloned()
        .ok_or_else(|| NoValue::NoOutput {
            source: source.vm_name.clone(),
            key: key.to_string(),
        })
}

/// The step's environment for this node, with every output reference filled in; or the
/// message for the first reference that has no value yet.
fn environment(
    lab: &Lab,
    outputs: &Outputs,
    step: &StepSpec,
    node: &Node,
) -> Result<BTreeMap<String, String>, InputError> {
    let mut env = BTreeMap::new();
    env.insert("TARTLAB_NODE".to_string(), node.vm_name.clone());
    env.insert("TARTLAB_CLUSTER".to_string(), node.cluster.clone());
    env.insert("TARTLAB_ROLE".to_string(), node.role.clone());
    for (name, value) in &step.env {
        // One pass over the text as written: a value filled in is never read again as a
        // reference (an output that looks like `{{ ... }}` stays as it was printed).
        let mut filled = String::new();
        let mut cursor = 0;
        for reference in output_references(value) {
            let found = output_value(
                lab,
                outputs,
                node,
                reference.scope,
                &reference.target,
                &reference.key,
            )
            .map_err(|why| InputError::NoValue {
                step: step.name.clone(),
                node: node.vm_name.clone(),
                reference: reference.text.clone(),
                why,
            })?;
            if let Some(at) = value[cursor..].find(&reference.text) {
                filled.push_str(&value[cursor..cursor + at]);
                filled.push_str(&found);
                cursor += at + reference.text.len();
            }
        }
        filled.push_str(&value[cursor..]);
        env.insert(name.clone(), filled);
    }
    Ok(env)
}

/// The whole script a step runs on a node: strict mode, its environment (names checked by
/// `lab::check`, values quoted), then the body.
fn step_script(
    lab: &Lab,
    step: &StepSpec,
    env: &BTreeMap<String, String>,
) -> Result<String, NotRead> {
    let body = match (&step.run, &step.script) {
        (Some(run), _) => run.clone(),
        (None, Some(path)) => String::from_utf8_lossy(lab.inputs.read(path)?).into_owned(),
        (None, None) => String::new(),
    };
    let mut script = String::from("set -euo pipefail\n");
    for (name, value) in env {
        script.push_str(&format!("export {name}={}\n", quote::quote(value)));
    }
    script.push_str(&body);
    if !script.ends_with('\n') {
        script.push('\n');
    }
    Ok(script)
}

/// The nodes a step selects, as recorded in its input hash.
pub fn selection(lab: &Lab, step: &StepSpec) -> String {
    lab.nodes
        .iter()
        .filter(|n| selects(&step.on, n))
        .map(|n| n.vm_name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A step as it would run on one node.
pub struct StepRun {
    pub script: String,
    pub hash: String,
}

/// The script a step runs on a node, and the hash of everything that decides whether it
/// must run again: the script with its environment filled in, the user, the nodes the step
/// selects, and the files the node gets (`files`, from `files_digest`).
pub fn step_inputs(
    lab: &Lab,
    step: &StepSpec,
    node: &Node,
    files: &str,
    outputs: &Outputs,
) -> Result<StepRun, InputError> {
    let env = environment(lab, outputs, step, node)?;
    let script = step_script(lab, step, &env)?;
    let hash = hash(&[
        "step/1",
        &script,
        step.user.as_deref().unwrap_or(""),
        &selection(lab, step),
        files,
    ]);
    Ok(StepRun { script, hash })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::Source;

    const LAB: &str = "lab: t\nclusters:\n  - name: dev\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker }\nprovision:\n  - name: server\n    on: role=master\n    run: echo token=x\n    outputs: [token]\n  - name: agents\n    on: role=worker\n    env:\n      TOKEN: \"{{ cluster.master.outputs.token }}\"\n    run: echo $TOKEN\n";

    #[test]
    fn a_reference_with_no_value_yet_says_whose_step_must_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let lab = crate::lab::read(Source::new(&dir.path().join("tartlab.yaml"), LAB.into()))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let worker = lab.node("dev-worker").unwrap();
        let agents = &lab.file.provision[1];
        let mut outputs = Outputs::new();
        let error = step_inputs(&lab, agents, worker, "", &outputs)
            .err()
            .unwrap();
        assert_eq!(
            error,
            InputError::NoValue {
                step: "agents".into(),
                node: "dev-worker".into(),
                reference: "{{ cluster.master.outputs.token }}".into(),
                why: NoValue::NoOutput {
                    source: "dev-master".into(),
                    key: "token".into()
                },
            }
        );
        assert_eq!(error.to_string(), "step `agents` on dev-worker: `{{ cluster.master.outputs.token }}` has no value: dev-master has no output `token` yet: the step that prints it has not succeeded there");
        assert!(error.hint().contains("must succeed first"));
        outputs.insert(
            "dev-master".into(),
            BTreeMap::from([("token".to_string(), "s3cret".to_string())]),
        );
        let run = step_inputs(&lab, agents, worker, "", &outputs).unwrap();
        assert!(run.script.contains("export TOKEN=s3cret"), "{}", run.script);
        // A file validate never read is a different thing, with its own hint.
        let missing = InputError::from(NotRead("scripts/gone.sh".into()));
        assert_eq!(missing.hint(), "run `tartlab validate`");
    }
}
