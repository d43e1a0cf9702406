//! The lab's users and logins: names that are accounts the image does not have already,
//! no plain passwords, and `authorized_keys` given as keys or as `.pub` files read once.

use std::collections::HashMap;

use super::checker::{at, expand_home, Checker, Here};
use super::input::Kind;
use super::model::LabFile;
use super::names::{is_user_name, NAME_RULE};

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

pub(super) fn check_users(c: &mut Checker, file: &LabFile) {
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
pub(super) fn check_logins(c: &mut Checker, file: &LabFile) {
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
pub fn authorized_key_text(key: &str, lab: &super::Lab) -> Result<String, super::NotRead> {
    if is_literal_key(key) {
        return Ok(key.trim().to_string());
    }
    let bytes = lab.inputs.read(key)?;
    let text = String::from_utf8_lossy(bytes);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}
