//! Validation and expansion: every rule of the lab file checked, every problem reported
//! together and located; on success, the nodes that will exist, with inherited settings.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;

use super::diagnostic::{Diagnostic, Source};
use super::model::{ClusterSpec, LabFile, Login, NodeSpec};
use super::network::{NetworkMode, NetworkSpec};

pub const DEFAULT_IMAGE: &str = "ghcr.io/cirruslabs/ubuntu:latest";

/// One VM of the lab, with every setting resolved (lab -> cluster -> node).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Node {
    /// The tart VM name, which is also the hostname.
    pub vm_name: String,
    pub hostname: String,
    pub cluster: String,
    pub role: String,
    pub image: String,
    pub cpu: u32,
    pub memory: u32,
    /// GB; `None` keeps the image's disk size.
    pub disk: Option<u32>,
    pub network: NetworkMode,
    #[serde(skip)]
    pub login: Login,
}

/// Accounts every Ubuntu or Debian image has; a lab user must not take one over.
const SYSTEM_ACCOUNTS: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "systemd-network",
    "systemd-resolve",
    "systemd-timesync",
    "messagebus",
    "syslog",
    "_apt",
    "sshd",
    "uuidd",
    "tcpdump",
    "landscape",
    "pollinate",
    "polkitd",
    "admin",
    "ubuntu",
    "debian",
];

struct Checker<'a> {
    source: &'a Source,
    problems: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, key: &str, value: &str, nth: usize, message: String, help: &str) {
        self.problems.push(
            self.source
                .problem(key, value, nth, message, help.to_string()),
        );
    }
}

/// A DNS label as RFC 1123 allows (lower case here), at most 63 characters.
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A shell variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const NAME_RULE: &str =
    "use lower-case letters, digits, `-` and `_`, starting with a letter or `_`, at most 32 characters";

/// A user or group name as `useradd` takes it (and never read as an option).
fn is_user_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// `host[:port]/namespace[:tag|@sha256:<64 hex>]`, or a local VM name.
pub fn is_image_reference(s: &str) -> bool {
    let Some((host, rest)) = s.split_once('/') else {
        return is_label(s);
    };
    let (path, reference) = match rest.split_once('@') {
        Some((p, d)) => (p, Some(d)),
        None => (rest, None),
    };
    let (path, tag) = match (reference, path.rsplit_once(':')) {
        (None, Some((p, t))) => (p, Some(t)),
        _ => (path, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    let path_ok = !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    });
    let digest_ok = reference.is_none_or(|d| {
        d.strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
    });
    host_ok && path_ok && tag_ok && digest_ok
}

/// Validates the lab file and expands it into nodes, or returns every problem found.
pub fn validate(file: &LabFile, source: &Source) -> Result<Vec<Node>, Vec<Diagnostic>> {
    let mut c = Checker {
        source,
        problems: Vec::new(),
    };
    if !(is_label(&file.lab) && file.lab.starts_with(|ch: char| ch.is_ascii_lowercase())) {
        c.error(
            "lab",
            &file.lab,
            0,
            format!("lab name `{}` is not valid", file.lab),
            "use lower-case letters, digits and `-`, starting with a letter, e.g. `k8s`",
        );
    }
    if let Some(prefix) = &file.vm_prefix {
        if !(prefix.is_empty() || is_label(prefix.trim_end_matches('-'))) {
            c.error(
                "vm_prefix",
                prefix,
                0,
                format!("vm_prefix `{prefix}` is not valid"),
                "use lower-case letters, digits and `-`",
            );
        }
    }
    let d = &file.defaults;
    check_resources(&mut c, &d.image, d.cpu, d.memory, d.disk);
    check_network(&mut c, &d.network);
    let nodes = expand(&mut c, file);
    check_users(&mut c, file);
    check_logins(&mut c, file);
    check_steps(&mut c, file, &nodes);
    if c.problems.is_empty() {
        Ok(nodes)
    } else {
        Err(c.problems)
    }
}

fn check_resources(
    c: &mut Checker,
    image: &Option<String>,
    cpu: Option<u32>,
    memory: Option<u32>,
    disk: Option<u32>,
) {
    if let Some(image) = image {
        if !is_image_reference(image) {
            c.error("image", image, 0, format!("`{image}` is not an image reference"), "write host/namespace[:tag], e.g. ghcr.io/cirruslabs/ubuntu:latest, or a local VM name");
        }
    }
    if let Some(cpu) = cpu.filter(|n| !(1..=32).contains(n)) {
        c.error(
            "cpu",
            &cpu.to_string(),
            0,
            format!("cpu {cpu} is out of range"),
            "give 1 to 32 virtual CPUs",
        );
    }
    if let Some(m) = memory.filter(|n| !(256..=131_072).contains(n)) {
        c.error(
            "memory",
            &m.to_string(),
            0,
            format!("memory {m} MiB is out of range"),
            "give 256 to 131072 (MiB), e.g. 2048",
        );
    }
    if let Some(d) = disk.filter(|n| !(10..=2000).contains(n)) {
        c.error(
            "disk",
            &d.to_string(),
            0,
            format!("disk {d} GB is out of range"),
            "give 10 to 2000 (GB); tart can only grow a disk",
        );
    }
}

fn check_network(c: &mut Checker, network: &Option<NetworkSpec>) {
    let Some(Err(e)) = network.as_ref().map(NetworkSpec::to_mode) else {
        return;
    };
    let (key, value) = e.at.clone().unwrap_or(("network", String::new()));
    c.error(
        key,
        &value,
        0,
        e.message,
        "write nat, softnet, host, bridged:<interface>, or a map such as { mode: softnet, allow: [0.0.0.0/0] } (docs/NETWORKS.md); leave it out for the default, in which nodes reach each other",
    );
}

fn pick<T: Clone>(node: &Option<T>, cluster: &Option<T>, lab: &Option<T>) -> Option<T> {
    node.clone()
        .or_else(|| cluster.clone())
        .or_else(|| lab.clone())
}

fn expand(c: &mut Checker, file: &LabFile) -> Vec<Node> {
    let prefix = file.vm_prefix.clone().unwrap_or_default();
    let mut nodes: Vec<Node> = Vec::new();
    let mut seen_clusters: HashMap<&str, usize> = HashMap::new();
    if file.clusters.is_empty() {
        c.problems.push(
            Diagnostic::unlocated(
                "the lab has no clusters",
                "add `clusters:` with at least one cluster and node",
            )
            .in_file(c.source),
        );
    }
    for cluster in &file.clusters {
        let n = seen_clusters.entry(&cluster.name).or_insert(0);
        if *n > 0 {
            c.error(
                "name",
                &cluster.name,
                *n,
                format!("cluster `{}` is declared twice", cluster.name),
                "give each cluster its own name",
            );
        }
        *n += 1;
        if !is_label(&cluster.name) {
            c.error(
                "name",
                &cluster.name,
                0,
                format!(
                    "cluster name `{}` is not a valid host name part",
                    cluster.name
                ),
                "use lower-case letters, digits and `-` (RFC 1123), at most 63 characters",
            );
        }
        check_resources(c, &cluster.image, cluster.cpu, cluster.memory, cluster.disk);
        check_network(c, &cluster.network);
        if cluster.nodes.is_empty() {
            c.error(
                "name",
                &cluster.name,
                0,
                format!("cluster `{}` has no nodes", cluster.name),
                "add `nodes:` with at least one node",
            );
        }
        for node in &cluster.nodes {
            expand_node(c, file, cluster, node, &prefix, &mut nodes);
        }
    }
    nodes
}

fn expand_node(
    c: &mut Checker,
    file: &LabFile,
    cluster: &ClusterSpec,
    node: &NodeSpec,
    prefix: &str,
    nodes: &mut Vec<Node>,
) {
    if !is_label(&node.name) {
        c.error(
            "name",
            &node.name,
            0,
            format!("node name `{}` is not a valid host name part", node.name),
            "use lower-case letters, digits and `-` (RFC 1123)",
        );
        return;
    }
    check_resources(c, &node.image, node.cpu, node.memory, node.disk);
    check_network(c, &node.network);
    let count = node.count.unwrap_or(1);
    if count == 0 || count > 100 {
        c.error(
            "count",
            &count.to_string(),
            0,
            format!("count {count} is out of range"),
            "give 1 to 100 nodes",
        );
        return;
    }
    let d = &file.defaults;
    for i in 1..=count {
        let base = if node.count.is_some_and(|n| n > 1) {
            format!("{}-{}-{i}", cluster.name, node.name)
        } else {
            format!("{}-{}", cluster.name, node.name)
        };
        let vm_name = format!("{prefix}{base}");
        if vm_name.len() > 63 {
            c.error(
                "name",
                &node.name,
                0,
                format!("VM name `{vm_name}` is longer than 63 characters"),
                "shorten the cluster, node or vm_prefix name",
            );
        }
        if nodes.iter().any(|n| n.vm_name == vm_name) {
            c.error(
                "name",
                &node.name,
                1,
                format!("two nodes would be named `{vm_name}`"),
                "rename one of them; names are <cluster>-<node>[-<i>]",
            );
        }
        nodes.push(Node {
            hostname: base.clone(),
            vm_name,
            cluster: cluster.name.clone(),
            role: node.role.clone().unwrap_or_else(|| node.name.clone()),
            image: pick(&node.image, &cluster.image, &d.image)
                .unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
            cpu: pick(&node.cpu, &cluster.cpu, &d.cpu).unwrap_or(2),
            memory: pick(&node.memory, &cluster.memory, &d.memory).unwrap_or(2048),
            disk: pick(&node.disk, &cluster.disk, &d.disk),
            network: pick(&node.network, &cluster.network, &d.network)
                .and_then(|n| n.to_mode().ok())
                .unwrap_or_default(),
            login: pick(&node.login, &cluster.login, &d.login).unwrap_or(Login {
                user: "admin".into(),
                password: "admin".into(),
            }),
        });
    }
}

fn check_users(c: &mut Checker, file: &LabFile) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for user in &file.users {
        let n = seen.entry(&user.name).or_insert(0);
        if *n > 0 {
            c.error(
                "name",
                &user.name,
                *n,
                format!("user `{}` is declared twice", user.name),
                "declare each user once",
            );
        }
        *n += 1;
        if !is_user_name(&user.name) {
            c.error(
                "name",
                &user.name,
                0,
                format!("user name `{}` is not valid", user.name),
                NAME_RULE,
            );
        } else if SYSTEM_ACCOUNTS.contains(&user.name.as_str()) {
            c.error(
                "name",
                &user.name,
                0,
                format!(
                    "user `{}` clashes with a system account of the image",
                    user.name
                ),
                "pick another name; the image's own accounts are managed by the image",
            );
        }
        for group in &user.groups {
            if !is_user_name(group) {
                c.error(
                    "groups",
                    group,
                    0,
                    format!("group name `{group}` is not valid"),
                    NAME_RULE,
                );
            }
        }
        if user.password.is_some() {
            c.error("password", "", 0, format!("user `{}` has a plain password", user.name), "use password_hash with a crypt hash, e.g. `openssl passwd -6`; plain passwords are never stored");
        }
        for key in &user.authorized_keys {
            let literal =
                key.starts_with("ssh-") || key.starts_with("ecdsa-") || key.starts_with("sk-");
            if !literal && !expand_home(key, c.source).is_file() {
                c.error(
                    "authorized_keys",
                    key,
                    0,
                    format!("public key file `{key}` does not exist"),
                    "give the path of a .pub file, or the key itself (ssh-ed25519 AAAA...)",
                );
            }
        }
    }
}

/// The login users (defaults, clusters, nodes): names a guest account, never an option.
fn check_logins(c: &mut Checker, file: &LabFile) {
    let logins = std::iter::once(&file.defaults.login)
        .chain(file.clusters.iter().map(|cl| &cl.login))
        .chain(
            file.clusters
                .iter()
                .flat_map(|cl| cl.nodes.iter().map(|n| &n.login)),
        )
        .flatten();
    for login in logins {
        if !is_user_name(&login.user) {
            c.error(
                "user",
                &login.user,
                0,
                format!("login user `{}` is not a valid user name", login.user),
                NAME_RULE,
            );
        }
    }
}

/// The text of an `authorized_keys` entry: the key itself, or the first line of the file
/// it names (`~/` is the user's home; other paths are relative to the lab file).
pub fn authorized_key_text(key: &str, source: &Source) -> std::io::Result<String> {
    let literal = key.starts_with("ssh-") || key.starts_with("ecdsa-") || key.starts_with("sk-");
    if literal {
        return Ok(key.trim().to_string());
    }
    let text = std::fs::read_to_string(expand_home(key, source))?;
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

fn expand_home(path: &str, source: &Source) -> std::path::PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        return Path::new(&std::env::var("HOME").unwrap_or_default()).join(rest);
    }
    source.dir().join(path)
}

/// Whether a selector (`all`, a VM name, `cluster=NAME`, `role=NAME`) matches some node.
pub fn selects(selector: &str, node: &Node) -> bool {
    match selector.split_once('=') {
        None if selector == "all" => true,
        None => node.vm_name == selector || node.hostname == selector,
        Some(("cluster", name)) => node.cluster == name,
        Some(("role", name)) => node.role == name,
        Some(_) => false,
    }
}

fn check_selector(c: &mut Checker, selector: &str, nodes: &[Node]) {
    if !nodes.is_empty() && !nodes.iter().any(|n| selects(selector, n)) {
        c.error(
            "on",
            selector,
            0,
            format!("selector `{selector}` matches no node"),
            "use all, a node name (e.g. dev-master), cluster=NAME or role=NAME",
        );
    }
}

fn check_steps(c: &mut Checker, file: &LabFile, nodes: &[Node]) {
    for f in &file.files {
        check_selector(c, &f.on, nodes);
        if !c.source.dir().join(&f.src).exists() {
            c.error(
                "src",
                &f.src,
                0,
                format!("file `{}` does not exist", f.src),
                "paths are relative to the lab file",
            );
        }
        if !f.dest.starts_with('/') {
            c.error(
                "dest",
                &f.dest,
                0,
                format!("destination `{}` is not an absolute path", f.dest),
                "write the full path on the node, e.g. /etc/motd",
            );
        }
    }
    let mut outputs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for step in &file.provision {
        check_selector(c, &step.on, nodes);
        if outputs.contains_key(step.name.as_str()) {
            c.error(
                "name",
                &step.name,
                1,
                format!("step `{}` is declared twice", step.name),
                "give each step its own name",
            );
        }
        match (&step.run, &step.script) {
            (Some(_), Some(_)) | (None, None) => c.error(
                "name",
                &step.name,
                0,
                format!("step `{}` needs exactly one of run and script", step.name),
                "give `run:` for an inline script or `script:` for a file",
            ),
            (None, Some(script)) if !c.source.dir().join(script).is_file() => c.error(
                "script",
                script,
                0,
                format!("script `{script}` does not exist"),
                "paths are relative to the lab file",
            ),
            _ => {}
        }
        for after in &step.after {
            if !outputs.contains_key(after.as_str()) {
                c.error(
                    "after",
                    after,
                    0,
                    format!(
                        "step `{}` comes after `{after}`, which is not an earlier step",
                        step.name
                    ),
                    "name a step declared above this one",
                );
            }
        }
        if let Some(user) = step.user.as_deref().filter(|u| !is_user_name(u)) {
            c.error(
                "user",
                user,
                0,
                format!(
                    "step `{}` runs as `{user}`, not a valid user name",
                    step.name
                ),
                NAME_RULE,
            );
        }
        for (var, value) in &step.env {
            if !is_env_name(var) {
                c.error(
                    var,
                    "",
                    0,
                    format!("environment variable name `{var}` is not valid"),
                    "use letters, digits and `_`, not starting with a digit (e.g. K3S_TOKEN)",
                );
            }
            for reference in output_references(value) {
                let known = outputs
                    .values()
                    .any(|keys| keys.iter().any(|k| *k == reference.key));
                let target_ok = match reference.scope.as_str() {
                    "node" => nodes
                        .iter()
                        .any(|n| n.vm_name == reference.target || n.hostname == reference.target),
                    "cluster" => nodes.iter().any(|n| n.role == reference.target),
                    _ => false,
                };
                if !known || !target_ok {
                    c.error(var, &reference.text, 0, format!("`{}` refers to no earlier step output", reference.text), "use {{ node.NAME.outputs.KEY }} or {{ cluster.ROLE.outputs.KEY }} with a KEY listed in an earlier step's outputs");
                }
            }
        }
        outputs.insert(&step.name, step.outputs.iter().map(|o| o.name()).collect());
    }
    for probe in &file.ready {
        check_selector(c, &probe.on, nodes);
    }
}

/// A `{{ SCOPE.TARGET.outputs.KEY }}` found in a value.
pub struct OutputReference {
    pub text: String,
    pub scope: String,
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
            [scope, target, "outputs", key] => (*scope, *target, *key),
            _ => ("?", "", inner),
        };
        refs.push(OutputReference {
            text: rest[start..start + end + 2].to_string(),
            scope: scope.to_string(),
            target: target.to_string(),
            key: key.to_string(),
        });
        rest = &rest[start + end + 2..];
    }
    refs
}
