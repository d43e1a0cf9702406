//! The connectivity check: after a node (or one of its peers) booted, the node itself sends
//! an ICMP echo to each node in its `hosts` scope, from inside the guest, and opens TCP port
//! 22 of a peer that does not answer (so the peers' sshd starts nothing for most), so a lab
//! whose nodes cannot talk fails loudly here (stage `network`) instead of in a step that
//! waits for a peer until it times out. At most `MAX_PEERS` peers per node (its own cluster
//! first, then the others, starting after the node itself so the load spreads), each probe
//! tried for about 3 s (a refused port is tried again: a reloading sshd closes it for a
//! moment), all at once: bounded in count and in time however big the lab. The block the
//! hosts stage decided on is written by the same remote command, first (one command per node
//! for both); a node with neither a block to write nor a peer to reach runs nothing.
use std::collections::BTreeMap;

use super::hosts::{self, WRITE_BLOCK};
use super::{command_failure, show_note, NodeRun, NodeStage};
use crate::engine::events::{Stage, Wait};
use crate::engine::inputs;
use crate::engine::remote::{as_root, as_root_locked, DONE_PREFIX};
use crate::engine::{Context, Failure};
use crate::guest::runner::Command;
use crate::guest::ssh::{Reply, Stream};
use crate::lab::Node;
use crate::provider::BoxFuture;

/// How many peers one node probes at most.
pub const MAX_PEERS: usize = 8;

/// Arguments: `NAME=IP` per peer. Prints `tartlab-reach: NAME yes icmp|yes tcp|no` for each.
/// First one ICMP echo to every peer at once, which the peer's kernel answers (no process
/// starts there): with `ping` where the image has it (one process per peer, its exit status
/// the answer), else one python3 that sends them all;
/// a peer that does not answer within 1 s (a guest that drops ICMP, or an image with
/// neither) gets a TCP connection to its sshd, tried again for about 3 s when refused: a
/// peer's sshd that has just been told to reload its new host keys closes its port for a
/// moment. Only those peers cost a subshell here; an answered peer's line is printed at once.
const PROBE: &str = r#"icmp_answers() {
  if command -v ping >/dev/null 2>&1; then
    local ip pids=() ips=("$@") i
    for ip in "$@"; do ping -n -q -c 1 -W 1 "$ip" >/dev/null 2>&1 & pids+=($!); done
    for i in "${!pids[@]}"; do wait "${pids[$i]}" && echo "${ips[$i]}"; done
  elif command -v python3 >/dev/null 2>&1; then
    timeout 3 python3 -c "$(cat <<'PY'
import os, select, socket, struct, sys, time
ips = sys.argv[1:]
try:
    s, raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP), False
except OSError:
    s, raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), True
ident = os.getpid() & 0xFFFF
def packet(seq):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"tartlab"
    total = sum(struct.unpack("!%dH" % (len(body) // 2), body[: len(body) // 2 * 2]))
    total += body[-1] << 8 if len(body) % 2 else 0
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return body[:2] + struct.pack("!H", ~total & 0xFFFF) + body[4:]
for seq, ip in enumerate(ips):
    try:
        s.sendto(packet(seq), (ip, 0))
    except OSError:
        pass
answered, deadline = set(), time.monotonic() + 1
while len(answered) < len(set(ips)):
    left = deadline - time.monotonic()
    if left <= 0 or not select.select([s], [], [], left)[0]:
        break
    try:
        data, (source, _) = s.recvfrom(2048)
    except OSError:
        continue
    if raw:
        data = data[(data[0] & 0xF) * 4 :]
        if len(data) < 8 or struct.unpack("!H", data[4:6])[0] != ident:
            continue
    if len(data) >= 8 and data[0] == 0 and source in ips:
        answered.add(source)
print("\n".join(sorted(answered)))
PY
)" "$@" 2>/dev/null || true
  fi
}
ips=()
for target in "$@"; do ips+=("${target#*=}"); done
answered=$'\n'$(icmp_answers "${ips[@]}")$'\n'
for target in "$@"; do
  name=${target%%=*} ip=${target#*=}
  if [[ $answered == *$'\n'"$ip"$'\n'* ]]; then
    echo "tartlab-reach: $name yes icmp"
    continue
  fi
  (
    verdict=no
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
      if timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/22"' tartlab "$ip" 2>/dev/null; then
        verdict="yes tcp"
        break
      fi
      sleep 0.3
    done
    echo "tartlab-reach: $name $verdict"
  ) &
done
wait
"#;

pub struct CheckNetwork;

impl NodeStage for CheckNetwork {
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            if !run.provisioning(ctx) {
                return Ok(());
            }
            let hosts = run.pending_hosts.take();
            let changed = run.booted || hosts.is_some();
            let peers = if ctx.lab.file.network_check && changed {
                peers_to_probe(ctx, &run.node)
            } else {
                Vec::new()
            };
            let vm = run.node.vm_name.clone();
            let ready = if peers.is_empty() {
                Vec::new()
            } else {
                run.release_slot();
                ctx.reporter.waiting(
                    &vm,
                    Stage::Network,
                    Wait::Peers {
                        nodes: peers.clone(),
                    },
                    &format!("waiting for {} to answer SSH", super::names(&peers)),
                );
                ctx.reachable.settled(&peers).await
            };
            if hosts.is_none() && ready.is_empty() {
                return Ok(());
            }
            run.hold_slot(ctx).await;
            let guest = run.guest(ctx).await?;
            let targets: Vec<String> = ready
                .iter()
                .map(|(peer, ip)| format!("{peer}={ip}"))
                .collect();
            let out = match hosts {
                Some(block) => {
                    let what = if ready.is_empty() {
                        "the /etc/hosts block"
                    } else {
                        "the /etc/hosts block and the connectivity check"
                    };
                    ctx.reporter
                        .started(&vm, Stage::Hosts, &format!("{} line(s)", block.lines));
                    announce(ctx, &vm, ready.len());
                    let script =
                        format!("set -euo pipefail\nblock=$1\nshift\n{WRITE_BLOCK}{PROBE}");
                    let mut args = vec![block.block.as_str()];
                    args.extend(targets.iter().map(String::as_str));
                    let line = as_root_locked(what, &script, &args);
                    let mut written = false;
                    let result = guest
                        .run(Command::plain(what, &line), &mut |stream, text| {
                            if stream == Stream::Stderr {
                                show_note(ctx, &vm, Stage::Hosts, what, text);
                            } else if text.strip_prefix(DONE_PREFIX) == Some("hosts") {
                                written = true;
                            }
                            Reply::Nothing
                        })
                        .await;
                    if written {
                        hosts::record(ctx, run, block)?;
                    }
                    let stage = if written {
                        Stage::Network
                    } else {
                        Stage::Hosts
                    };
                    result.map_err(|e| command_failure(ctx, &vm, stage, what, e))?
                }
                None => {
                    announce(ctx, &vm, ready.len());
                    // As root: an ICMP socket needs it where `ping` is missing.
                    let args: Vec<&str> = targets.iter().map(String::as_str).collect();
                    let line = as_root(PROBE, &args);
                    let what = "the connectivity check";
                    guest
                        .run_plain(Command::plain(what, &line))
                        .await
                        .map_err(|e| command_failure(ctx, &vm, Stage::Network, what, e))?
                }
            };
            if ready.is_empty() {
                return Ok(());
            }
            // Only the peers asked about: any other name the guest printed is dropped.
            let mut matrix = reached(&out.stdout_text());
            matrix.retain(|peer, _| ready.iter().any(|(asked, _)| asked == peer));
            run.report.network = Some(matrix.clone());
            let unreached: Vec<String> = ready
                .iter()
                .filter(|(peer, _)| matrix.get(peer) != Some(&true))
                .map(|(peer, ip)| format!("{peer} ({ip})"))
                .collect();
            if unreached.is_empty() {
                ctx.reporter.done(
                    &vm,
                    Stage::Network,
                    &format!("reaches {} peer(s)", ready.len()),
                );
                return Ok(());
            }
            Err(unreachable(ctx, &run.node, &unreached))
        })
    }
}

/// Says that the check starts, when it has peers to reach.
fn announce(ctx: &Context, vm: &str, peers: usize) {
    if peers > 0 {
        ctx.reporter.started(
            vm,
            Stage::Network,
            &format!("reaching {peers} peer(s): an ICMP echo, else TCP port 22"),
        );
    }
}

/// The peers a node probes: its `hosts` scope without itself, its own cluster first, each
/// group starting after the node in lab order; at most `MAX_PEERS`.
pub fn peers_to_probe(ctx: &Context, node: &Node) -> Vec<String> {
    let scope = inputs::hosts_scope(&ctx.lab.file, &ctx.lab.nodes, node);
    let me = scope.iter().position(|vm| vm == &node.vm_name).unwrap_or(0);
    let rotated: Vec<&String> = scope[me..]
        .iter()
        .chain(&scope[..me])
        .filter(|vm| **vm != node.vm_name)
        .collect();
    let same_cluster = |vm: &&String| ctx.node(vm).is_some_and(|n| n.cluster == node.cluster);
    rotated
        .iter()
        .filter(|vm| same_cluster(vm))
        .chain(rotated.iter().filter(|vm| !same_cluster(vm)))
        .take(MAX_PEERS)
        .map(|vm| vm.to_string())
        .collect()
}

/// `tartlab-reach: NAME yes|no` lines, as a map.
fn reached(stdout: &str) -> BTreeMap<String, bool> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("tartlab-reach: "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, verdict)| (name.to_string(), verdict.split(' ').next() == Some("yes")))
        .collect()
}

/// The failure for peers a node cannot reach, with the mode that would work.
fn unreachable(ctx: &Context, node: &Node, unreached: &[String]) -> Failure {
    let mode = &node.network;
    let message = format!(
        "{} cannot reach {}: no answer to an ICMP echo, nothing on TCP port 22 (network mode {mode})",
        node.vm_name,
        unreached.join(", ")
    );
    let same_host_only = ctx.provider.capabilities().peers == crate::provider::Peers::SameHost;
    let hint = if same_host_only {
        format!(
            "{}'s VMs reach each other only when they run on the same host: pin the nodes that talk to one host (`placement: {{ labels: ... }}` on their cluster, with `hosts: cluster`; docs/NETWORKS.md, \"Networks on a fleet\"), or use bridged networking on one LAN",
            ctx.provider.name()
        )
    } else if mode.reaches_peers() {
        "the network mode lets VMs reach each other: look for a firewall in the guests (`sudo iptables -L`, `sudo nft list ruleset`) and check that sshd listens on every address".to_string()
    } else {
        format!(
            "in mode {} macOS keeps VMs apart (vmnet's bridge isolation): use the default network (leave `network` out: softnet with allow: [0.0.0.0/0]) or bridged; docs/NETWORKS.md says what each mode allows{}",
            mode.kind(),
            if ctx.lab.file.network_check {
                "; `network_check: false` turns this check off"
            } else {
                ""
            }
        )
    };
    Failure::new(Stage::Network, message, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_read_per_peer() {
        let m = reached(
            "tartlab-reach: a yes icmp\nnoise\ntartlab-reach: b no\ntartlab-reach: c yes tcp\ntartlab-reach: d yesno\n",
        );
        assert_eq!(m.get("a"), Some(&true));
        assert_eq!(m.get("b"), Some(&false));
        assert_eq!(m.get("c"), Some(&true));
        assert_eq!(m.get("d"), Some(&false));
        assert_eq!(m.len(), 4);
    }
}
