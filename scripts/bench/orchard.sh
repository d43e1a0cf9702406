#!/usr/bin/env bash
# Issue 33's measure: the seed lab (examples/seed-lab.yaml, 9 nodes in 3 clusters) on a
# fleet of the real Orchard on this machine (a controller and three workers running
# Orchard's tart runtime, each with its own TART_HOME and tart-sim as `tart`, one cluster
# pinned to each worker) against the same lab on the local tart provider, with the same
# TART_SIM_BOOT_MS (5000); POST to SSH per VM on the fleet (from events.jsonl: a node's
# `create` started to its `ssh` done); and `status` of a 30-VM lab on the fleet. Each figure
# is the median of RUNS (3) runs with min and max; POST to SSH is over every VM of every
# up(9). Prints one line per figure (`figure<TAB>median<TAB>min<TAB>max<TAB>unit`, as
# scripts/bench.sh). Uses the release binaries in TARGET (default target/release, built
# here unless NO_BUILD=1) and the patched orchard (scripts/install-orchard.sh).
#
# Usage: scripts/bench/orchard.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
target=${TARGET:-$repo/target/release}
runs=${RUNS:-3}
boot_ms=${TART_SIM_BOOT_MS:-5000}
[ "${NO_BUILD:-0}" = 1 ] || cargo build --release --quiet --workspace
bash scripts/install-orchard.sh >/dev/null
orchard=$(bash scripts/install-orchard.sh --path)
image=ghcr.io/cirruslabs/ubuntu:latest

work=$(mktemp -d /tmp/tartlab-orchardbench.XXXXXX)
mkdir -p "$work/bin"
ln -s "$target/tart-sim" "$work/bin/tart"
ln -s "$target/tart-sim" "$work/bin/softnet"
export PATH="$work/bin:$PATH" TART_SIM_BOOT_MS=$boot_ms CI=true TARTLAB_DATA_DIR="$work/data"
unset ORCHARD_URL ORCHARD_SERVICE_ACCOUNT_NAME ORCHARD_SERVICE_ACCOUNT_TOKEN
tartlab="$target/tartlab"
workers=(w1 w2 w3)
pids=()
cleanup() {
  # Exactly the processes started here (each in its own group, with its `tart run`s).
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  for home in "$work"/*/tart-home "$work/local-home"; do
    [ -d "$home" ] && TART_HOME=$home "$target/tart-sim" reap >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The controller, on 127.0.0.1 only, and an account for tartlab.
port=$(free_port)
url="http://127.0.0.1:$port"
admin_token="admin-$RANDOM$RANDOM"
mkdir -p "$work/controller-home"
ORCHARD_HOME="$work/controller-home" ORCHARD_BOOTSTRAP_ADMIN_TOKEN=$admin_token setsid \
  "$orchard" controller run --insecure-no-tls --listen "127.0.0.1:$port" \
  --listen-ssh "127.0.0.1:$(free_port)" --data-dir "$work/controller-data" \
  </dev/null >"$work/controller.log" 2>&1 &
pids+=($!)
api() { curl -sf -u "bootstrap-admin:$admin_token" -H 'Content-Type: application/json' "$@"; }
for _ in $(seq 300); do api "$url/v1/controller/info" >/dev/null 2>&1 && break; sleep 0.1; done
api "$url/v1/controller/info" >/dev/null || { tail -20 "$work/controller.log" >&2; exit 1; }
token="tartlab-$RANDOM$RANDOM"
api -X POST "$url/v1/service-accounts" \
  -d "{\"name\": \"tartlab\", \"token\": \"$token\", \"roles\": [\"compute:read\", \"compute:write\"]}" >/dev/null
api -X POST "$url/v1/service-accounts" \
  -d "{\"name\": \"workers\", \"token\": \"w-$RANDOM$RANDOM\", \"roles\": [\"compute:read\", \"compute:write\"]}" >/dev/null
bootstrap=$(ORCHARD_HOME="$work/controller-home" "$orchard" get bootstrap-token workers)
export TARTLAB_BENCH_TOKEN=$token

# Three workers, each with its own TART_HOME (the image already pulled there, as bench.sh
# pulls it for the local runs).
for w in "${workers[@]}"; do
  mkdir -p "$work/$w/orchard-home"
  TART_HOME="$work/$w/tart-home" "$target/tart-sim" pull "$image" >/dev/null
  echo "$bootstrap" | ORCHARD_HOME="$work/$w/orchard-home" TART_HOME="$work/$w/tart-home" \
    ORCHARD_WORKER_RUNTIME=tart setsid "$orchard" worker run "$url" --name "$w" \
    --bootstrap-token-stdin --labels "worker=$w" \
    >"$work/$w/worker.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 300); do
  [ "$(api "$url/v1/workers" | jq length)" = 3 ] && break
  sleep 0.1
done
[ "$(api "$url/v1/workers" | jq length)" = 3 ] || { tail -20 "$work"/w*/worker.log >&2; exit 1; }

provider="provider:\n  orchard:\n    url: $url\n    service_account: tartlab\n    token_env: TARTLAB_BENCH_TOKEN\n    arch: amd64\n"
# The seed lab on the fleet: the provider, and each cluster pinned to a worker.
fleet_lab() {
  sed -e "s|^lab: seed$|lab: seed\n$provider|" \
    -e 's|^  - name: dev$|&\n    placement: { labels: { worker: w1 } }|' \
    -e 's|^  - name: stg$|&\n    placement: { labels: { worker: w2 } }|' \
    -e 's|^  - name: prod$|&\n    placement: { labels: { worker: w3 } }|' examples/seed-lab.yaml
}
mkdir -p "$work/local" "$work/fleet" "$work/fleet30"
cp examples/seed-lab.yaml "$work/local/tartlab.yaml"
fleet_lab > "$work/fleet/tartlab.yaml"
# 30 nodes: ten per worker.
{
  echo "lab: status30"
  printf '%b' "$provider"
  echo "clusters:"
  for w in "${workers[@]}"; do
    echo "  - name: c$w"
    echo "    placement: { labels: { worker: $w } }"
    echo "    nodes: [{ name: master }, { name: worker, count: 9 }]"
  done
} > "$work/fleet30/tartlab.yaml"

# timed NAME DIR ARGS...: one run's wall seconds appended to $work/t-NAME.
timed() {
  local name=$1 dir=$2
  shift 2
  local start end
  start=$(date +%s.%N)
  (cd "$dir" && "$tartlab" "$@") >"$work/out" 2>&1 || { echo "bench: tartlab $* in $dir failed:" >&2; tail -30 "$work/out" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc >> "$work/t-$name"
}
# POST to SSH of each VM of the last up in DIR, in seconds, appended to $work/t-post-ssh.
post_to_ssh() {
  jq -rs '[.[] | select(.node != null)] | group_by(.node)[]
      | [(.[] | select(.stage == "create" and .status == "started") | .elapsed_ms),
         (.[] | select(.stage == "ssh" and .status == "done") | .elapsed_ms)]
      | select(length == 2) | (.[1] - .[0]) / 1000' "$1/.tartlab/events.jsonl" >> "$work/t-post-ssh"
}

export TART_HOME="$work/local-home" TARTLAB_DHCP_LEASES="$work/local-home/sim/dhcpd_leases"
"$target/tart-sim" pull "$image" >/dev/null
for r in $(seq "$runs"); do
  echo "bench: local up(9), run $r/$runs" >&2
  timed local9 "$work/local" up
  (cd "$work/local" && "$tartlab" down >/dev/null 2>&1)
  echo "bench: fleet up(9) on 3 workers, run $r/$runs" >&2
  rm -f "$work/fleet/.tartlab/events.jsonl"
  timed fleet9 "$work/fleet" up
  post_to_ssh "$work/fleet"
  timed fleetdown9 "$work/fleet" down
done
echo "bench: fleet up(30) for status" >&2
timed fleet30 "$work/fleet30" up
for r in $(seq "$runs"); do timed status30 "$work/fleet30" status; done
timed fleetdown30 "$work/fleet30" down

summary() { sort -g "$work/t-$1" | awk '{ v[NR] = $1 } END { printf "%.2f\t%.2f\t%.2f", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
median() { summary "$1" | cut -f1; }
printf '%s\t%s\ts\n' "local up(9) (tart provider)" "$(summary local9)"
printf '%s\t%s\ts\n' "fleet up(9) on 3 workers" "$(summary fleet9)"
printf '%s\t%s\t-\t-\tx\n' "fleet up(9) / local up(9)" "$(awk "BEGIN { printf \"%.2f\", $(median fleet9) / $(median local9) }")"
printf '%s\t%s\ts\n' "fleet: POST to SSH per VM (in up(9))" "$(summary post-ssh)"
printf '%s\t%s\ts\n' "fleet down(9)" "$(summary fleetdown9)"
printf '%s\t%s\ts\n' "fleet up(30) on 3 workers" "$(summary fleet30)"
printf '%s\t%s\ts\n' "fleet status on 30 VMs" "$(summary status30)"
printf '%s\t%s\ts\n' "fleet down(30)" "$(summary fleetdown30)"
