//! Selectors (`on:`): which nodes a step, a file or a probe is for (`all`, a VM name,
//! `cluster=NAME`, `role=NAME`, lists and globs), and the check that each matches a node.

use super::checker::{at, Checker, Here};
use super::node::Node;
use super::structure::closest;

/// Whether a selector matches a node: `all`; a VM name (or host name, or `<cluster>-<node>`
/// for every VM a node with `count` makes, or the rule's name of a VM that keeps an older
/// one); `cluster=NAME`; `role=NAME`. Each name may be a list (`cluster=dev,stg`,
/// `dev-master,stg-master`) and a glob (`dev-*`, `role=work?r`).
pub fn selects(selector: &str, node: &Node) -> bool {
    let any = |names: &str, value: &str| names.split(',').any(|n| glob(n.trim(), value));
    match selector.split_once('=') {
        None if selector == "all" => true,
        None => {
            any(selector, &node.vm_name)
                || any(selector, &node.hostname)
                || any(selector, &node.naming.declared)
                || node
                    .naming
                    .rule
                    .as_ref()
                    .is_some_and(|(vm, host)| any(selector, vm) || any(selector, host))
        }
        Some(("cluster", names)) => any(names, &node.cluster),
        Some(("role", names)) => any(names, &node.role),
        Some(_) => false,
    }
}

/// `selects`, for a selector typed on the command line: one that is a node's own name (VM or
/// host name) picks that node alone, never the other VMs of a node declared under that name
/// (`stg-worker` while `stg-worker` keeps an older name beside `stg-worker-2`).
pub fn picks(selector: &str, node: &Node, nodes: &[Node]) -> bool {
    if nodes.iter().any(|n| n.is_named(selector)) {
        return node.is_named(selector);
    }
    selects(selector, node)
}

/// Shell-style wildcard matching: `*` any run of characters, `?` one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // The usual greedy match with one backtrack point, linear in practice.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

pub(super) fn check_selector(c: &mut Checker, path: &str, selector: &str, nodes: &[Node]) {
    if nodes.is_empty() || nodes.iter().any(|n| selects(selector, n)) {
        return;
    }
    let mut candidates: Vec<String> = vec!["all".into()];
    for n in nodes {
        candidates.push(n.vm_name.clone());
        candidates.push(format!("cluster={}", n.cluster));
        candidates.push(format!("role={}", n.role));
    }
    candidates.dedup();
    let mut message = format!("selector `{selector}` matches no node");
    if let Some(near) = closest(selector, candidates.iter().map(String::as_str)) {
        message.push_str(&format!(" (did you mean `{near}`?)"));
    }
    let example = nodes.first().map_or("dev-master", |n| n.vm_name.as_str());
    c.absent(
        Here::Value(at(path, "on")),
        message,
        &format!("use all, a node's name (e.g. {example}), cluster=NAME or role=NAME"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::model::Login;
    use crate::lab::NetworkMode;

    #[test]
    fn globs_match_as_a_shell_does() {
        for (pattern, text) in [
            ("dev-*", "dev-master"),
            ("*", ""),
            ("*-worker-?", "stg-worker-2"),
            ("a*b*c", "aXbYbZc"),
            ("exact", "exact"),
        ] {
            assert!(glob(pattern, text), "{pattern} {text}");
        }
        for (pattern, text) in [
            ("dev-*", "stg-master"),
            ("?", ""),
            ("a*c", "ab"),
            ("ab", "abc"),
        ] {
            assert!(!glob(pattern, text), "{pattern} {text}");
        }
    }

    #[test]
    fn selectors_take_lists_and_globs() {
        let node = |vm: &str, cluster: &str, role: &str| Node {
            vm_name: vm.into(),
            hostname: vm.into(),
            cluster: cluster.into(),
            role: role.into(),
            image: String::new(),
            image_at: None,
            cpu: 1,
            memory: 256,
            disk: None,
            network: NetworkMode::Nat,
            login: Login {
                user: "admin".into(),
                password: "admin".into(),
            },
            cloud_init: None,
            mounts: Vec::new(),
            placement: Default::default(),
            naming: Default::default(),
        };
        let master = node("stg-master", "stg", "master");
        assert!(selects("cluster=dev,stg", &master));
        assert!(selects("dev-*,stg-*", &master));
        assert!(selects("role=mast*", &master));
        assert!(!selects("cluster=dev", &master));
        assert!(!selects("dev-*", &master));
    }
}
