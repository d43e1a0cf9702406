//! The files other tools read: `ssh-config` (an OpenSSH config to `Include`, or its hosts as
//! JSON) and `inventory` (Ansible: YAML, INI, or the JSON of a dynamic inventory's
//! `--list`). Both come from the state file and the provider's routes alone (a host and
//! port, or `tartlab proxy` as the `ProxyCommand`): no SSH, no lock.

use std::collections::BTreeMap;
use std::path::Path;

use super::{FileArgs, LabSnapshot};
use crate::dial::SshRoute;
use crate::error::{Error, Exit, Result};
use crate::guest::quote;
use crate::lab::Node;

/// How OpenSSH reaches each node that has a recorded address (an IP address, or refused),
/// as its provider says.
fn routes(snapshot: &LabSnapshot) -> Result<Routes> {
    let mut routes = Routes::new();
    for node in &snapshot.lab.nodes {
        let Some(ip) = snapshot
            .state
            .vms
            .get(&node.vm_name)
            .and_then(|o| o.ip.clone())
        else {
            continue;
        };
        let ip = host_address(&node.vm_name, &ip)?;
        let route = crate::provider::ssh_route(&snapshot.lab, &node.vm_name, &ip);
        routes.insert(node.vm_name.clone(), route);
    }
    Ok(routes)
}

/// A command (`tartlab proxy`) as one line for OpenSSH's `ProxyCommand`, which a shell runs
/// after ssh expands its `%` tokens (a `%` of a path is written `%%`) and `${...}` (refused,
/// as a control character is).
pub(super) fn proxy_line(words: &[String]) -> Result<String> {
    for word in words {
        if word.chars().any(char::is_control) || word.contains("${") {
            return Err(Error::fatal(
                format!(
                    "cannot write \"{}\" into ssh's ProxyCommand: ssh would read it as something else",
                    word.escape_debug()
                ),
                "move the lab to a directory whose path has no `${`, newline or other control character",
            ));
        }
    }
    Ok(quote::command(words).replace('%', "%%"))
}

#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Examples:\n  tartlab inventory > hosts.yaml && ansible -i hosts.yaml all -m ping\n  tartlab inventory --json   (the shape of a dynamic inventory's --list: groups, and _meta.hostvars)"
)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// INI instead of YAML
    #[arg(long, conflicts_with = "json")]
    pub ini: bool,
}

/// A path as OpenSSH reads a file argument (`IdentityFile`, `UserKnownHostsFile`, `-i`):
/// `%` doubled, as ssh expands `%` tokens there. Refused, naming the path and why, when ssh
/// would read it as something else: not UTF-8, a control character (a newline starts a new
/// option), `"` (it cannot be quoted in a config), or `${` (ssh expands it from the
/// environment, with no escape).
fn ssh_path(path: &Path) -> Result<String> {
    let refuse = |why: &str| {
        let shown = path.to_string_lossy();
        Error::fatal(
            format!(
                "cannot write the path \"{}\" for ssh: {why}, so ssh would read another file or other options",
                shown.escape_debug()
            ),
            "move the lab to a directory whose path has no `\"`, `${`, newline or other control character",
        )
    };
    let text = path.to_str().ok_or_else(|| refuse("it is not UTF-8"))?;
    if text.chars().any(char::is_control) {
        return Err(refuse("it holds a control character"));
    }
    if text.contains('"') {
        return Err(refuse("it holds `\"`, which an ssh config cannot quote"));
    }
    if text.contains("${") {
        return Err(refuse(
            "it holds `${`, which ssh expands from the environment",
        ));
    }
    Ok(text.replace('%', "%%"))
}

/// A path as one double-quoted argument of an OpenSSH config line (`\` escaped, as
/// OpenSSH's argument splitting reads it).
pub(super) fn ssh_config_quoted(path: &Path) -> Result<String> {
    Ok(format!("\"{}\"", ssh_quoted_inside(path)?))
}

/// What goes between the double quotes of `ssh_config_quoted`.
fn ssh_quoted_inside(path: &Path) -> Result<String> {
    Ok(ssh_path(path)?.replace('\\', "\\\\"))
}

/// The address the state gives a VM, as ssh and Ansible read a host: an IP address, or
/// refused (`.tartlab/state.json` may come with a cloned repository).
fn host_address(vm: &str, ip: &str) -> Result<String> {
    ip.parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| {
            Error::fatal(
                format!(
                    "the state gives {vm} the address \"{}\", which is not an IP address",
                    ip.escape_debug()
                ),
                "`tartlab up` records the address the VM has now",
            )
        })
}

pub fn ssh_config(args: &FileArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(args)?;
    let routes = routes(&snapshot)?;
    let key = snapshot.absolute(snapshot.dir.key_path());
    let known = snapshot.absolute(snapshot.dir.known_hosts_path());
    let (key_arg, known_arg) = (ssh_config_quoted(&key)?, ssh_config_quoted(&known)?);
    let mut text = format!(
        "# tartlab lab `{lab}`: `Include` this file from ~/.ssh/config. Each host is also\n# `{lab}.NODE`, a name no other lab's file gives.\n",
        lab = snapshot.lab.name()
    );
    let mut hosts = Vec::new();
    for node in &snapshot.lab.nodes {
        let Some(route) = routes.get(&node.vm_name) else {
            text.push_str(&format!(
                "\n# {}: no address yet (`tartlab up`)\n",
                node.vm_name
            ));
            continue;
        };
        let (way, hostname, port) = match route {
            SshRoute::Direct { host, port } if *port == 22 => {
                (format!("HostName {host}"), host.clone(), *port)
            }
            SshRoute::Direct { host, port } => (
                format!("HostName {host}\n  Port {port}"),
                host.clone(),
                *port,
            ),
            SshRoute::Proxy => (
                format!(
                    "ProxyCommand {}",
                    proxy_line(&super::access::proxy_command(&snapshot, &node.vm_name))?
                ),
                node.vm_name.clone(),
                22,
            ),
        };
        // Also `<lab>.<node>`: two labs Included side by side each keep a name of their own
        // (a lab and a node name are labels, with no `.`, so no two labs' aliases meet).
        let alias = format!("{}.{}", snapshot.lab.name(), node.hostname);
        text.push_str(&format!(
            "\nHost {vm} {alias}\n  {way}\n  User {user}\n  IdentityFile {key_arg}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known_arg}\n  HostKeyAlias {vm}\n  StrictHostKeyChecking yes\n",
            vm = node.vm_name,
            user = node.login.user,
        ));
        hosts.push(serde_json::json!({
            "host": node.vm_name,
            "aliases": [node.vm_name, alias],
            "hostname": hostname,
            "port": port,
            "proxy_command": matches!(route, SshRoute::Proxy)
                .then(|| super::access::proxy_command(&snapshot, &node.vm_name)),
            "user": node.login.user,
            "identity_file": key,
            "user_known_hosts_file": known,
            "host_key_alias": node.vm_name,
        }));
    }
    let path = snapshot.absolute(snapshot.dir.root.join("ssh_config"));
    if snapshot.dir.exists() {
        crate::files::write_atomic(&path, text.as_bytes(), 0o600)
            .map_err(|e| Error::fatal(format!("cannot write {}: {e}", path.display()), ""))?;
    }
    if args.json {
        super::out(&serde_json::json!({ "hosts": hosts, "file": path }).to_string());
        return Ok(Exit::Ok);
    }
    print!("{text}");
    Ok(Exit::Ok)
}

/// An Ansible group name: letters, digits and `_`.
fn group_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The inventory's groups: one per cluster and one per role, with their nodes.
fn groups(nodes: &[Node]) -> BTreeMap<String, Vec<&Node>> {
    let mut groups: BTreeMap<String, Vec<&Node>> = BTreeMap::new();
    for node in nodes {
        groups
            .entry(group_name(&node.cluster))
            .or_default()
            .push(node);
        let role = groups.entry(group_name(&node.role)).or_default();
        if !role.iter().any(|n| n.vm_name == node.vm_name) {
            role.push(node);
        }
    }
    groups
}

/// A host's variables: its address (when known: a host and port, or the node's name with
/// `tartlab proxy` as ssh's ProxyCommand), user, the lab key and the pinned host key.
/// Ansible hands the key file to ssh as `-o IdentityFile="KEY"` and splits the common
/// arguments as a shell would, so each is quoted for that; a value Ansible would read as a
/// template (`{{`, `{%`, `{#`) or with a control character is refused.
fn host_vars(
    snapshot: &LabSnapshot,
    routes: &BTreeMap<String, SshRoute>,
    node: &Node,
) -> Result<Vec<(String, String)>> {
    let key = snapshot.absolute(snapshot.dir.key_path());
    let known = snapshot.absolute(snapshot.dir.known_hosts_path());
    let known_option = format!("UserKnownHostsFile {}", ssh_config_quoted(&known)?);
    let proxy = match routes.get(&node.vm_name) {
        Some(SshRoute::Proxy) => {
            let line = proxy_line(&super::access::proxy_command(snapshot, &node.vm_name))?;
            format!(" -o {}", quote::quote(&format!("ProxyCommand={line}")))
        }
        _ => String::new(),
    };
    let mut vars = vec![
        ("ansible_user".to_string(), node.login.user.clone()),
        (
            "ansible_ssh_private_key_file".into(),
            ssh_quoted_inside(&key)?,
        ),
        (
            "ansible_ssh_common_args".into(),
            format!(
                "-o {} -o HostKeyAlias={} -o StrictHostKeyChecking=yes{proxy}",
                quote::quote(&known_option),
                node.vm_name
            ),
        ),
    ];
    match routes.get(&node.vm_name) {
        Some(SshRoute::Direct { host, port }) => {
            if *port != 22 {
                vars.insert(0, ("ansible_port".into(), port.to_string()));
            }
            vars.insert(0, ("ansible_host".into(), host.clone()));
        }
        Some(SshRoute::Proxy) => vars.insert(0, ("ansible_host".into(), node.vm_name.clone())),
        None => {}
    }
    for (name, value) in &vars {
        if let Some(why) = ansible_misreads(value) {
            return Err(Error::fatal(
                format!(
                    "cannot write {name} of {} for Ansible: \"{}\" {why}",
                    node.vm_name,
                    value.escape_debug()
                ),
                "move the lab to a directory whose path has no `{{`, `{%`, `{#` or control character",
            ));
        }
    }
    Ok(vars)
}

/// Why Ansible would not read a value as written, if it would not.
fn ansible_misreads(value: &str) -> Option<&'static str> {
    if value.chars().any(char::is_control) {
        Some("holds a control character")
    } else if ["{{", "{%", "{#"].iter().any(|t| value.contains(t)) {
        Some("holds a template opener, which Ansible would evaluate")
    } else {
        None
    }
}

/// The inventory's groups, each with its nodes.
type Hosts<'a> = BTreeMap<String, Vec<&'a Node>>;

/// How OpenSSH reaches each node, by name.
type Routes = BTreeMap<String, SshRoute>;

fn render_ini(snapshot: &LabSnapshot, routes: &Routes, groups: &Hosts) -> Result<String> {
    let mut text = String::new();
    for (group, nodes) in groups {
        text.push_str(&format!("[{group}]\n"));
        for node in nodes {
            // Ansible splits a host line as a POSIX shell would: each value one word.
            let vars: Vec<String> = host_vars(snapshot, routes, node)?
                .into_iter()
                .map(|(k, v)| format!("{k}={}", quote::quote(&v)))
                .collect();
            text.push_str(&format!("{} {}\n", node.vm_name, vars.join(" ")));
        }
        text.push('\n');
    }
    Ok(text)
}

fn render_yaml(snapshot: &LabSnapshot, routes: &Routes, groups: &Hosts) -> Result<String> {
    let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut text = String::from("all:\n  children:\n");
    for (group, nodes) in groups {
        text.push_str(&format!("    {group}:\n      hosts:\n"));
        for node in nodes {
            text.push_str(&format!("        {}:\n", node.vm_name));
            for (k, v) in host_vars(snapshot, routes, node)? {
                text.push_str(&format!("          {k}: {}\n", json(&v)));
            }
        }
    }
    Ok(text)
}

/// The JSON a dynamic inventory script prints for `--list`: each group with its hosts,
/// `all` with every group, and every host's variables in `_meta.hostvars`.
fn render_json(snapshot: &LabSnapshot, routes: &Routes, groups: &Hosts) -> Result<String> {
    let mut out = serde_json::Map::new();
    for (group, nodes) in groups {
        let hosts: Vec<&str> = nodes.iter().map(|n| n.vm_name.as_str()).collect();
        out.insert(group.clone(), serde_json::json!({ "hosts": hosts }));
    }
    let children: Vec<&String> = groups.keys().collect();
    out.insert("all".into(), serde_json::json!({ "children": children }));
    let mut hostvars = serde_json::Map::new();
    for node in &snapshot.lab.nodes {
        let vars: serde_json::Map<String, serde_json::Value> = host_vars(snapshot, routes, node)?
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        hostvars.insert(node.vm_name.clone(), serde_json::Value::Object(vars));
    }
    out.insert("_meta".into(), serde_json::json!({ "hostvars": hostvars }));
    Ok(serde_json::Value::Object(out).to_string())
}

pub fn inventory(args: &InventoryArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file)?;
    let groups = groups(&snapshot.lab.nodes);
    let routes = routes(&snapshot)?;
    let text = if args.file.json {
        format!("{}\n", render_json(&snapshot, &routes, &groups)?)
    } else if args.ini {
        render_ini(&snapshot, &routes, &groups)?
    } else {
        render_yaml(&snapshot, &routes, &groups)?
    };
    print!("{text}");
    Ok(Exit::Ok)
}
