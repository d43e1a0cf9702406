#!/usr/bin/env bash
# The seed report's fixed approach (shared/seed/, section 5: `setup_cluster.sh`), as faithfully
# as the report describes it, for a side-by-side benchmark with tartlab. Per VM, one after
# another: stop and delete any old VM, clone, `tart run --no-graphics &` with its output in a
# log, poll `tart ip` until it answers, then sshpass + ssh to run `hostnamectl` and `useradd`.
# Errors stop the script (`set -euo pipefail`); stderr goes to the logs, never to /dev/null.
#
# Usage: seed-baseline.sh LOG_DIR CLUSTER...   (each cluster: one master, two workers)
set -euo pipefail
log_dir=$1
shift
image=ghcr.io/cirruslabs/ubuntu:latest
mkdir -p "$log_dir"
ssh_opts=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5)

names=()
for cluster in "$@"; do
  names+=("$cluster-master" "$cluster-worker-1" "$cluster-worker-2")
done

for i in $(seq 0 $((${#names[@]} - 1))); do
  vm=${names[$i]}
  # Clean up an old VM of that name first.
  tart stop "$vm" >>"$log_dir/$vm.log" 2>&1 || true
  tart delete "$vm" >>"$log_dir/$vm.log" 2>&1 || true
  tart clone "$image" "$vm" >>"$log_dir/$vm.log" 2>&1
  tart run "$vm" --no-graphics >>"$log_dir/$vm.run.log" 2>&1 &
  # Wait for the IP by polling `tart ip` (instead of the old fixed `sleep 60`).
  ip=""
  for _ in $(seq 1 300); do
    if ip=$(tart ip "$vm" 2>>"$log_dir/$vm.log"); then break; fi
    sleep 1
  done
  [ -n "$ip" ] || { echo "no IP for $vm" >&2; exit 1; }
  # sshd comes up a moment after the IP: retry the first login.
  for _ in $(seq 1 300); do
    if sshpass -p admin ssh "${ssh_opts[@]}" "admin@$ip" true 2>>"$log_dir/$vm.log"; then break; fi
    sleep 1
  done
  sshpass -p admin ssh "${ssh_opts[@]}" "admin@$ip" \
    "sudo hostnamectl set-hostname $vm && (id -u devops >/dev/null 2>&1 || sudo useradd -m -s /bin/bash devops)" \
    >>"$log_dir/$vm.log" 2>&1
  echo "$vm: $ip"
done
