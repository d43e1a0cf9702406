//! The files other tools read: `ssh-config` (an OpenSSH config to `Include`, or its hosts as
//! JSON) and `inventory` (Ansible: YAML, INI, or the JSON of a dynamic inventory's
//! `--list`). Both come from the state file and the provider's routes alone (a host and
//! port, or `tartlab proxy` as the `ProxyCommand`): no SSH, no lock.

use std::collections::BTreeMap;

use super::{FileArgs, LabSnapshot};
use crate::dial::SshRoute;
use crate::error::{Error, Exit, Result};
use crate::lab::Node;

/// How OpenSSH reaches each node that has a recorded address, as its provider says.
fn routes(snapshot: &LabSnapshot) -> BTreeMap<String, SshRoute> {
    snapshot
        .lab
        .nodes
        .iter()
        .filter_map(|node| {
            let ip = snapshot.state.vms.get(&node.vm_name)?.ip.clone()?;
            let route = crate::provider::ssh_route(&snapshot.lab, &node.vm_name, &ip);
            Some((node.vm_name.clone(), route))
        })
        .collect()
}

/// `tartlab proxy` for a node, as one command line for OpenSSH's `ProxyCommand` (which a
/// shell runs, after ssh expands its `%` tokens: a `%` of a path is written `%%`).
fn proxy_line(snapshot: &LabSnapshot, vm: &str) -> String {
    crate::quote::command(&super::access::proxy_command(snapshot, vm)).replace('%', "%%")
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

pub fn ssh_config(args: &FileArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(args)?;
    let routes = routes(&snapshot);
    let key = snapshot.absolute(snapshot.dir.key_path());
    let known = snapshot.absolute(snapshot.dir.known_hosts_path());
    let mut text = format!(
        "# tartlab lab `{}`: `Include` this file from ~/.ssh/config\n",
        snapshot.lab.name()
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
                format!("ProxyCommand {}", proxy_line(&snapshot, &node.vm_name)),
                node.vm_name.clone(),
                22,
            ),
        };
        text.push_str(&format!(
            "\nHost {vm}\n  {way}\n  User {user}\n  IdentityFile \"{key}\"\n  IdentitiesOnly yes\n  UserKnownHostsFile \"{known}\"\n  HostKeyAlias {vm}\n  StrictHostKeyChecking yes\n",
            vm = node.vm_name,
            user = node.login.user,
            key = key.display(),
            known = known.display(),
        ));
        hosts.push(serde_json::json!({
            "host": node.vm_name,
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
    let path = snapshot.dir.root.join("ssh_config");
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
fn host_vars(
    snapshot: &LabSnapshot,
    routes: &BTreeMap<String, SshRoute>,
    node: &Node,
) -> Vec<(String, String)> {
    let key = snapshot.absolute(snapshot.dir.key_path());
    let known = snapshot.absolute(snapshot.dir.known_hosts_path());
    let proxy = match routes.get(&node.vm_name) {
        Some(SshRoute::Proxy) => {
            let line =
                crate::quote::command(&super::access::proxy_command(snapshot, &node.vm_name));
            format!(
                " -o {}",
                crate::quote::quote(&format!("ProxyCommand={line}"))
            )
        }
        _ => String::new(),
    };
    let mut vars = vec![
        ("ansible_user".to_string(), node.login.user.clone()),
        (
            "ansible_ssh_private_key_file".into(),
            key.display().to_string(),
        ),
        (
            "ansible_ssh_common_args".into(),
            format!(
                "-o UserKnownHostsFile={} -o HostKeyAlias={} -o StrictHostKeyChecking=yes{proxy}",
                known.display(),
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
    vars
}

/// The inventory's groups, each with its nodes.
type Hosts<'a> = BTreeMap<String, Vec<&'a Node>>;

fn render_ini(
    snapshot: &LabSnapshot,
    routes: &BTreeMap<String, SshRoute>,
    groups: &Hosts,
) -> String {
    let mut text = String::new();
    for (group, nodes) in groups {
        text.push_str(&format!("[{group}]\n"));
        for node in nodes {
            let vars: Vec<String> = host_vars(snapshot, routes, node)
                .into_iter()
                .map(|(k, v)| {
                    if v.contains(' ') {
                        format!("{k}=\"{v}\"")
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect();
            text.push_str(&format!("{} {}\n", node.vm_name, vars.join(" ")));
        }
        text.push('\n');
    }
    text
}

fn render_yaml(
    snapshot: &LabSnapshot,
    routes: &BTreeMap<String, SshRoute>,
    groups: &Hosts,
) -> String {
    let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut text = String::from("all:\n  children:\n");
    for (group, nodes) in groups {
        text.push_str(&format!("    {group}:\n      hosts:\n"));
        for node in nodes {
            text.push_str(&format!("        {}:\n", node.vm_name));
            for (k, v) in host_vars(snapshot, routes, node) {
                text.push_str(&format!("          {k}: {}\n", json(&v)));
            }
        }
    }
    text
}

/// The JSON a dynamic inventory script prints for `--list`: each group with its hosts,
/// `all` with every group, and every host's variables in `_meta.hostvars`.
fn render_json(
    snapshot: &LabSnapshot,
    routes: &BTreeMap<String, SshRoute>,
    groups: &Hosts,
) -> String {
    let mut out = serde_json::Map::new();
    for (group, nodes) in groups {
        let hosts: Vec<&str> = nodes.iter().map(|n| n.vm_name.as_str()).collect();
        out.insert(group.clone(), serde_json::json!({ "hosts": hosts }));
    }
    let children: Vec<&String> = groups.keys().collect();
    out.insert("all".into(), serde_json::json!({ "children": children }));
    let hostvars: serde_json::Map<String, serde_json::Value> = snapshot
        .lab
        .nodes
        .iter()
        .map(|node| {
            let vars: serde_json::Map<String, serde_json::Value> =
                host_vars(snapshot, routes, node)
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
            (node.vm_name.clone(), serde_json::Value::Object(vars))
        })
        .collect();
    out.insert("_meta".into(), serde_json::json!({ "hostvars": hostvars }));
    serde_json::Value::Object(out).to_string()
}

pub fn inventory(args: &InventoryArgs) -> Result<Exit> {
    let snapshot = LabSnapshot::open(&args.file)?;
    let groups = groups(&snapshot.lab.nodes);
    let routes = routes(&snapshot);
    let text = if args.file.json {
        format!("{}\n", render_json(&snapshot, &routes, &groups))
    } else if args.ini {
        render_ini(&snapshot, &routes, &groups)
    } else {
        render_yaml(&snapshot, &routes, &groups)
    };
    print!("{text}");
    Ok(Exit::Ok)
}
