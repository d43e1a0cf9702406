//! Output references in a step's `env` (`{{ node.NAME.outputs.KEY }}`,
//! `{{ cluster.ROLE.outputs.KEY }}`): found in a value, their scope typed, and checked to
//! have a value when the step runs (a node that answers, an earlier step that declares it).

use std::collections::{HashMap, HashSet};

use super::model::{LabFile, StepSpec};
use super::node::Node;
use super::selector::selects;
use super::structure::closest;

/// A problem with a reference: the message and the help.
type Problem = (String, String);

/// What the target of a reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `node.NAME`: the node of that VM or host name.
    Node,
    /// `cluster.ROLE`: the node of that role in the cluster of the node the step runs on.
    Cluster,
}

impl Scope {
    /// The scope as a reference writes it (`node`, `cluster`); `None` for any other.
    pub fn parse(written: &str) -> Option<Scope> {
        match written {
            "node" => Some(Scope::Node),
            "cluster" => Some(Scope::Cluster),
            _ => None,
        }
    }
}

/// A `{{ SCOPE.TARGET.outputs.KEY }}` found in a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputReference {
    pub text: String,
    /// Parsed once, where the reference is found; `None` when it is not of the form above
    /// or names a scope tartlab does not know.
    pub scope: Option<Scope>,
    pub target: String,
    pub key: String,
}

/// `{{ node.NAME.outputs.KEY }}` and `{{ cluster.ROLE.outputs.KEY }}` in a value.
pub fn output_references(value: &str) -> Vec<OutputReference> {
    let mut refs = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        let inner = rest[start + 2..start + end].trim();
        let parts: Vec<&str> = inner.split('.').collect();
        let (scope, target, key) = match parts.as_slice() {
            [scope, target, "outputs", key] => (Scope::parse(scope), *target, *key),
            _ => (None, "", inner),
        };
        refs.push(OutputReference {
            text: rest[start..start + end + 2].to_string(),
            scope,
            target: target.to_string(),
            key: key.to_string(),
        });
        rest = &rest[start + end + 2..];
    }
    refs
}

/// Whether a reference in a step's `env` can have a value: its node exists (or, for
/// `cluster.ROLE`, every node the step runs on has a node of that role in its cluster), and
/// an earlier step that runs on that node declares the output. Else what is wrong and what
/// to do.
pub(super) fn check_reference(
    reference: &OutputReference,
    step: &StepSpec,
    file: &LabFile,
    nodes: &[Node],
    by_cluster: &HashMap<&str, Vec<&Node>>,
) -> Result<(), Problem> {
    let answering = match reference.scope {
        Some(Scope::Node) => vec![named_node(reference, nodes)?],
        Some(Scope::Cluster) => nodes_of_role(reference, step, nodes, by_cluster)?,
        None => {
            return Err((
                format!("`{}` is not a reference tartlab knows", reference.text),
                "write {{ node.NAME.outputs.KEY }} or {{ cluster.ROLE.outputs.KEY }}".to_string(),
            ))
        }
    };
    if answering.is_empty() {
        // The step runs nowhere: its selector's problem is reported already.
        return Ok(());
    }
    declared_before(reference, step, file, &answering)
}

/// The node a `node.NAME` reference names, by VM or host name.
fn named_node<'n>(reference: &OutputReference, nodes: &'n [Node]) -> Result<&'n Node, Problem> {
    if let Some(node) = super::node::named(nodes, &reference.target) {
        return Ok(node);
    }
    let suffix = format!("-{}", reference.target);
    let near = nodes
        .iter()
        .find(|n| n.vm_name.ends_with(&suffix))
        .map(|n| n.vm_name.as_str())
        .or_else(|| closest(&reference.target, nodes.iter().map(|n| n.vm_name.as_str())));
    let mut message = format!("`{}`: `{}` is not a node", reference.text, reference.target);
    if let Some(near) = near {
        message.push_str(&format!(" (did you mean `{near}`?)"));
    }
    let names: Vec<&str> = nodes.iter().map(|n| n.vm_name.as_str()).collect();
    Err((
        message,
        format!(
            "nodes are named <cluster>-<node>, or <cluster>-<node>-<i> for a node with `count`; this lab's are: {}",
            names.join(", ")
        ),
    ))
}

/// The nodes a `cluster.ROLE` reference may be answered by: those of that role in each
/// cluster the step runs in; a problem when one of those clusters has none.
fn nodes_of_role<'n>(
    reference: &OutputReference,
    step: &StepSpec,
    nodes: &'n [Node],
    by_cluster: &HashMap<&str, Vec<&'n Node>>,
) -> Result<Vec<&'n Node>, Problem> {
    let mut answering = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    // Once per cluster the step runs in: linear in the nodes, however many run it.
    for runner in nodes.iter().filter(|n| selects(&step.on, n)) {
        if !seen.insert(&runner.cluster) {
            continue;
        }
        let peers: &[&Node] = by_cluster
            .get(runner.cluster.as_str())
            .map_or(&[], Vec::as_slice);
        let with_role: Vec<&Node> = peers
            .iter()
            .copied()
            .filter(|n| n.role == reference.target)
            .collect();
        if with_role.is_empty() {
            let mut roles: Vec<&str> = peers.iter().map(|n| n.role.as_str()).collect();
            roles.dedup();
            let mut message = format!(
                "`{}`: step `{}` runs on {}, and cluster `{}` has no node with role `{}`",
                reference.text, step.name, runner.vm_name, runner.cluster, reference.target
            );
            if let Some(near) = closest(&reference.target, roles.iter().copied()) {
                message.push_str(&format!(" (did you mean `{near}`?)"));
            }
            return Err((
                message,
                format!(
                    "the roles in cluster {} are: {}; or limit the step's `on` to clusters that have a {}",
                    runner.cluster,
                    roles.join(", "),
                    reference.target
                ),
            ));
        }
        answering.extend(with_role);
    }
    Ok(answering)
}

/// Whether an earlier step that runs on an answering node declares the output.
fn declared_before(
    reference: &OutputReference,
    step: &StepSpec,
    file: &LabFile,
    answering: &[&Node],
) -> Result<(), Problem> {
    let earlier = file
        .provision
        .iter()
        .take_while(|s| !std::ptr::eq(*s, step));
    let mut declared_there: Vec<&str> = Vec::new();
    for earlier_step in earlier {
        if answering.iter().any(|n| selects(&earlier_step.on, n)) {
            declared_there.extend(earlier_step.outputs.iter().map(|o| o.name()));
        }
    }
    if declared_there.contains(&reference.key.as_str()) {
        return Ok(());
    }
    // Each node once, in the lab's order (nodes given twice answer alike).
    let mut seen = HashSet::new();
    let names: Vec<&str> = answering
        .iter()
        .map(|n| n.vm_name.as_str())
        .filter(|name| seen.insert(*name))
        .collect();
    let mut message = format!(
        "`{}`: no step before `{}` that runs on {} declares the output `{}`",
        reference.text,
        step.name,
        names.join(", "),
        reference.key
    );
    if let Some(near) = closest(&reference.key, declared_there.iter().copied()) {
        message.push_str(&format!(" (did you mean `{near}`?)"));
    }
    Err((
        message,
        format!(
            "list `{}` in the `outputs:` of a step above this one that runs there, and print `tartlab-output {}=VALUE` from it",
            reference.key, reference.key
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_references_scope_is_typed_and_an_unknown_one_is_none() {
        let refs = output_references(
            "{{ node.dev-master.outputs.token }} {{cluster.master.outputs.url}} {{ lab.x }} {{ site.a.outputs.b }}",
        );
        let scopes: Vec<Option<Scope>> = refs.iter().map(|r| r.scope).collect();
        assert_eq!(
            scopes,
            [Some(Scope::Node), Some(Scope::Cluster), None, None]
        );
        assert_eq!(refs[0].target, "dev-master");
        assert_eq!(refs[1].key, "url");
    }
}
