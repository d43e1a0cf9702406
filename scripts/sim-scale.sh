#!/usr/bin/env bash
# Measures the simulator at scale: N VMs (default 20) cloned, booted in parallel until each
# answers an SSH login (admin/admin), then stopped in parallel. Prints one line per figure.
# Usage: scripts/sim-scale.sh [N]    (TART_SIM_BOOT_MS defaults to 3000, as in tart-sim)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
bash scripts/install-deps.sh
cargo build --quiet --release -p tart-sim
work=$(mktemp -d /tmp/tart-sim-scale.XXXXXX)
mkdir -p "$work/bin"
ln -s "$PWD/target/release/tart-sim" "$work/bin/tart"
# tart finds `softnet` on PATH for the softnet network modes: tart-sim answers as it.
ln -s "$PWD/target/release/tart-sim" "$work/bin/softnet"
export PATH="$work/bin:$PATH" TART_HOME="$work/home" CI=true
trap '"$PWD/target/release/tart-sim" reap >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
ssh_opts=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5)
now() { date +%s%N; }
since() { local ms=$(( ($(now) - $1) / 1000000 )); printf '%d.%02d' $((ms / 1000)) $((ms % 1000 / 10)); }

tart pull ghcr.io/cirruslabs/ubuntu:latest >/dev/null
t0=$(now)
for i in $(seq "$n"); do
  tart clone ghcr.io/cirruslabs/ubuntu:latest "vm-$i"
  tart set "vm-$i" --random-mac
done
clone_s=$(since "$t0")

t0=$(now)
for i in $(seq "$n"); do
  setsid tart run "vm-$i" --no-graphics >"$work/vm-$i.log" 2>&1 </dev/null &
done
login() {
  local ip
  ip=$(tart ip "vm-$1" --wait 120)
  for _ in $(seq 300); do
    sshpass -p admin ssh "${ssh_opts[@]}" "admin@$ip" true 2>/dev/null && return 0
    sleep 0.1
  done
  echo "vm-$1 never accepted a login" >&2; return 1
}
pids=()
for i in $(seq "$n"); do login "$i" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
boot_s=$(since "$t0")

t0=$(now)
pids=()
for i in $(seq "$n"); do tart stop "vm-$i" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
stop_s=$(since "$t0")
left=$(pgrep -fc "$TART_HOME" || true)

echo "vms=$n boot_delay_ms=${TART_SIM_BOOT_MS:-3000}"
echo "clone_and_set_all_s=$clone_s"
echo "boot_to_ssh_login_all_s=$boot_s"
echo "stop_all_s=$stop_s"
echo "processes_left=$left"
