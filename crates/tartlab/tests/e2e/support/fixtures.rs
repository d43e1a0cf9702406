//! The labs several tests bring up, defined once.

use super::{examples, Lab};

/// Two nodes of one cluster, a master and a worker: `dev-master`, `dev-worker`.
pub const PAIR: &str = "lab: pair\nclusters:\n  - name: dev\n    nodes:\n      - { name: master, role: master }\n      - { name: worker, role: worker }\n";

/// One node, `dev-vm`, of lab `small`.
pub const ONE_NODE: &str = "lab: small\nclusters:\n  - name: dev\n    nodes: [{ name: vm }]\n";

/// Two nodes, `dev-a` and `dev-b`, of lab `small`.
pub const TWO_NODES: &str =
    "lab: small\nclusters:\n  - name: dev\n    nodes: [{ name: a }, { name: b }]\n";

/// Two clusters whose nodes share a name: `dev-a`, `dev-b` and `stg-a`, of lab `habits`.
pub const TWO_CLUSTERS: &str = "lab: habits\nclusters:\n  - name: dev\n    nodes: [{ name: a }, { name: b }]\n  - name: stg\n    nodes: [{ name: a }]\n";

/// The VM of `one_vm_lab`.
pub const ONE_VM: &str = "dev-vm";

/// Lab `hostile`: one node, `dev-vm`, then `extra` (top-level keys).
pub fn one_vm_lab(extra: &str) -> String {
    format!("lab: hostile\nclusters:\n  - name: dev\n    nodes: [{{ name: vm }}]\n{extra}")
}

/// The seed lab (examples/seed-lab.yaml): three clusters of a master and two workers.
pub fn seed_lab() -> String {
    std::fs::read_to_string(examples().join("seed-lab.yaml")).unwrap()
}

/// The k3s example's token flow with a stand-in for the k3s install (the guests cannot
/// download k3s): the master makes a token and prints it as a secret output; the workers
/// read it from `{{ cluster.master.outputs.token }}`. A second cluster keeps its own token.
pub const K3S_STAND_IN: &str = r#"lab: k3s
clusters:
  - name: k3s
    nodes:
      - { name: master, role: master }
      - { name: worker, role: worker, count: 2 }
  - name: other
    nodes:
      - { name: master, role: master }
      - { name: worker, role: worker }
files:
  - { src: files/motd, dest: /etc/motd, mode: "0640", owner: "root:adm", on: all }
provision:
  - name: server
    on: role=master
    script: scripts/server.sh
    outputs: [{ name: token, secret: true }, url]
  - name: agents
    on: role=worker
    env:
      K3S_URL: "{{ cluster.master.outputs.url }}"
      K3S_TOKEN: "{{ cluster.master.outputs.token }}"
    run: |
      echo "joining $K3S_URL as $TARTLAB_NODE"
      server=${K3S_URL#https://}
      timeout 10 bash -c "exec 3<>/dev/tcp/${server%:*}/${server##*:}"
      echo "connected to ${server%:*} on port ${server##*:}"
      printf '%s\n' "$K3S_TOKEN" > /etc/k3s-token
ready:
  - { on: all, run: "test -s /etc/motd", hint: "the motd did not arrive" }
"#;

const SERVER_SH: &str = r#"#!/usr/bin/env bash
# Stand-in for the k3s server install: a token made once, then printed for the workers, and
# a listener on the API server's port 6443 (on the node's own address) that they connect to.
set -euo pipefail
[ -f /var/lib/k3s-token ] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > /var/lib/k3s-token
address=$(sed -n '/^# BEGIN tartlab$/,/^# END tartlab$/p' /etc/hosts | awk -v n="$TARTLAB_NODE" '$2 == n { print $1 }')
if ! timeout 2 bash -c "exec 3<>/dev/tcp/$address/6443" 2>/dev/null; then
  nohup python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 6443))
s.listen(16)
while True:
    s.accept()[0].close()
' "$address" > /dev/null 2>&1 &
  for i in $(seq 50); do timeout 1 bash -c "exec 3<>/dev/tcp/$address/6443" 2>/dev/null && break; sleep 0.1; done
fi
echo "tartlab-output token=$(cat /var/lib/k3s-token)"
echo "tartlab-output url=https://$TARTLAB_NODE:6443"
"#;

pub fn k3s_lab() -> Lab {
    let lab = Lab::new(K3S_STAND_IN);
    std::fs::create_dir_all(lab.lab.join("files")).unwrap();
    std::fs::create_dir_all(lab.lab.join("scripts")).unwrap();
    lab.write("files/motd", "welcome to the k3s lab\n");
    lab.write("scripts/server.sh", SERVER_SH);
    lab
}
