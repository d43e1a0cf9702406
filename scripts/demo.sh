#!/usr/bin/env bash
# Demo on the simulator: the seed report's 9-VM, 3-cluster lab (examples/seed-lab.yaml)
# brought up by tartlab against tart-sim installed as `tart` on a private PATH. Shows the
# seed's BUG-001 being impossible, `tartlab up`, `status`, a login into one node with the lab
# key and the pinned host key, a converged re-run, and `tartlab down`.
#
# The guests are tart-sim's systemd kind (a Debian root with systemd as PID 1 and sshd
# socket-activated, as on the cirruslabs Ubuntu image); TART_SIM_GUEST=light runs the same
# demo on the light guests (crates/tart-sim/README.md, "The guests").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

cargo build --quiet --workspace
repo=$PWD
work=$(mktemp -d /tmp/tartlab-demo.XXXXXX)
mkdir -p "$work/bin" "$work/lab"
ln -s "$repo/target/debug/tart-sim" "$work/bin/tart"
# tart finds `softnet` on PATH for the softnet network modes: tart-sim answers as it.
ln -s "$repo/target/debug/tart-sim" "$work/bin/softnet"
cp examples/seed-lab.yaml "$work/lab/tartlab.yaml"
export PATH="$work/bin:$PATH" TART_HOME="$work/tart-home" TART_SIM_BOOT_MS="${TART_SIM_BOOT_MS:-2000}"
export TART_SIM_GUEST="${TART_SIM_GUEST:-systemd}"
# tartlab reads the simulator's DHCP lease file as it reads /var/db/dhcpd_leases on a Mac.
export TARTLAB_DHCP_LEASES="$TART_HOME/sim/dhcpd_leases"
tartlab() { "$repo/target/debug/tartlab" "$@"; }
cleanup() {
  "$repo/target/debug/tart-sim" reap >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work/lab"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "the seed's BUG-001: tart run has no --config (exit 64); tartlab only passes what tart run --help lists"
tart pull ghcr.io/cirruslabs/ubuntu:latest | grep -v '%$'
tart clone ghcr.io/cirruslabs/ubuntu:latest bug-001
tart run bug-001 --config user-data=x --no-graphics || echo "(exit $?)"
tart delete bug-001
step "tartlab plan (nothing exists yet)"
tartlab plan
step "tartlab up: 9 VMs in 3 clusters, in parallel"
time tartlab up
step "tartlab status"
tartlab status
ip=$(sed -n '/"dev-worker-1"/,/}/s/.*"ip": "\(.*\)".*/\1/p' .tartlab/state.json)
step "ssh into dev-worker-1 ($ip) as devops, with the lab key and its pinned host key"
ssh -i .tartlab/id_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
  -o UserKnownHostsFile=.tartlab/known_hosts -o HostKeyAlias=dev-worker-1 "devops@$ip" \
  'echo "hostname: $(hostnamectl --static), user: $(whoami), machine-id: $(cat /etc/machine-id), PID 1: $(ps -p 1 -o comm=)"; grep -A4 "BEGIN tartlab" /etc/hosts'
step "tartlab up again: converged, nothing to do"
time tartlab up
step "tartlab down --yes (on a terminal, down lists what it deletes and asks)"
tartlab down --yes
step "tart list --source local (empty)"
tart list --source local
