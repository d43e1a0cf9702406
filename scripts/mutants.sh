#!/usr/bin/env bash
# Mutation check of the code behind tartlab's core guarantees (docs/TESTING.md): each mutant
# of these functions must make a test fail. Runs cargo-mutants (installed if missing) on
# groups of functions with the tests that guard them, and prints, per group, how many
# mutants were caught and which survived. Slow (a build per mutant): not part of the test
# command; run it when you change one of these files. Exit 1 if any mutant survives.
#
#   scripts/mutants.sh            every group
#   scripts/mutants.sh parsers    one group (parsers, ownership, state, selection)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
  cargo install --locked cargo-mutants@27.1.0
fi
if [ "$(id -u)" != 0 ]; then
  echo "mutants: the integration groups run tart-sim's sandboxes: run as root" >&2
  exit 2
fi
source scripts/install-deps.sh >/dev/null

# The integration groups drive tart-sim, which no mutant changes: built once, here.
cargo build -q -p tart-sim
export TEST_TART_SIM=$PWD/target/debug/tart-sim
out=${MUTANTS_OUT:-target/mutants}
mkdir -p "$out"
survivors=0

# A test that timed out under a mutant was killed before its cleanup: its guests still run.
# Reaps the TART_HOME of every guest started by a test in one of cargo-mutants' copies.
reap_leftovers() {
  local pid env home
  for pid in $(pgrep -f '^/bin/bash /run/tart-sim/init|^systemd-nspawn' || true); do
    env=$({ tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null) || continue
    case $env in *CARGO_MANIFEST_DIR=/tmp/cargo-mutants-*) ;; *) continue ;; esac
    home=$(printf '%s\n' "$env" | sed -n 's/^TART_HOME=//p')
    if [ -d "$home" ]; then
      TART_HOME=$home "$TEST_TART_SIM" reap >/dev/null 2>&1 || true
      rm -rf "$(dirname "$home")"
    fi
  done
}

# group NAME FILE REGEX -- CARGO_TEST_ARGS...
group() {
  local name=$1 file=$2 re=$3
  shift 4
  if [ -n "${only:-}" ] && [ "$only" != "$name" ]; then return 0; fi
  echo "mutants: $name: $file ($re)"
  local dir=$out/$name
  rm -rf "$dir"
  # cargo-mutants exits 2 when a mutant survives; the counts say it.
  cargo mutants --no-shuffle -j 1 --minimum-test-timeout 60 \
    --file "$file" --re "$re" --output "$dir" -- "$@" >"$dir.log" 2>&1 || true
  reap_leftovers
  local caught missed timeout unviable
  caught=$(wc -l <"$dir/mutants.out/caught.txt" 2>/dev/null || echo 0)
  missed=$(wc -l <"$dir/mutants.out/missed.txt" 2>/dev/null || echo 0)
  timeout=$(wc -l <"$dir/mutants.out/timeout.txt" 2>/dev/null || echo 0)
  unviable=$(wc -l <"$dir/mutants.out/unviable.txt" 2>/dev/null || echo 0)
  if [ $((caught + missed + timeout + unviable)) = 0 ]; then
    echo "mutants: $name: no mutant was tested (the unmutated tree failed?): $dir.log" >&2
    survivors=$((survivors + 1))
    return 0
  fi
  echo "mutants: $name: $caught caught, $timeout timed out (caught), $missed missed, $unviable unviable"
  if [ "$missed" -gt 0 ]; then
    sed 's/^/  missed: /' "$dir/mutants.out/missed.txt"
    survivors=$((survivors + missed))
  fi
}

only=${1:-}
# The DHCP lease parser (addresses of NAT VMs) and the quoting of every remote command:
# their unit tests.
group parsers crates/tartlab/src/provider/tart/leases.rs 'normalize_mac|parse|live|now_secs' \
  -- --lib
group quoting crates/tartlab/src/guest/quote.rs '.' -- --lib
# Which VM is the lab's: the MAC recorded at creation must match.
group ownership crates/tartlab/src/engine/plan.rs 'Presence::of' \
  -- --test e2e -- up::ownership::a_foreign_vm_is_never up::ownership::a_same_named up::reliability::a_corrupted
# A state file that cannot be read is an error, never an empty lab.
group state crates/tartlab/src/state/dir.rs 'read_state' \
  -- --test e2e -- up::reliability::a_state_file up::reliability::a_corrupted
# Addresses of nodes outside a partial `up`.
group selection crates/tartlab/src/engine/stages/mod.rs "stages/mod.rs:16[0-9]:.* in up$" \
  -- --test e2e -- up::reliability::a_partial_up

if [ "$survivors" -gt 0 ]; then
  echo "mutants: $survivors survived (details under $out)" >&2
  exit 1
fi
echo "mutants: none survived"
