#!/usr/bin/env bash
# Issue 29's measure, once: the nine-node seed lab with a provisioning step that takes
# STEP_SECS (30) against tart-sim with TART_SIM_BOOT_MS (5000) boots; `snapshot save` and
# `snapshot restore` of the whole lab against `down` + `up` of the same lab. Prints one line
# per figure (`figure<TAB>seconds`). Uses the binaries in TARGET (default target/release).
#
# Usage: scripts/bench/snapshots.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
target=${TARGET:-$repo/target/release}
work=$(mktemp -d /tmp/tartlab-snapbench.XXXXXX)
mkdir -p "$work/bin" "$work/lab"
ln -s "$target/tart-sim" "$work/bin/tart"
ln -s "$target/tart-sim" "$work/bin/softnet"
export TART_HOME="$work/tart-home" TART_SIM_BOOT_MS=${TART_SIM_BOOT_MS:-5000} CI=true
export TARTLAB_DHCP_LEASES="$TART_HOME/sim/dhcpd_leases" TARTLAB_DATA_DIR="$work/data"
export PATH="$work/bin:$PATH"
cleanup() {
  "$target/tart-sim" reap >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
{
  cat examples/seed-lab.yaml
  echo "provision:"
  echo "  - name: slow"
  echo "    run: sleep ${STEP_SECS:-30}; echo done >> /var/tmp/slow"
} > "$work/lab/tartlab.yaml"
cd "$work/lab"
timed() {
  local name=$1
  shift
  local start end
  start=$(date +%s.%N)
  "$target/tartlab" "$@" > "$work/out" 2>&1 || { cat "$work/out"; exit 1; }
  end=$(date +%s.%N)
  printf '%s\t%.1f\n' "$name" "$(echo "$end - $start" | bc)"
}
timed "up (fresh, 9 nodes)" up
timed "snapshot save (9 nodes)" snapshot save bench
timed "snapshot restore (9 nodes)" snapshot restore bench
timed "down --keep-snapshots" down --keep-snapshots
timed "snapshot restore from nothing (9 nodes)" snapshot restore bench
timed "down" down
timed "up again (provisions again)" up
