#!/usr/bin/env bash
# Demo on the simulator: builds, installs tart-sim as `tart` on a private PATH, boots two
# VMs, logs into each over SSH with the image's admin/admin, shows `tart list`, and tears
# everything down. (Later this becomes a tartlab lab; for now it shows the ground it runs on.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

cargo build --quiet --workspace
work=$(mktemp -d /tmp/tartlab-demo.XXXXXX)
mkdir -p "$work/bin"
ln -s "$PWD/target/debug/tart-sim" "$work/bin/tart"
export PATH="$work/bin:$PATH" TART_HOME="$work/tart-home" TART_SIM_BOOT_MS="${TART_SIM_BOOT_MS:-2000}"
cleanup() {
  "$PWD/target/debug/tart-sim" reap >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
ssh_opts=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5)

step "tart --version (the simulator)"; tart --version
step "the seed's BUG-001, reproduced: tart run has no --config"
tart pull ghcr.io/cirruslabs/ubuntu:latest | grep -v '%$'
tart clone ghcr.io/cirruslabs/ubuntu:latest demo-1
tart run demo-1 --config user-data=x --no-graphics || echo "(exit $?)"

tart clone ghcr.io/cirruslabs/ubuntu:latest demo-2
for vm in demo-1 demo-2; do
  tart set "$vm" --random-mac --cpu 2 --memory 2048
  step "tart run $vm --no-graphics (detached, log in $work/$vm.run.log)"
  setsid tart run "$vm" --no-graphics >"$work/$vm.run.log" 2>&1 </dev/null &
done
for vm in demo-1 demo-2; do
  ip=$(tart ip "$vm" --wait 60)
  step "$vm has IP $ip; logging in as admin/admin"
  for _ in $(seq 50); do sshpass -p admin ssh "${ssh_opts[@]}" "admin@$ip" true 2>/dev/null && break; sleep 0.2; done
  sshpass -p admin ssh "${ssh_opts[@]}" "admin@$ip" \
    "sudo hostnamectl set-hostname $vm && echo \"hostname: \$(hostname), user: \$(whoami), machine-id: \$(cat /etc/machine-id)\""
done
step "tart list"; tart list
for vm in demo-1 demo-2; do
  step "tart stop $vm && tart delete $vm"
  tart stop "$vm"
  tart delete "$vm"
  cat "$work/$vm.run.log"
done
step "tart list --source local (empty)"; tart list --source local
