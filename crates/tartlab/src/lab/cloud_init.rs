//! A node's cloud-init user-data (`cloud_init: PATH`): the file as written, with tartlab's
//! node values filled in (`{{ node.name }}`, `{{ node.hostname }}`, `{{ node.cluster }}`,
//! `{{ node.role }}`, `{{ lab.name }}`), checked to be `#cloud-config` YAML. Anything else
//! in `{{ }}` (cloud-init's own Jinja, under `## template: jinja`) is left to cloud-init.

use super::node::Node;
use super::tree;

/// What is wrong with a user-data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserDataError {
    /// Its first line is not `#cloud-config`.
    NotCloudConfig,
    /// A `{{ node.X }}` or `{{ lab.X }}` that tartlab does not fill in, as written.
    UnknownValue(String),
    /// Filled in, it is not YAML: the line, when known, and the parser's words.
    Yaml {
        line: Option<usize>,
        message: String,
    },
}

impl std::fmt::Display for UserDataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserDataError::NotCloudConfig => f.write_str(
                "its first line is not `#cloud-config` (only cloud-config user-data is taken)",
            ),
            UserDataError::UnknownValue(name) => write!(
                f,
                "`{{{{ {name} }}}}` is not a value tartlab fills in: use node.name, node.hostname, node.cluster, node.role or lab.name"
            ),
            UserDataError::Yaml {
                line: Some(line),
                message,
            } => write!(f, "line {line}: {message}"),
            UserDataError::Yaml {
                line: None,
                message,
            } => f.write_str(message),
        }
    }
}

/// The user-data for a node, or what is wrong with it.
pub fn user_data(text: &str, node: &Node, lab: &str) -> Result<String, UserDataError> {
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let first = lines.next().unwrap_or("").trim();
    let header_ok = first == "#cloud-config"
        || (first.starts_with("## template:")
            && lines.next().map(str::trim) == Some("#cloud-config"));
    if !header_ok {
        return Err(UserDataError::NotCloudConfig);
    }
    let filled = fill(text, node, lab)?;
    if let Err(e) = tree::parse_yaml(&filled) {
        return Err(UserDataError::Yaml {
            line: e.at.is_known().then_some(e.at.line),
            message: e.message,
        });
    }
    Ok(filled)
}

/// The text with each `{{ node.X }}` and `{{ lab.name }}` replaced, in one pass.
fn fill(text: &str, node: &Node, lab: &str) -> Result<String, UserDataError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + end].trim();
        let value = match name {
            // The VM's name (with `vm_prefix`); the guest's host name (without it), as the
            // base sets it and the seed's `local-hostname` says.
            "node.name" => Some(node.vm_name.as_str()),
            "node.hostname" => Some(node.hostname.as_str()),
            "node.cluster" => Some(node.cluster.as_str()),
            "node.role" => Some(node.role.as_str()),
            "lab.name" => Some(lab),
            other if other.starts_with("node.") || other.starts_with("lab.") => {
                return Err(UserDataError::UnknownValue(other.to_string()))
            }
            _ => None,
        };
        out.push_str(&rest[..start]);
        match value {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[start..start + end + 2]),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::NetworkMode;

    fn node() -> Node {
        Node {
            vm_name: "dev-master".into(),
            hostname: "dev-master".into(),
            cluster: "dev".into(),
            role: "master".into(),
            image: String::new(),
            image_at: None,
            cpu: 1,
            memory: 256,
            disk: None,
            network: NetworkMode::Nat,
            login: crate::lab::model::Login {
                user: "admin".into(),
                password: "admin".into(),
            },
            cloud_init: None,
            mounts: Vec::new(),
            placement: Default::default(),
            naming: Default::default(),
        }
    }

    #[test]
    fn node_values_are_filled_in_and_cloud_inits_own_are_left() {
        let text = "#cloud-config\nwrite_files:\n  - path: /etc/who\n    content: \"{{ node.name }} of {{node.cluster}} in {{ lab.name }}\"\nruncmd: [\"echo {{ v1.instance_id }}\"]\n";
        let filled = user_data(text, &node(), "lab").unwrap();
        assert!(filled.contains("dev-master of dev in lab"), "{filled}");
        assert!(filled.contains("{{ v1.instance_id }}"));
    }

    #[test]
    fn the_hostname_is_the_guests_without_the_vm_prefix() {
        let node = Node {
            vm_name: "a-dev-master".into(),
            ..node()
        };
        let text = "#cloud-config\nhostname: \"{{ node.hostname }}\"\nvm: \"{{ node.name }}\"\n";
        let filled = user_data(text, &node, "lab").unwrap();
        assert!(filled.contains("hostname: \"dev-master\""), "{filled}");
        assert!(filled.contains("vm: \"a-dev-master\""), "{filled}");
    }

    #[test]
    fn a_file_that_is_not_cloud_config_yaml_is_refused_with_why() {
        let not_cloud_config = user_data("#!/bin/sh\necho hi\n", &node(), "l").unwrap_err();
        assert_eq!(not_cloud_config, UserDataError::NotCloudConfig);
        assert!(not_cloud_config.to_string().contains("`#cloud-config`"));
        let yaml = user_data("#cloud-config\nusers: [\n", &node(), "l").unwrap_err();
        assert!(
            matches!(yaml, UserDataError::Yaml { line: Some(_), .. }),
            "{yaml:?}"
        );
        assert!(yaml.to_string().starts_with("line "));
        let unknown = user_data("#cloud-config\na: \"{{ node.ip }}\"\n", &node(), "l").unwrap_err();
        assert_eq!(unknown, UserDataError::UnknownValue("node.ip".into()));
        assert!(unknown
            .to_string()
            .starts_with("`{{ node.ip }}` is not a value"));
    }
}
