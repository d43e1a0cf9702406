//! A node's network mode, parsed once from the lab file and kept typed everywhere after: in
//! the node, in the state file (as the same text `Display` gives), and in the provider that
//! turns it into `tart run` flags. docs/NETWORKS.md says what each mode allows, and why the
//! default is softnet with `allow: [0.0.0.0/0]`.
//!
//! In the lab file a mode is a word (`nat`, `softnet`, `host`, `bridged:en0`) or a map:
//! `{ mode: softnet, allow: [10.0.0.0/8], block: [...] }`, `{ mode: bridged, interface: en0 }`.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Softnet's special destination: with it, softnet also turns vmnet's bridge isolation off,
/// so the VM reaches (and is reached by) the other VMs.
pub const ALL: &str = "0.0.0.0/0";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetworkMode {
    /// tart's default shared NAT: the host and the internet, no other VM.
    Nat,
    /// Softnet: by default only global addresses and the host; `allow` adds destinations
    /// (`0.0.0.0/0` also lets VMs reach each other), `block` removes them.
    Softnet {
        allow: Vec<String>,
        block: Vec<String>,
    },
    /// A host-only network through Softnet (`--net-host`), with the same lists.
    Host {
        allow: Vec<String>,
        block: Vec<String>,
    },
    /// Bridged to a host interface (`--net-bridged IF`): on the LAN, addresses from its DHCP.
    Bridged(String),
}

impl Default for NetworkMode {
    /// The mode in which a lab's nodes reach each other and the internet.
    fn default() -> NetworkMode {
        NetworkMode::Softnet {
            allow: vec![ALL.to_string()],
            block: Vec::new(),
        }
    }
}

impl NetworkMode {
    /// Whether the host's DHCP server leases this VM its address (bridged VMs get theirs from
    /// the LAN, so the host's lease file knows nothing of them).
    pub fn leased_by_host(&self) -> bool {
        !matches!(self, NetworkMode::Bridged(_))
    }

    /// Whether tart runs the VM through Softnet (which must be set up on the Mac first).
    pub fn uses_softnet(&self) -> bool {
        matches!(self, NetworkMode::Softnet { .. } | NetworkMode::Host { .. })
    }

    /// Whether VMs in this mode reach each other: bridged, or softnet (or host) with
    /// `0.0.0.0/0` allowed (which turns bridge isolation off); never NAT.
    pub fn reaches_peers(&self) -> bool {
        match self {
            NetworkMode::Nat => false,
            NetworkMode::Softnet { allow, .. } | NetworkMode::Host { allow, .. } => {
                allow.iter().any(|a| a == ALL)
            }
            NetworkMode::Bridged(_) => true,
        }
    }

    /// The mode as a lab file writes it: the word alone when it has no lists.
    pub fn to_spec(&self) -> NetworkSpec {
        let map = |allow: &[String], block: &[String]| NetworkSpec::Map {
            mode: Some(self.kind().to_string()),
            allow: allow.to_vec(),
            block: block.to_vec(),
            interface: None,
        };
        match self {
            NetworkMode::Softnet { allow, block } | NetworkMode::Host { allow, block }
                if !(allow.is_empty() && block.is_empty()) =>
            {
                map(allow, block)
            }
            other => NetworkSpec::Word(other.to_string()),
        }
    }

    /// The mode's name, as `mode:` gives it.
    pub fn kind(&self) -> &'static str {
        match self {
            NetworkMode::Nat => "nat",
            NetworkMode::Softnet { .. } => "softnet",
            NetworkMode::Host { .. } => "host",
            NetworkMode::Bridged(_) => "bridged",
        }
    }
}

fn lists(f: &mut fmt::Formatter<'_>, allow: &[String], block: &[String]) -> fmt::Result {
    if !allow.is_empty() {
        write!(f, " allow={}", allow.join(","))?;
    }
    if !block.is_empty() {
        write!(f, " block={}", block.join(","))?;
    }
    Ok(())
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkMode::Nat => f.write_str("nat"),
            NetworkMode::Softnet { allow, block } => {
                f.write_str("softnet")?;
                lists(f, allow, block)
            }
            NetworkMode::Host { allow, block } => {
                f.write_str("host")?;
                lists(f, allow, block)
            }
            NetworkMode::Bridged(interface) => write!(f, "bridged:{interface}"),
        }
    }
}

/// Why a setting is not a network mode, and (when one value is wrong) its key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotANetworkMode {
    pub message: String,
    pub at: Option<(&'static str, String)>,
}

impl NotANetworkMode {
    fn new(message: impl Into<String>) -> NotANetworkMode {
        NotANetworkMode {
            message: message.into(),
            at: None,
        }
    }
}

impl fmt::Display for NotANetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A softnet destination: `A.B.C.D/N` (a CIDR) or `@host` (the vmnet gateway).
pub fn is_destination(text: &str) -> bool {
    if text == "@host" {
        return true;
    }
    let Some((address, bits)) = text.split_once('/') else {
        return false;
    };
    address.parse::<std::net::Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32)
}

/// Builds a mode from its parts, checking each.
pub fn mode_from_parts(
    mode: &str,
    allow: Vec<String>,
    block: Vec<String>,
    interface: Option<String>,
) -> Result<NetworkMode, NotANetworkMode> {
    let no_lists = |what: &str| {
        if allow.is_empty() && block.is_empty() {
            Ok(())
        } else {
            Err(NotANetworkMode::new(format!(
                "`allow` and `block` are Softnet's lists; mode {what} has none (use mode softnet or host)"
            )))
        }
    };
    for (key, list) in [("allow", &allow), ("block", &block)] {
        if let Some(bad) = list.iter().find(|d| !is_destination(d)) {
            return Err(NotANetworkMode {
                message: format!(
                    "`{bad}` is not a destination Softnet knows: give an IPv4 CIDR such as 10.0.0.0/8, or @host"
                ),
                at: Some((key, bad.clone())),
            });
        }
    }
    if interface.is_some() && mode != "bridged" {
        return Err(NotANetworkMode::new(format!(
            "`interface` belongs to mode bridged, not `{mode}`"
        )));
    }
    match mode {
        "nat" => no_lists("nat").map(|()| NetworkMode::Nat),
        "softnet" => Ok(NetworkMode::Softnet { allow, block }),
        "host" => Ok(NetworkMode::Host { allow, block }),
        "bridged" => {
            no_lists("bridged")?;
            match interface {
                Some(i) if !i.is_empty() && !i.contains(char::is_whitespace) => {
                    Ok(NetworkMode::Bridged(i))
                }
                _ => Err(NotANetworkMode::new(
                    "mode bridged needs the host interface to bridge to, e.g. `bridged:en0` or `{ mode: bridged, interface: en0 }`",
                )),
            }
        }
        other => Err(NotANetworkMode::new(format!(
            "`{other}` is not a network mode: use nat, softnet, host or bridged"
        ))),
    }
}

impl FromStr for NetworkMode {
    type Err = NotANetworkMode;

    /// `nat`, `softnet`, `host`, `bridged:IF`, and (as `Display` writes them)
    /// `softnet allow=A,B block=C`.
    fn from_str(text: &str) -> Result<NetworkMode, NotANetworkMode> {
        let mut words = text.split(' ');
        let first = words.next().unwrap_or_default();
        let (mut allow, mut block) = (Vec::new(), Vec::new());
        for word in words {
            let split = |list: &str| list.split(',').map(str::to_string).collect::<Vec<_>>();
            match word.split_once('=') {
                Some(("allow", list)) => allow = split(list),
                Some(("block", list)) => block = split(list),
                _ => {
                    return Err(NotANetworkMode::new(format!(
                        "`{text}` is not a network mode"
                    )))
                }
            }
        }
        match first.split_once(':') {
            Some(("bridged", interface)) => {
                mode_from_parts("bridged", allow, block, Some(interface.to_string()))
            }
            _ => mode_from_parts(first, allow, block, None),
        }
    }
}

impl Serialize for NetworkMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NetworkMode {
    /// From the text `Display` writes (the state file).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NetworkMode, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|e: NotANetworkMode| de::Error::custom(e.message))
    }
}

/// `network` as a lab file writes it, before it is checked: a word, or a map of `mode`,
/// `allow`, `block` and `interface`. `validate` turns it into a `NetworkMode`, reporting what
/// is wrong with the place it is written, together with every other problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum NetworkSpec {
    Word(String),
    Map {
        mode: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        allow: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        block: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        interface: Option<String>,
    },
}

impl NetworkSpec {
    pub fn to_mode(&self) -> Result<NetworkMode, NotANetworkMode> {
        match self {
            NetworkSpec::Word(word) => word.parse().map_err(|e: NotANetworkMode| NotANetworkMode {
                at: Some(("network", word.clone())),
                ..e
            }),
            NetworkSpec::Map {
                mode,
                allow,
                block,
                interface,
            } => {
                let Some(mode) = mode else {
                    return Err(NotANetworkMode::new(
                        "a network map needs `mode`: nat, softnet, host or bridged",
                    ));
                };
                mode_from_parts(mode, allow.clone(), block.clone(), interface.clone()).map_err(
                    |e| NotANetworkMode {
                        at: e.at.or(Some(("mode", mode.clone()))),
                        ..e
                    },
                )
            }
        }
    }
}

impl<'de> Deserialize<'de> for NetworkSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NetworkSpec, D::Error> {
        deserializer.deserialize_any(SpecVisitor)
    }
}

struct SpecVisitor;

impl<'de> Visitor<'de> for SpecVisitor {
    type Value = NetworkSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a network mode: nat, softnet, host, bridged:INTERFACE, or a map such as { mode: softnet, allow: [0.0.0.0/0] }")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<NetworkSpec, E> {
        Ok(NetworkSpec::Word(text.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NetworkSpec, A::Error> {
        let (mut mode, mut allow, mut block, mut interface) = (None, Vec::new(), Vec::new(), None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "mode" => mode = Some(map.next_value::<String>()?),
                "allow" => allow = map.next_value()?,
                "block" => block = map.next_value()?,
                "interface" => interface = Some(map.next_value::<String>()?),
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["mode", "allow", "block", "interface"],
                    ))
                }
            }
        }
        Ok(NetworkSpec::Map {
            mode,
            allow,
            block,
            interface,
        })
    }
}

impl JsonSchema for NetworkSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Network".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "How the VM is networked (docs/NETWORKS.md). Default: { mode: softnet, allow: [0.0.0.0/0] }, in which the lab's nodes reach each other and the internet.",
            "x-expects": "nat, softnet, host, bridged:INTERFACE, or a mapping such as { mode: softnet, allow: [0.0.0.0/0] }",
            "oneOf": [
                { "type": "string", "pattern": "^(nat|softnet|host|bridged:\\S+)$" },
                {
                    "type": "object",
                    "properties": {
                        "mode": { "enum": ["nat", "softnet", "host", "bridged"] },
                        "allow": { "type": "array", "items": { "type": "string" } },
                        "block": { "type": "array", "items": { "type": "string" } },
                        "interface": { "type": "string" }
                    },
                    "required": ["mode"],
                    "additionalProperties": false,
                    "x-name": "a network"
                }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_their_text() {
        for text in [
            "nat",
            "softnet",
            "host",
            "bridged:en0",
            "bridged:Wi-Fi",
            "softnet allow=0.0.0.0/0",
            "softnet allow=10.0.0.0/8,@host block=10.1.0.0/16",
            "host block=0.0.0.0/0",
        ] {
            let mode: NetworkMode = text.parse().unwrap();
            assert_eq!(mode.to_string(), text);
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(serde_json::from_str::<NetworkMode>(&json).unwrap(), mode);
        }
        for bad in [
            "",
            "bridged:",
            "bridged:en 0",
            "NAT",
            "shared",
            "softnet allow=10.0.0.0/33",
            "nat allow=0.0.0.0/0",
        ] {
            assert!(bad.parse::<NetworkMode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_bridged_and_softnet_open_to_all_let_peers_talk() {
        let mode = |t: &str| t.parse::<NetworkMode>().unwrap();
        assert!(NetworkMode::default().reaches_peers());
        assert!(mode("bridged:en0").reaches_peers());
        assert!(!mode("nat").reaches_peers());
        assert!(!mode("softnet").reaches_peers());
        assert!(
            !mode("softnet allow=192.168.64.0/24").reaches_peers(),
            "bridge isolation stays on"
        );
        assert!(mode("softnet allow=0.0.0.0/0 block=0.0.0.0/0").reaches_peers());
    }

    #[test]
    fn a_map_names_its_mode_and_lists() {
        let spec: NetworkSpec =
            serde_saphyr::from_str("mode: softnet\nallow: [0.0.0.0/0]\n").unwrap();
        assert_eq!(spec.to_mode().unwrap(), NetworkMode::default());
        let bridged: NetworkSpec =
            serde_saphyr::from_str("{ mode: bridged, interface: en0 }").unwrap();
        assert_eq!(
            bridged.to_mode().unwrap(),
            NetworkMode::Bridged("en0".into())
        );
        let bad: NetworkSpec =
            serde_saphyr::from_str("{ mode: softnet, allow: [10.0.0.0/99] }").unwrap();
        let err = bad.to_mode().unwrap_err();
        assert_eq!(err.at, Some(("allow", "10.0.0.0/99".to_string())));
        let err = serde_saphyr::from_str::<NetworkSpec>("{ mode: softnet, alow: [] }").unwrap_err();
        assert!(err.to_string().contains("alow"), "{err}");
    }
}
