//! The lab's steps: `files` (sources read, absolute destinations), `provision` (unique
//! names, one of `run` and `script`, earlier `after`s, users, environment names and output
//! references) and `ready`, each with a selector that matches a node.

use std::collections::{BTreeMap, HashMap};

use super::checker::{at, Checker, Here};
use super::input::Kind;
use super::model::LabFile;
use super::names::{is_env_name, is_user_name, NAME_RULE};
use super::node::Node;
use super::reference::{check_reference, output_references};
use super::selector::check_selector;
use super::structure::closest;

pub(super) fn check_steps(c: &mut Checker, file: &LabFile, nodes: &[Node]) {
    for (fi, f) in file.files.iter().enumerate() {
        let path = format!("files.{fi}");
        check_selector(c, &path, &f.on, nodes);
        let src = c.source.dir().join(&f.src);
        let here = Here::Value(at(&path, "src"));
        c.input(
            here,
            &f.src,
            &src,
            Kind::File,
            "paths are relative to the lab file",
        );
        if !f.dest.starts_with('/') {
            c.error(
                Here::Value(at(&path, "dest")),
                format!("destination `{}` is not an absolute path", f.dest),
                "write the full path on the node, e.g. /etc/motd",
            );
        }
    }
    let mut by_cluster: HashMap<&str, Vec<&Node>> = HashMap::new();
    for node in nodes {
        by_cluster.entry(&node.cluster).or_default().push(node);
    }
    let mut outputs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (si, step) in file.provision.iter().enumerate() {
        let path = format!("provision.{si}");
        check_selector(c, &path, &step.on, nodes);
        if outputs.contains_key(step.name.as_str()) {
            c.error(
                Here::Value(at(&path, "name")),
                format!("step `{}` is declared twice", step.name),
                "give each step its own name",
            );
        }
        match (&step.run, &step.script) {
            (Some(_), Some(_)) | (None, None) => c.error(
                Here::Value(at(&path, "name")),
                format!("step `{}` needs exactly one of run and script", step.name),
                "give `run:` for an inline script or `script:` for a file",
            ),
            (None, Some(script)) => {
                let file = c.source.dir().join(script);
                let here = Here::Value(at(&path, "script"));
                c.input(
                    here,
                    script,
                    &file,
                    Kind::Script,
                    "paths are relative to the lab file",
                );
            }
            _ => {}
        }
        for (ai, after) in step.after.iter().enumerate() {
            if !outputs.contains_key(after.as_str()) {
                let mut message = format!(
                    "step `{}` comes after `{after}`, which is not an earlier step",
                    step.name
                );
                if let Some(near) = closest(after, outputs.keys().copied()) {
                    message.push_str(&format!(" (did you mean `{near}`?)"));
                }
                c.absent(
                    Here::Value(format!("{path}.after.{ai}")),
                    message,
                    "name a step declared above this one",
                );
            }
        }
        if let Some(user) = step.user.as_deref().filter(|u| !is_user_name(u)) {
            c.error(
                Here::Value(at(&path, "user")),
                format!(
                    "step `{}` runs as `{user}`, not a valid user name",
                    step.name
                ),
                NAME_RULE,
            );
        }
        for (var, value) in &step.env {
            let here = format!("{path}.env.{var}");
            if !is_env_name(var) {
                c.error(
                    Here::Key(here.clone()),
                    format!("environment variable name `{var}` is not valid"),
                    "use letters, digits and `_`, not starting with a digit (e.g. K3S_TOKEN)",
                );
            }
            for reference in output_references(value) {
                let answer = check_reference(&reference, step, file, nodes, &by_cluster);
                if let Err((message, help)) = answer {
                    c.absent(Here::Value(here.clone()), message, &help);
                }
            }
        }
        outputs.insert(&step.name, step.outputs.iter().map(|o| o.name()).collect());
    }
    for (pi, probe) in file.ready.iter().enumerate() {
        check_selector(c, &format!("ready.{pi}"), &probe.on, nodes);
    }
}
