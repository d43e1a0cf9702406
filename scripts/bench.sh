#!/usr/bin/env bash
# Benchmarks tartlab against tart-sim (TART_SIM_BOOT_MS=5000 by default) and, side by side,
# the seed report's sequential shell approach (scripts/bench/seed-baseline.sh). Each figure is
# the median of RUNS (default 3) whole-process runs with min and max, timed with GNU time
# (wall, peak RSS, CPU). Writes docs/PERFORMANCE.md; the output ends with one line per figure
# (`figure<TAB>median<TAB>min<TAB>max<TAB>unit`) so two runs can be compared.
#
# Usage: scripts/bench.sh [--quick | --up]
#   --quick: 1 run each, no 100-VM, Orchard or snapshot figures.
#   --up:    only what issue 31 is about, RUNS times each: what a user waits for in up(1)
#            (against the boot delay and against the simulator's boot to SSH), where up(1)'s
#            time goes (from events.jsonl), up(9), up(100), the connectivity check's cost at
#            9 and 100, the remote commands per new VM, and up(100)'s wall against the floor
#            this machine sets. Prints figure lines only; writes no docs.
# BENCH_BIN=DIR: the tartlab and tart-sim binaries to measure (say, an older build's), with
# no build; default: target/release, built first.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
quick=0 up_only=0
[ "${1:-}" = --quick ] && quick=1
[ "${1:-}" = --up ] && up_only=1
runs=${RUNS:-3}
[ $quick = 1 ] && runs=1
boot_ms=${TART_SIM_BOOT_MS:-5000}

bash scripts/install-deps.sh
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
if [ -n "${BENCH_BIN:-}" ]; then
  bin=$(cd "$BENCH_BIN" && pwd)
else
  cargo build --release --quiet --workspace
  bin=$repo/target/release
fi

work=$(mktemp -d /tmp/tartlab-bench.XXXXXX)
mkdir -p "$work/bin" "$work/labs"
ln -s "$bin/tart-sim" "$work/bin/tart"
# tart finds `softnet` on PATH for the softnet network modes: tart-sim answers as it.
ln -s "$bin/tart-sim" "$work/bin/softnet"
# A second PATH whose `tart` counts its invocations, for the spawn count.
mkdir -p "$work/counting"
cat > "$work/counting/tart" <<EOF
#!/bin/bash
echo "\$1" >> "$work/tart-calls"
exec -a tart "$bin/tart-sim" "\$@"
EOF
chmod +x "$work/counting/tart"
export TART_HOME="$work/tart-home" TART_SIM_BOOT_MS=$boot_ms CI=true
# tartlab reads the DHCP lease file as it reads /var/db/dhcpd_leases on a Mac.
export TARTLAB_DHCP_LEASES="$TART_HOME/sim/dhcpd_leases"
export PATH="$work/bin:$PATH"
tartlab="$bin/tartlab"
cleanup() {
  # Every TART_HOME the bench made (the guest kinds have their own): nothing outlives it.
  for home in "$TART_HOME" "$work"/home-*; do
    [ -d "$home" ] && TART_HOME=$home "$bin/tart-sim" reap >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# A lab of N nodes with the seed's provisioning (hostname, one user, /etc/hosts per
# cluster): clusters of up to 10 nodes (one master, the rest workers).
make_lab() {
  local n=$1 dir=$work/labs/lab$1${2:-} c=1 left=$1
  mkdir -p "$dir"
  {
    echo "lab: bench$n"
    echo "hosts: cluster"
    # A second lab without the connectivity check, to measure what the check costs (the
    # systemd-guest lab has its own directory, so its state is its own).
    [ "${2:-}" = nocheck ] && echo "network_check: false"
    echo "users:"
    echo "  - { name: devops, groups: [sudo], sudo: nopasswd, shell: /bin/bash }"
    echo "clusters:"
    while [ "$left" -gt 0 ]; do
      local size=$((left < 10 ? left : 10))
      echo "  - name: c$c"
      echo "    nodes:"
      echo "      - { name: master, role: master }"
      if [ "$size" -gt 1 ]; then echo "      - { name: worker, role: worker, count: $((size - 1)) }"; fi
      left=$((left - size)); c=$((c + 1))
    done
  } > "$dir/tartlab.yaml"
  echo "$dir"
}

# The whole machine's busy CPU time so far, in seconds (guests, simulator, sshd included).
machine_cpu() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f\n", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat; }

# measure NAME CMD...: one timed run; appends "wall rss_kb cpu_s machine_cpu_s" to $work/NAME.
measure() {
  local name=$1; shift
  local before; before=$(machine_cpu)
  /usr/bin/time -f "%e %M %U %S" -o "$work/time.out" "$@" >"$work/last.out" 2>"$work/last.err" || {
    echo "bench: '$*' failed:" >&2; tail -20 "$work/last.err" >&2; tail -5 "$work/last.out" >&2; exit 1; }
  local after; after=$(machine_cpu)
  awk -v m="$(awk "BEGIN { print $after - $before }")" '{ printf "%s %s %.2f %.2f\n", $1, $2, $3 + $4, m }' "$work/time.out" >> "$work/$name"
}

# summary NAME COLUMN: "median min max" of a column (1 wall, 2 rss, 3 cpu, 4 machine cpu).
summary() {
  cut -d' ' -f"$2" "$work/$1" | sort -g | awk '{ v[NR] = $1 } END { printf "%s %s %s\n", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

# floor NAME DELAY: per run, about the least wall time this machine allowed it: DELAY plus
# every process's CPU during the run over the cores; then "median min max" of that floor
# and of the wall over it. DELAY is the boot delay for up(9), whose nine VMs start together
# and leave the machine idle through it (tart-sim starts a guest only once its lease is
# granted; what runs meanwhile, the clones and `tart run`, makes the floor a little high),
# and 0 for up(100), whose starts spread over the delay.
floor() {
  awk -v c="$(nproc)" -v d="$2" '{ printf "%.2f %.2f\n", d + $4 / c, $1 / (d + $4 / c) }' "$work/$1" > "$work/$1.floor"
  echo "$(summary "$1.floor" 1) $(summary "$1.floor" 2)"
}

sizes="1 9 30 100"
[ $quick = 1 ] && sizes="1 9"
pull_once() { tart pull ghcr.io/cirruslabs/ubuntu:latest >/dev/null; }
pull_once

# The simulator's boot of one VM as a user meets it: from before `tart clone` to the first
# SSH handshake, with the same boot delay (tart-sim grants the lease when the delay ends and
# only then starts the guest's sshd, so this is the delay plus the guest's own start). A
# lab's `up` can be no faster than this; what it takes beyond it is tartlab's.
boot_to_ssh() {
  local vm=boot-floor-$1 start ip=
  start=$(date +%s.%N)
  tart clone ghcr.io/cirruslabs/ubuntu:latest "$vm" >/dev/null
  setsid tart run "$vm" --no-graphics >/dev/null 2>&1 &
  # No lease comes before the delay: poll only from just before its end, so the polling's own
  # processes do not load the machine.
  sleep "$(awk "BEGIN { d = $boot_ms / 1000 - 0.2; print (d > 0 ? d : 0) }")"
  until [ -n "$ip" ]; do
    ip=$(tart ip "$vm" 2>/dev/null || true)
    [ -n "$ip" ] || sleep 0.02
  done
  until ssh-keyscan -T 2 "$ip" >/dev/null 2>&1; do sleep 0.02; done
  awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f 0 0 0\n", e - s }' >> "$work/bootssh"
  tart stop "$vm" >/dev/null 2>&1 || true
  tart delete "$vm" >/dev/null 2>&1 || true
}

if [ $up_only = 1 ]; then
  lines=()
  figure() { lines+=("$(printf '%s\t%s\t%s\t%s\t%s' "$@")"); }
  sub() { awk "BEGIN { printf \"%.2f\", $1 - $2 }"; }
  # A one-node lab without users: what the issue's by-hand measure used.
  dir1=$work/labs/solo; mkdir -p "$dir1"
  printf 'lab: solo\nclusters:\n  - name: c\n    nodes:\n      - { name: solo }\n' > "$dir1/tartlab.yaml"
  dir1u=$(make_lab 1) dir9=$(make_lab 9) nocheck9=$(make_lab 9 nocheck) dir100=$(make_lab 100) nocheck100=$(make_lab 100 nocheck)
  profile_args=()
  for r in $(seq "$runs"); do
    echo "bench --up: run $r/$runs" >&2
    boot_to_ssh "$r"
    (cd "$dir1" && measure solo "$tartlab" up)
    profile_args+=("$work/events-solo-$r.jsonl" "$(tail -1 "$work/solo" | cut -d' ' -f1)")
    cp "$dir1/.tartlab/events.jsonl" "$work/events-solo-$r.jsonl"
    (cd "$dir1" && "$tartlab" down >/dev/null 2>&1)
    (cd "$dir1u" && measure up1 "$tartlab" up && "$tartlab" down >/dev/null 2>&1)
    (cd "$dir9" && rm -rf .tartlab/logs && measure up9 "$tartlab" up)
    if [ "$r" = 1 ]; then
      logins_up=$(cat "$TART_HOME"/vms/*/guest/console.log | grep -c 'Accepted ' || true)
      commands_up=$(cat "$dir9"/.tartlab/logs/*.provision.log | grep -c '^=== ' || true)
    fi
    (cd "$dir9" && "$tartlab" down >/dev/null 2>&1)
    (cd "$nocheck9" && measure nocheck9 "$tartlab" up && "$tartlab" down >/dev/null 2>&1)
    (cd "$dir100" && measure up100 "$tartlab" up && "$tartlab" down >/dev/null 2>&1)
    (cd "$nocheck100" && measure nocheck100 "$tartlab" up && "$tartlab" down >/dev/null 2>&1)
  done
  boot_s=$(awk "BEGIN { print $boot_ms / 1000 }")
  read -r bm blo bhi <<<"$(summary bootssh 1)"
  figure "boot to SSH (clone, run, lease, sshd; no tartlab)" "$bm" "$blo" "$bhi" s
  read -r m lo hi <<<"$(summary solo 1)"
  figure "up(1) wall (one node, no users)" "$m" "$lo" "$hi" s
  figure "up(1) minus the boot delay (one node, no users)" "$(sub "$m" "$boot_s")" "$(sub "$lo" "$boot_s")" "$(sub "$hi" "$boot_s")" s
  figure "up(1) minus the boot to SSH (one node, no users)" "$(sub "$m" "$bm")" - - s
  read -r m1 lo hi <<<"$(summary up1 1)"
  figure "up(1) wall (the bench's lab: one user)" "$m1" "$lo" "$hi" s
  figure "up(1) minus the boot delay (the bench's lab)" "$(sub "$m1" "$boot_s")" "$(sub "$lo" "$boot_s")" "$(sub "$hi" "$boot_s")" s
  read -r m9 lo9 hi9 <<<"$(summary up9 1)"
  read -r m lo hi <<<"$(summary nocheck9 1)"
  figure "up(9) wall" "$m9" "$lo9" "$hi9" s
  figure "up(9)/up(1)" "$(awk "BEGIN { printf \"%.2f\", $m9 / $m1 }")" - - x
  read -r fm flo fhi wm wlo whi <<<"$(floor up9 "$boot_s")"
  figure "up(9): the machine's floor (boot delay + all CPU / $(nproc) cores)" "$fm" "$flo" "$fhi" s
  figure "up(9) wall / the machine's floor" "$wm" "$wlo" "$whi" x
  figure "up(9)/up(1) at the machine's floor" "$(awk "BEGIN { printf \"%.2f\", $fm / $m1 }")" - - x
  figure "up(9) without the connectivity check" "$m" "$lo" "$hi" s
  figure "the connectivity check's cost in up(9)" "$(sub "$m9" "$m")" - - s
  read -r m100 lo100 hi100 <<<"$(summary up100 1)"
  read -r m lo hi <<<"$(summary nocheck100 1)"
  figure "up(100) wall" "$m100" "$lo100" "$hi100" s
  figure "up(100) without the connectivity check" "$m" "$lo" "$hi" s
  figure "the connectivity check's cost in up(100)" "$(sub "$m100" "$m")" - - s
  read -r fm flo fhi wm wlo whi <<<"$(floor up100 0)"
  figure "up(100): the machine's floor (all CPU / $(nproc) cores)" "$fm" "$flo" "$fhi" s
  figure "up(100) wall / the machine's floor" "$wm" "$wlo" "$whi" x
  figure "SSH logins per new VM, up(9)" "$(awk "BEGIN { printf \"%.2f\", $logins_up / 9 }")" - - per-VM
  figure "remote commands per new VM, up(9)" "$(awk "BEGIN { printf \"%.2f\", $commands_up / 9 }")" - - per-VM
  while IFS=$'\t' read -r phase pm plo phi; do
    figure "up(1) profile: $phase" "$pm" "$plo" "$phi" s
  done < <(python3 scripts/bench/up-profile.py "${profile_args[@]}")
  echo
  printf '%s\n' "${lines[@]}"
  exit 0
fi

for r in $(seq "$runs"); do
  echo "bench: boot to SSH without tartlab, run $r/$runs" >&2
  boot_to_ssh "$r"
done

for n in $sizes; do
  dir=$(make_lab "$n")
  for r in $(seq "$runs"); do
    echo "bench: up of $n VMs, run $r/$runs" >&2
    (cd "$dir" && measure "up$n" "$tartlab" up)
    if [ "$n" = 9 ] && [ "$r" = 1 ]; then
      for c in $(seq "$runs"); do (cd "$dir" && measure converged9 "$tartlab" up); done
    fi
    if [ "$n" = 100 ] && [ "$r" = 1 ]; then
      for c in $(seq "$runs"); do (cd "$dir" && measure status100 "$tartlab" status); done
      for c in $(seq "$runs"); do (cd "$dir" && measure exec100 "$tartlab" exec all -- true); done
    fi
    (cd "$dir" && measure "down$n" "$tartlab" down)
  done
  if [ "$n" = 9 ] || [ "$n" = 100 ]; then
    nocheck=$(make_lab "$n" nocheck)
    for r in $(seq "$runs"); do
      echo "bench: up of $n VMs without the connectivity check, run $r/$runs" >&2
      (cd "$nocheck" && measure "nocheck$n" "$tartlab" up)
      (cd "$nocheck" && "$tartlab" down >/dev/null 2>&1)
    done
  fi
done

# Spawns: tart processes per VM for one up of 9 and one converged up.
dir=$(make_lab 9)
rm -rf "$dir/.tartlab/logs"
: > "$work/tart-calls"
(cd "$dir" && PATH="$work/counting:$PATH" "$tartlab" up >/dev/null 2>&1)
spawns_up=$(wc -l < "$work/tart-calls")
# SSH round trips of that up, per new VM: logins sshd accepted (its log is each guest's
# console.log) and remote commands (one `===` header each in the provisioning transcripts).
logins_up=$(cat "$TART_HOME"/vms/*/guest/console.log | grep -c 'Accepted ' || true)
commands_up=$(cat "$dir"/.tartlab/logs/*.provision.log | grep -c '^=== ' || true)
: > "$work/tart-calls"
(cd "$dir" && PATH="$work/counting:$PATH" "$tartlab" up >/dev/null 2>&1)
spawns_converged=$(wc -l < "$work/tart-calls")
(cd "$dir" && "$tartlab" down >/dev/null 2>&1)

# The seed's sequential approach on the same 9 VMs.
for r in $(seq "$runs"); do
  echo "bench: seed baseline (9 VMs, sequential), run $r/$runs" >&2
  measure baseline9 bash scripts/bench/seed-baseline.sh "$work/baseline-logs" dev stg prod
  for vm in dev-master dev-worker-1 dev-worker-2 stg-master stg-worker-1 stg-worker-2 prod-master prod-worker-1 prod-worker-2; do
    tart stop "$vm" >/dev/null 2>&1 || true
    for _ in $(seq 50); do tart delete "$vm" >/dev/null 2>&1 && break; sleep 0.2; done
  done
done

# The two guest kinds of tart-sim (crates/tart-sim/README.md, "The guests"), each in a home
# of its own with no boot delay: boot to SSH (from `tart run` to an SSH handshake) and the
# memory of an idle guest (the PSS of its cgroup's processes), then up(9) on systemd guests.
kind_home() { echo "$work/home-$1"; }
for kind in light systemd; do
  home=$(kind_home "$kind")
  mkdir -p "$home/sim"
  echo "$kind" > "$home/sim/guest"
  TART_HOME=$home tart pull ghcr.io/cirruslabs/ubuntu:latest >/dev/null
  for r in $(seq "$runs"); do
    echo "bench: $kind guest boot to SSH, run $r/$runs" >&2
    vm="boot-$kind-$r"
    TART_HOME=$home tart clone ghcr.io/cirruslabs/ubuntu:latest "$vm" >/dev/null
    start=$(date +%s.%N)
    TART_HOME=$home TART_SIM_BOOT_MS=0 setsid tart run "$vm" --no-graphics >/dev/null 2>&1 &
    ip=$(TART_HOME=$home tart ip "$vm" --wait 60)
    until ssh-keyscan -T 2 "$ip" >/dev/null 2>&1; do sleep 0.02; done
    awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f 0 0 0\n", e - s }' >> "$work/boot-$kind"
  done
  sleep 2
  pss=0
  for r in $(seq "$runs"); do
    vm="boot-$kind-$r"
    kb=$(for p in /proc/[0-9]*; do
      if grep -qE "^0::.*/tart-sim/[^/]+/$vm(/|$)" "$p/cgroup" 2>/dev/null; then
        awk '/^Pss:/ { print $2 }' "$p/smaps_rollup" 2>/dev/null || true
      fi
    done | awk '{ t += $1 } END { print t + 0 }')
    echo "$kb" >> "$work/pss-$kind"
  done
  TART_HOME=$home "$bin/tart-sim" reap >/dev/null 2>&1
done
sd_home=$(kind_home systemd)
dir=$(make_lab 9 systemd)
for r in $(seq "$runs"); do
  echo "bench: up of 9 systemd guests, run $r/$runs" >&2
  (cd "$dir" && TART_HOME=$sd_home TARTLAB_DHCP_LEASES=$sd_home/sim/dhcpd_leases measure sdup9 "$tartlab" up)
  (cd "$dir" && TART_HOME=$sd_home TARTLAB_DHCP_LEASES=$sd_home/sim/dhcpd_leases "$tartlab" down >/dev/null 2>&1)
done
root_build=$(sed -n 's/.* in \([0-9]*\) s$/\1/p' "${TART_SIM_SYSTEMD_ROOT:-/var/cache/tart-sim/debian-bookworm-systemd-v2}/.tart-sim-root" 2>/dev/null || true)

boot_s=$(awk "BEGIN { print $boot_ms / 1000 }")
median() { summary "$1" 1 | cut -d' ' -f1; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }
lines=()
figure() { # name median min max unit
  lines+=("$(printf '%s\t%s\t%s\t%s\t%s' "$@")")
}
for n in $sizes; do
  read -r m lo hi <<<"$(summary "up$n" 1)"; figure "up($n) wall" "$m" "$lo" "$hi" s
  read -r m lo hi <<<"$(summary "up$n" 2)"; figure "up($n) peak RSS" "$((m / 1024))" "$((lo / 1024))" "$((hi / 1024))" MB
  read -r m lo hi <<<"$(summary "up$n" 3)"; figure "up($n) CPU (tartlab and the tart commands it waits for)" "$m" "$lo" "$hi" s
  read -r m lo hi <<<"$(summary "up$n" 4)"
  figure "up($n) machine CPU per VM (all processes: guests, sshd, simulator, tartlab)" "$(ratio "$m" "$n")" "$(ratio "$lo" "$n")" "$(ratio "$hi" "$n")" s
  [ "$n" = 1 ] || figure "up($n)/up(1)" "$(ratio "$(median "up$n")" "$(median up1)")" - - x
  if [ "$n" = 9 ]; then
    read -r fm flo fhi wm wlo whi <<<"$(floor up9 "$boot_s")"
    figure "up(9): the machine's floor (boot delay + all processes' CPU / $(nproc) cores)" "$fm" "$flo" "$fhi" s
    figure "up(9) wall / the machine's floor" "$wm" "$wlo" "$whi" x
    figure "up(9)/up(1) at the machine's floor" "$(ratio "$fm" "$(median up1)")" - - x
  fi
  if [ "$n" = 100 ]; then
    read -r fm flo fhi wm wlo whi <<<"$(floor up100 0)"
    figure "up(100): the machine's floor (all processes' CPU / $(nproc) cores)" "$fm" "$flo" "$fhi" s
    figure "up(100) wall / the machine's floor" "$wm" "$wlo" "$whi" x
  fi
done
for n in 9 100; do
  [ -s "$work/nocheck$n" ] || continue
  read -r m lo hi <<<"$(summary "nocheck$n" 1)"; figure "up($n) without the connectivity check" "$m" "$lo" "$hi" s
  figure "the connectivity check's cost in up($n)" "$(awk "BEGIN { printf \"%.2f\", $(median "up$n") - $m }")" - - s
done
read -r m lo hi <<<"$(summary up1 1)"
figure "up(1) minus the boot delay" "$(awk "BEGIN { print $m - $boot_s }")" "$(awk "BEGIN { print $lo - $boot_s }")" "$(awk "BEGIN { print $hi - $boot_s }")" s
# What the user waits for beyond the simulator's own boot (the delay, then the guest's start,
# which tart-sim does not overlap with the delay).
read -r bm blo bhi <<<"$(summary bootssh 1)"
figure "boot to SSH (clone, run, lease, sshd; no tartlab)" "$bm" "$blo" "$bhi" s
figure "up(1) minus the boot to SSH" "$(awk "BEGIN { printf \"%.2f\", $m - $bm }")" - - s
read -r m lo hi <<<"$(summary converged9 1)"; figure "converged up(9) wall" "$m" "$lo" "$hi" s
read -r m lo hi <<<"$(summary baseline9 1)"; figure "seed baseline (9 VMs, sequential) wall" "$m" "$lo" "$hi" s
figure "seed baseline / tartlab up(9)" "$(ratio "$(median baseline9)" "$(median up9)")" - - x
if [ $quick = 0 ]; then
  read -r m lo hi <<<"$(summary status100 1)"; figure "status on 100 VMs wall" "$m" "$lo" "$hi" s
  read -r m lo hi <<<"$(summary exec100 1)"; figure "exec true on 100 VMs wall" "$m" "$lo" "$hi" s
  read -r m lo hi <<<"$(summary down100 1)"; figure "down of 100 VMs wall" "$m" "$lo" "$hi" s
fi
for kind in light systemd; do
  read -r m lo hi <<<"$(summary "boot-$kind" 1)"; figure "$kind guest: boot to SSH (no boot delay)" "$m" "$lo" "$hi" s
  read -r m lo hi <<<"$(sort -g "$work/pss-$kind" | awk '{ v[NR] = $1 } END { printf "%s %s %s\n", v[int((NR + 1) / 2)], v[1], v[NR] }')"
  figure "$kind guest: memory when idle (PSS)" "$((m / 1024))" "$((lo / 1024))" "$((hi / 1024))" MB
done
read -r m lo hi <<<"$(summary sdup9 1)"; figure "up(9) on systemd guests wall" "$m" "$lo" "$hi" s
[ -n "$root_build" ] && figure "systemd guests' Debian root, built once" "$root_build" - - s
figure "tart processes per VM, up(9)" "$(ratio "$spawns_up" 9)" - - per-VM
figure "tart processes, converged up(9)" "$spawns_converged" - - total
figure "SSH logins per new VM, up(9)" "$(ratio "$logins_up" 9)" - - per-VM
figure "remote commands per new VM, up(9)" "$(ratio "$commands_up" 9)" - - per-VM
# The seed lab on a fleet of the real Orchard against the same lab here (a minute or two
# more, so not in --quick): scripts/bench/orchard.sh prints figure lines of this shape.
if [ $quick = 0 ]; then
  echo "bench: the seed lab on an Orchard fleet (scripts/bench/orchard.sh)" >&2
  NO_BUILD=1 RUNS=$runs TART_SIM_BOOT_MS=$boot_ms bash scripts/bench/orchard.sh > "$work/orchard.out"
  while IFS= read -r l; do lines+=("$l"); done < "$work/orchard.out"
fi
# Issue 29's measure: snapshot save and restore of the seed lab with a 30 s provisioning
# step, against down + up of the same lab (scripts/bench/snapshots.sh, one run).
if [ $quick = 0 ]; then
  echo "bench: snapshots of the seed lab (scripts/bench/snapshots.sh)" >&2
  TARGET=$bin TART_SIM_BOOT_MS=$boot_ms bash scripts/bench/snapshots.sh > "$work/snapshots"
  while IFS=$'\t' read -r name secs; do
    figure "seed lab with a 30 s step: $name" "$secs" - - s
  done < "$work/snapshots"
  snap() { awk -F'\t' -v n="$1" '$1 == n { print $2 }' "$work/snapshots"; }
  figure "seed lab with a 30 s step: snapshot restore / (down + up)" \
    "$(ratio "$(snap 'snapshot restore (9 nodes)')" "$(awk "BEGIN { print $(snap down) + $(snap 'up again (provisions again)') }")")" - - x
fi

{
  echo "# Performance"
  echo
  echo "Written by \`scripts/bench.sh\`$([ $quick = 1 ] && echo ' --quick') on $(date -u +%Y-%m-%d). Do not edit by hand: run it again."
  echo
  echo "## Machine and method"
  echo
  echo "- $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ { print $2 }') GiB, $(uname -sr)."
  echo "- tartlab and tart-sim release builds; tart-sim's guests are sandboxes running sshd on"
  echo "  127.x addresses; every VM takes \`TART_SIM_BOOT_MS=$boot_ms\` ms from \`tart run\` to its"
  echo "  DHCP lease and sshd (the floor that a real VM's boot sets on a Mac)."
  echo "- Each figure: the median of $runs run(s) of a whole process, with min and max, timed by"
  echo "  GNU time. Peak RSS and CPU are tartlab's own process plus the tart commands it waits"
  echo "  for (\`tart run\` is detached, so the VMs are not counted)."
  echo "- Labs: N nodes in clusters of up to 10 (a master and workers), with the seed's"
  echo "  provisioning: hostname, machine-id and host keys, one user (\`devops\`, sudo), and"
  echo "  \`/etc/hosts\` per cluster. The baseline is \`scripts/bench/seed-baseline.sh\`: the seed"
  echo "  report's fixed script, one VM after another."
  echo
  echo "## Results"
  echo
  echo "| figure | median | min | max | unit |"
  echo "|---|---|---|---|---|"
  for l in "${lines[@]}"; do echo "| ${l//$'\t'/ | } |"; done
  echo
  cat docs/PERFORMANCE.notes.md 2>/dev/null || true
} > docs/PERFORMANCE.md

echo
printf '%s\n' "${lines[@]}"
