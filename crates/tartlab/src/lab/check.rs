//! Validation and expansion: every rule of the lab file checked, every problem reported
//! together and located; on success, the nodes that will exist, with inherited settings.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::diagnostic::{Diagnostic, Source};
use super::input::{self, Confinement, Inputs, Kind, Refusal};
use super::model::{ClusterSpec, LabFile, NodeSpec, StepSpec};
use super::network::NetworkSpec;
use super::node::{self, Node};
use super::size::{Gigabytes, Mebibytes};
use super::structure::{closest, Reading};

/// The most nodes a lab may have, `count`s expanded: ten times what one Mac runs, and
/// small enough that every check stays well under a second (docs/PERFORMANCE.md).
pub const MAX_NODES: usize = 1000;

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
    reading: &'a Reading,
    problems: Vec<Diagnostic>,
    /// Where the lab's inputs may be, those read so far (each once), and the inputs
    /// refused or checked already (each said once).
    confinement: Confinement,
    inputs: Inputs,
    refused: HashSet<String>,
}

/// Where a problem is: the value at a path of the model (`clusters.1.name`), or the key.
enum Here {
    Value(String),
    Key(String),
}

impl Checker<'_> {
    fn error(&mut self, here: Here, message: String, help: &str) {
        let (path, spot) = match &here {
            Here::Value(path) => (path, self.reading.spots.value(path)),
            Here::Key(path) => (path, self.reading.spots.key(path)),
        };
        let problem = match spot {
            Some(spot) => self.source.at_line(spot.line, spot.column, &message, help),
            // Read without places (JSON the YAML parser refused): found by its key's text.
            None => {
                let key = path.rsplit('.').find(|p| p.parse::<usize>().is_err());
                self.source
                    .problem(key.unwrap_or(""), "", 0, message, help.to_string())
            }
        };
        self.problems.push(problem);
    }

    /// A problem about something missing, reported only when the whole file was read.
    fn absent(&mut self, here: Here, message: String, help: &str) {
        if !self.reading.partial {
            self.error(here, message, help);
        }
    }

    /// Reads an input the lab file names at `here` (`written` as written, found at `path`),
    /// once; a refusal is reported once per path, with `missing` as the help when it does
    /// not exist. Whether it was read.
    fn input(&mut self, here: Here, written: &str, path: &Path, kind: Kind, missing: &str) -> bool {
        let read_before = self.inputs.get(written).map(|b| b.len() as u64);
        if read_before.is_some_and(|len| len <= kind.limit()) {
            return true;
        }
        let said = format!("{kind:?} {written}");
        if self.refused.contains(&said) {
            return false;
        }
        let what = kind.name();
        let (message, help) = match input::read(path, kind, &self.confinement) {
            Ok(bytes) if self.inputs.total() + bytes.len() as u64 > input::TOTAL_LIMIT => (
                format!("{what} `{written}` takes the lab's inputs over 256 MiB together"),
                "copy large data with a step (or `tartlab cp`) instead of `files:`".to_string(),
            ),
            Ok(bytes) => {
                self.inputs.insert(written, bytes);
                return true;
            }
            Err(refusal) => (
                format!(
                    "{what} `{written}` {}",
                    refusal.describe(kind, self.confinement.lab_dir())
                ),
                refusal_help(&refusal, kind, missing),
            ),
        };
        self.refused.insert(said);
        self.error(here, message, &help);
        false
    }
}

/// What to do about an input that was refused.
fn refusal_help(refusal: &Refusal, kind: Kind, missing: &str) -> String {
    let limit = kind.limit_text();
    match refusal {
        Refusal::Missing => missing.to_string(),
        Refusal::Outside(_) => "keep the lab's inputs in its directory, or name the directory they come from in `allow_paths_outside:` at the top of the lab file (docs/LAB-FILE.md, \"Paths outside the lab\")".to_string(),
        Refusal::NotRegular(_) => "give a regular file".to_string(),
        Refusal::TooLarge(_) if kind == Kind::File => format!(
            "a `files` source may be at most {limit}; copy larger data with a step (or `tartlab cp`)"
        ),
        Refusal::TooLarge(_) => {
            format!("at most {limit}: keep it short and fetch what it needs from the guest")
        }
        Refusal::Io(_) => "check the file's permissions".to_string(),
    }
}

/// Child paths, as the structural pass writes them.
fn at(path: &str, child: impl std::fmt::Display) -> String {
    if path.is_empty() {
        child.to_string()
    } else {
        format!("{path}.{child}")
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
pub fn validate(
    file: &LabFile,
    source: &Source,
    reading: &Reading,
) -> Result<(Vec<Node>, Inputs), Vec<Diagnostic>> {
    let mut c = Checker {
        source,
        reading,
        problems: Vec::new(),
        confinement: Confinement::new(&source.dir()),
        inputs: Inputs::default(),
        refused: HashSet::new(),
    };
    if !(is_label(&file.lab) && file.lab.starts_with(|ch: char| ch.is_ascii_lowercase())) {
        c.error(
            Here::Value("lab".into()),
            format!("lab name `{}` is not valid", file.lab),
            "use lower-case letters, digits and `-`, starting with a letter, e.g. `k8s`",
        );
    }
    if let Some(prefix) = &file.vm_prefix {
        if !(prefix.is_empty() || is_label(prefix.trim_end_matches('-'))) {
            c.error(
                Here::Value("vm_prefix".into()),
                format!("vm_prefix `{prefix}` is not valid"),
                "use lower-case letters, digits and `-`",
            );
        }
    }
    let d = &file.defaults;
    let settings = Resources {
        image: &d.image,
        cpu: d.cpu,
        memory: mib(d.memory),
        disk: gb(d.disk),
        network: &d.network,
    };
    check_resources(&mut c, "defaults", &settings);
    check_allowed_paths(&mut c, file);
    if too_many_nodes(&mut c, file) {
        return Err(c.problems);
    }
    let nodes = expand(&mut c, file);
    check_users(&mut c, file);
    check_logins(&mut c, file);
    check_steps(&mut c, file, &nodes);
    if c.problems.is_empty() {
        Ok((nodes, c.inputs))
    } else {
        Err(c.problems)
    }
}

/// `allow_paths_outside`: each an existing directory, allowed by its real path.
fn check_allowed_paths(c: &mut Checker, file: &LabFile) {
    for (i, dir) in file.allow_paths_outside.iter().enumerate() {
        match std::fs::canonicalize(expand_home(dir, c.source)) {
            Ok(real) if real.is_dir() => c.confinement.allow(real),
            found => {
                let why = match found {
                    Ok(_) => "is not a directory".to_string(),
                    Err(e) => format!("cannot be used: {e}"),
                };
                c.error(
                    Here::Value(format!("allow_paths_outside.{i}")),
                    format!("allowed path `{dir}` {why}"),
                    "name existing directories: absolute, `~/...`, or relative to the lab file",
                );
            }
        }
    }
}

/// The settings `defaults`, a cluster or a node may give.
struct Resources<'a> {
    image: &'a Option<String>,
    cpu: Option<u32>,
    memory: Option<u32>,
    disk: Option<u32>,
    network: &'a Option<NetworkSpec>,
}

fn check_resources(c: &mut Checker, path: &str, given: &Resources) {
    if let Some(image) = given.image {
        if !is_image_reference(image) {
            c.error(Here::Value(at(path, "image")), format!("`{image}` is not an image reference"), "write host/namespace[:tag], e.g. ghcr.io/cirruslabs/ubuntu:latest, or a local VM name");
        }
    }
    if let Some(cpu) = given.cpu.filter(|n| !(1..=32).contains(n)) {
        c.error(
            Here::Value(at(path, "cpu")),
            format!("cpu {cpu} is out of range"),
            "give 1 to 32 virtual CPUs",
        );
    }
    if let Some(m) = given.memory.filter(|n| !(256..=131_072).contains(n)) {
        c.error(
            Here::Value(at(path, "memory")),
            format!("memory {m} MiB is out of range"),
            "give 256 MiB to 128 GiB, e.g. 2048 or 4GiB",
        );
    }
    if let Some(d) = given.disk.filter(|n| !(10..=2000).contains(n)) {
        c.error(
            Here::Value(at(path, "disk")),
            format!("disk {d} GB is out of range"),
            "give 10 to 2000 (GB); tart can only grow a disk",
        );
    }
    let Some(Err(e)) = given.network.as_ref().map(NetworkSpec::to_mode) else {
        return;
    };
    let network = at(path, "network");
    let here = match &e.at {
        Some(("network", _)) | None => network,
        Some((key, _)) => at(&network, key),
    };
    c.error(
        Here::Value(here),
        e.message,
        "write nat, softnet, host, bridged:<interface>, or a map such as { mode: softnet, allow: [0.0.0.0/0] } (docs/NETWORKS.md); leave it out for the default, in which nodes reach each other",
    );
}

fn mib(size: Option<Mebibytes>) -> Option<u32> {
    size.map(|s| s.0)
}

fn gb(size: Option<Gigabytes>) -> Option<u32> {
    size.map(|s| s.0)
}

/// Whether the lab declares more than `MAX_NODES` (said at the node that goes over); the
/// rest of the checks then wait, as they would take time for a lab that cannot be.
fn too_many_nodes(c: &mut Checker, file: &LabFile) -> bool {
    let mut total = 0usize;
    let mut over = None;
    for (ci, cluster) in file.clusters.iter().enumerate() {
        for (ni, node) in cluster.nodes.iter().enumerate() {
            // A count out of its own range is said there, and counts as one here.
            let count = node.count.filter(|n| (1..=100).contains(n)).unwrap_or(1);
            total += count as usize;
            if total > MAX_NODES && over.is_none() {
                let key = if node.count.is_some() {
                    "count"
                } else {
                    "name"
                };
                over = Some(format!("clusters.{ci}.nodes.{ni}.{key}"));
            }
        }
    }
    let Some(here) = over else {
        return false;
    };
    c.error(
        Here::Value(here),
        format!("the lab has {total} nodes, over the {MAX_NODES} a lab may have: this node is the one over"),
        &format!("a lab may have at most {MAX_NODES} nodes (`count`s expanded); split it into labs, each with its own vm_prefix"),
    );
    true
}

fn expand(c: &mut Checker, file: &LabFile) -> Vec<Node> {
    let prefix = file.vm_prefix.clone().unwrap_or_default();
    let mut nodes: Vec<Node> = Vec::new();
    let mut vm_names: HashSet<String> = HashSet::new();
    let mut seen_clusters: HashMap<&str, usize> = HashMap::new();
    if file.clusters.is_empty() && !c.reading.partial {
        c.problems.push(
            Diagnostic::unlocated(
                "the lab has no clusters",
                "add `clusters:` with at least one cluster and node",
            )
            .in_file(c.source),
        );
    }
    for (ci, cluster) in file.clusters.iter().enumerate() {
        let path = format!("clusters.{ci}");
        let n = seen_clusters.entry(&cluster.name).or_insert(0);
        if *n > 0 {
            c.error(
                Here::Value(at(&path, "name")),
                format!("cluster `{}` is declared twice", cluster.name),
                "give each cluster its own name",
            );
        }
        *n += 1;
        if !is_label(&cluster.name) {
            c.error(
                Here::Value(at(&path, "name")),
                format!(
                    "cluster name `{}` is not a valid host name part",
                    cluster.name
                ),
                "use lower-case letters, digits and `-` (RFC 1123), at most 63 characters",
            );
        }
        let settings = Resources {
            image: &cluster.image,
            cpu: cluster.cpu,
            memory: mib(cluster.memory),
            disk: gb(cluster.disk),
            network: &cluster.network,
        };
        check_resources(c, &path, &settings);
        if cluster.nodes.is_empty() {
            c.absent(
                Here::Value(at(&path, "name")),
                format!("cluster `{}` has no nodes", cluster.name),
                "add `nodes:` with at least one node",
            );
        }
        for (ni, node) in cluster.nodes.iter().enumerate() {
            let at_node = format!("{path}.nodes.{ni}");
            expand_node(
                c,
                file,
                (cluster, node),
                &at_node,
                &prefix,
                (&mut nodes, &mut vm_names),
            );
        }
    }
    nodes
}

fn expand_node(
    c: &mut Checker,
    file: &LabFile,
    (cluster, node): (&ClusterSpec, &NodeSpec),
    path: &str,
    prefix: &str,
    (nodes, vm_names): (&mut Vec<Node>, &mut HashSet<String>),
) {
    if !is_label(&node.name) {
        c.error(
            Here::Value(at(path, "name")),
            format!("node name `{}` is not a valid host name part", node.name),
            "use lower-case letters, digits and `-` (RFC 1123)",
        );
        return;
    }
    // A role goes where a node name goes (selectors, user-data, tables): the same rule.
    if let Some(role) = node.role.as_deref().filter(|r| !is_label(r)) {
        c.error(
            Here::Value(at(path, "role")),
            format!("role `{role}` is not valid"),
            "use lower-case letters, digits and `-` (RFC 1123), as for node names, e.g. `worker`",
        );
    }
    let settings = Resources {
        image: &node.image,
        cpu: node.cpu,
        memory: mib(node.memory),
        disk: gb(node.disk),
        network: &node.network,
    };
    check_resources(c, path, &settings);
    let count = node.count.unwrap_or(1);
    if count == 0 || count > 100 {
        c.error(
            Here::Value(at(path, "count")),
            format!("count {count} is out of range"),
            "give 1 to 100 nodes",
        );
        return;
    }
    let cluster_path = path.rsplit_once(".nodes.").map_or("", |(c, _)| c);
    let defined_at = if node.cloud_init.is_some() {
        at(path, "cloud_init")
    } else if cluster.cloud_init.is_some() {
        at(cluster_path, "cloud_init")
    } else {
        "defaults.cloud_init".to_string()
    };
    for expanded in node::expand(prefix, &file.defaults, cluster, node) {
        let vm_name = &expanded.vm_name;
        if vm_name.len() > 63 {
            c.error(
                Here::Value(at(path, "name")),
                format!("VM name `{vm_name}` is longer than 63 characters"),
                "shorten the cluster, node or vm_prefix name",
            );
        }
        if !vm_names.insert(vm_name.clone()) {
            c.error(
                Here::Value(at(path, "name")),
                format!("two nodes would be named `{vm_name}`"),
                "rename one of them; names are <cluster>-<node>[-<i>]",
            );
        }
        nodes.push(expanded);
        check_cloud_init(c, file, nodes.last(), &defined_at);
    }
}

/// A node's user-data: the file exists, is `#cloud-config`, and is YAML once tartlab's
/// values are filled in.
fn check_cloud_init(c: &mut Checker, file: &LabFile, node: Option<&Node>, defined_at: &str) {
    let Some(node) = node else {
        return;
    };
    let Some(relative) = &node.cloud_init else {
        return;
    };
    let help = "give a #cloud-config user-data file, relative to the lab file (docs/LAB-FILE.md, \"cloud-init\")";
    let path = c.source.dir().join(relative);
    let here = Here::Value(defined_at.to_string());
    if !c.input(here, relative, &path, Kind::CloudInit, help) {
        return;
    }
    // Checked once per file, not once per node: the values tartlab fills in are names
    // (DNS labels, checked), which cannot change the YAML's structure, so the first node's
    // user-data stands for every node's (1000 nodes, one parse of up to 1 MiB).
    if !c.refused.insert(format!("user-data {relative}")) {
        return;
    }
    let text = c
        .inputs
        .get(relative)
        .map(|b| String::from_utf8(b.to_vec()));
    let problem = match text {
        Some(Ok(text)) => super::cloud_init::user_data(&text, node, &file.lab)
            .err()
            .map(|why| format!("cloud-init file `{relative}` (for {}): {why}", node.vm_name)),
        _ => Some(format!("cloud-init file `{relative}` is not UTF-8 text")),
    };
    if let Some(message) = problem {
        c.error(Here::Value(defined_at.to_string()), message, help);
    }
}

fn check_users(c: &mut Checker, file: &LabFile) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (ui, user) in file.users.iter().enumerate() {
        let path = format!("users.{ui}");
        let n = seen.entry(&user.name).or_insert(0);
        if *n > 0 {
            c.error(
                Here::Value(at(&path, "name")),
                format!("user `{}` is declared twice", user.name),
                "declare each user once",
            );
        }
        *n += 1;
        if !is_user_name(&user.name) {
            c.error(
                Here::Value(at(&path, "name")),
                format!("user name `{}` is not valid", user.name),
                NAME_RULE,
            );
        } else if SYSTEM_ACCOUNTS.contains(&user.name.as_str()) {
            c.error(
                Here::Value(at(&path, "name")),
                format!(
                    "user `{}` clashes with a system account of the image",
                    user.name
                ),
                "pick another name; the image's own accounts are managed by the image",
            );
        }
        for (gi, group) in user.groups.iter().enumerate() {
            if !is_user_name(group) {
                c.error(
                    Here::Value(format!("{path}.groups.{gi}")),
                    format!("group name `{group}` is not valid"),
                    NAME_RULE,
                );
            }
        }
        if user.password.is_some() {
            c.error(Here::Key(at(&path, "password")), format!("user `{}` has a plain password", user.name), "use password_hash with a crypt hash, e.g. `openssl passwd -6`; plain passwords are never stored");
        }
        for (ki, key) in user.authorized_keys.iter().enumerate() {
            if !is_literal_key(key) {
                let here = Here::Value(format!("{path}.authorized_keys.{ki}"));
                let file = expand_home(key, c.source);
                c.input(
                    here,
                    key,
                    &file,
                    Kind::PublicKey,
                    "give the path of a .pub file, or the key itself (ssh-ed25519 AAAA...)",
                );
            }
        }
    }
}

/// The login users (defaults, clusters, nodes): names a guest account, never an option.
fn check_logins(c: &mut Checker, file: &LabFile) {
    let mut logins = vec![("defaults".to_string(), &file.defaults.login)];
    for (ci, cluster) in file.clusters.iter().enumerate() {
        logins.push((format!("clusters.{ci}"), &cluster.login));
        for (ni, node) in cluster.nodes.iter().enumerate() {
            logins.push((format!("clusters.{ci}.nodes.{ni}"), &node.login));
        }
    }
    for (path, login) in logins {
        let Some(login) = login else {
            continue;
        };
        if !is_user_name(&login.user) {
            c.error(
                Here::Value(format!("{path}.login.user")),
                format!("login user `{}` is not a valid user name", login.user),
                NAME_RULE,
            );
        }
    }
}

fn is_literal_key(key: &str) -> bool {
    key.starts_with("ssh-") || key.starts_with("ecdsa-") || key.starts_with("sk-")
}

/// The text of an `authorized_keys` entry: the key itself, or the first line of the file
/// it names (`~/` is the user's home; other paths are relative to the lab file), as
/// `validate` read it.
pub fn authorized_key_text(key: &str, lab: &super::Lab) -> Result<String, String> {
    if is_literal_key(key) {
        return Ok(key.trim().to_string());
    }
    let bytes = lab
        .inputs
        .get(key)
        .ok_or_else(|| format!("`{key}` was not read when the lab file was checked"))?;
    let text = String::from_utf8_lossy(bytes);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

fn expand_home(path: &str, source: &Source) -> std::path::PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        return Path::new(&std::env::var("HOME").unwrap_or_default()).join(rest);
    }
    source.dir().join(path)
}

/// Whether a selector matches a node: `all`; a VM name; `cluster=NAME`; `role=NAME`. Each
/// name may be a list (`cluster=dev,stg`, `dev-master,stg-master`) and a glob (`dev-*`,
/// `role=work?r`).
pub fn selects(selector: &str, node: &Node) -> bool {
    let any = |names: &str, value: &str| names.split(',').any(|n| glob(n.trim(), value));
    match selector.split_once('=') {
        None if selector == "all" => true,
        None => any(selector, &node.vm_name) || any(selector, &node.hostname),
        Some(("cluster", names)) => any(names, &node.cluster),
        Some(("role", names)) => any(names, &node.role),
        Some(_) => false,
    }
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

fn check_selector(c: &mut Checker, path: &str, selector: &str, nodes: &[Node]) {
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

fn check_steps(c: &mut Checker, file: &LabFile, nodes: &[Node]) {
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

/// Whether a reference in a step's `env` can have a value: its node exists (or, for
/// `cluster.ROLE`, every node the step runs on has a node of that role in its cluster), and
/// an earlier step that runs on that node declares the output. Else what is wrong and what
/// to do.
fn check_reference(
    reference: &OutputReference,
    step: &StepSpec,
    file: &LabFile,
    nodes: &[Node],
    by_cluster: &HashMap<&str, Vec<&Node>>,
) -> Result<(), (String, String)> {
    let text = &reference.text;
    let forms = "write {{ node.NAME.outputs.KEY }} or {{ cluster.ROLE.outputs.KEY }}";
    let answering: Vec<&Node> = match reference.scope.as_str() {
        "node" => {
            let Some(node) = nodes
                .iter()
                .find(|n| n.vm_name == reference.target || n.hostname == reference.target)
            else {
                let suffix = format!("-{}", reference.target);
                let near = nodes
                    .iter()
                    .find(|n| n.vm_name.ends_with(&suffix))
                    .map(|n| n.vm_name.as_str())
                    .or_else(|| {
                        closest(&reference.target, nodes.iter().map(|n| n.vm_name.as_str()))
                    });
                let mut message = format!("`{text}`: `{}` is not a node", reference.target);
                if let Some(near) = near {
                    message.push_str(&format!(" (did you mean `{near}`?)"));
                }
                let names: Vec<&str> = nodes.iter().map(|n| n.vm_name.as_str()).collect();
                return Err((
                    message,
                    format!(
                        "nodes are named <cluster>-<node>; this lab's are: {}",
                        names.join(", ")
                    ),
                ));
            };
            vec![node]
        }
        "cluster" => {
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
                        "`{text}`: step `{}` runs on {}, and cluster `{}` has no node with role `{}`",
                        step.name, runner.vm_name, runner.cluster, reference.target
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
            answering
        }
        _ => {
            return Err((
                format!("`{text}` is not a reference tartlab knows"),
                forms.to_string(),
            ))
        }
    };
    if answering.is_empty() {
        // The step runs nowhere: its selector's problem is reported already.
        return Ok(());
    }
    // An earlier step that runs on an answering node and declares the output.
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
    let names: Vec<&str> = answering.iter().map(|n| n.vm_name.as_str()).collect();
    let mut message = format!(
        "`{text}`: no step before `{}` that runs on {} declares the output `{}`",
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
            cpu: 1,
            memory: 256,
            disk: None,
            network: NetworkMode::Nat,
            login: Login {
                user: "admin".into(),
                password: "admin".into(),
            },
            cloud_init: None,
        };
        let master = node("stg-master", "stg", "master");
        assert!(selects("cluster=dev,stg", &master));
        assert!(selects("dev-*,stg-*", &master));
        assert!(selects("role=mast*", &master));
        assert!(!selects("cluster=dev", &master));
        assert!(!selects("dev-*", &master));
    }
}
