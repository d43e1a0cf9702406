//! A node's network mode, parsed once from the lab file (`nat`, `softnet`, `host`,
//! `bridged:<interface>`) and kept typed everywhere after: in the node, in the state file (as
//! the same text), and in the provider that turns it into `tart run` flags.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum NetworkMode {
    /// tart's default shared NAT.
    #[default]
    Nat,
    /// Softnet (`--net-softnet`).
    Softnet,
    /// A host-only network through Softnet (`--net-host`).
    Host,
    /// Bridged to a host interface (`--net-bridged IF`).
    Bridged(String),
}

impl NetworkMode {
    /// Whether the host's DHCP server leases this VM its address (bridged VMs get theirs from
    /// the LAN, so the host's lease file knows nothing of them).
    pub fn leased_by_host(&self) -> bool {
        !matches!(self, NetworkMode::Bridged(_))
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkMode::Nat => f.write_str("nat"),
            NetworkMode::Softnet => f.write_str("softnet"),
            NetworkMode::Host => f.write_str("host"),
            NetworkMode::Bridged(interface) => write!(f, "bridged:{interface}"),
        }
    }
}

/// Why a text is not a network mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotANetworkMode;

impl FromStr for NetworkMode {
    type Err = NotANetworkMode;

    fn from_str(text: &str) -> Result<NetworkMode, NotANetworkMode> {
        match text {
            "nat" => Ok(NetworkMode::Nat),
            "softnet" => Ok(NetworkMode::Softnet),
            "host" => Ok(NetworkMode::Host),
            other => match other.strip_prefix("bridged:") {
                Some(interface)
                    if !interface.is_empty() && !interface.contains(char::is_whitespace) =>
                {
                    Ok(NetworkMode::Bridged(interface.to_string()))
                }
                _ => Err(NotANetworkMode),
            },
        }
    }
}

impl Serialize for NetworkMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NetworkMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NetworkMode, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a network mode")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_their_text() {
        for text in ["nat", "softnet", "host", "bridged:en0", "bridged:Wi-Fi"] {
            let mode: NetworkMode = text.parse().unwrap();
            assert_eq!(mode.to_string(), text);
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(serde_json::from_str::<NetworkMode>(&json).unwrap(), mode);
        }
        for bad in ["", "bridged:", "bridged:en 0", "NAT", "shared"] {
            assert_eq!(bad.parse::<NetworkMode>(), Err(NotANetworkMode), "{bad}");
        }
    }
}
