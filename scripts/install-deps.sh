#!/usr/bin/env bash
# Installs what the simulator and the tests need on a fresh Debian/Ubuntu machine, and
# only what is missing: OpenSSH server and client, sshpass, sudo, util-linux
# (unshare, nsenter, setpriv), systemd-container and debootstrap with the Debian root they
# build once (the systemd guests), nftables (the simulator's network isolation), python3 (a test's guest SFTP proxy), man-db (the man page test), zsh and fish (the completion tests), ruby (the formula's syntax check), the
# orchard binary (scripts/install-orchard.sh); with --with-nextest also cargo-nextest and
# ansible-core (in a venv under /opt/tartlab-test-tools) for the tests. Idempotent; sourced or run.
set -euo pipefail

need_apt=()
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v sshpass >/dev/null 2>&1 || need_apt+=(sshpass)
command -v sudo >/dev/null 2>&1 || need_apt+=(sudo)
for tool in unshare nsenter setpriv; do
  command -v "$tool" >/dev/null 2>&1 || { need_apt+=(util-linux); break; }
done
# The simulator isolates its guests' networks with nftables, as macOS isolates VMs.
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
# The hostile-guest tests run a small SFTP proxy (Python) inside a guest.
[ -x /usr/bin/python3 ] || need_apt+=(python3)
# The simulator's systemd guests: systemd-nspawn boots a Debian root made by debootstrap.
command -v systemd-nspawn >/dev/null 2>&1 || need_apt+=(systemd-container)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
# The man page test renders `tartlab man` with man(1); the completion test sources it in bash.
command -v man >/dev/null 2>&1 || need_apt+=(man-db)
# The Homebrew formula is checked with `ruby -c`.
command -v ruby >/dev/null 2>&1 || need_apt+=(ruby)
command -v bash >/dev/null 2>&1 || need_apt+=(bash)
# The completion tests load tartlab's scripts in real zsh and fish too (a few MB each).
command -v zsh >/dev/null 2>&1 || need_apt+=(zsh)
command -v fish >/dev/null 2>&1 || need_apt+=(fish)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ "${1:-}" = --with-nextest ] && ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
# The inventory test checks `tartlab inventory` with Ansible's own parser.
ansible_venv=/opt/tartlab-test-tools/ansible
if [ "${1:-}" = --with-nextest ] && [ ! -x "$ansible_venv/bin/ansible-inventory" ]; then
  echo "install-deps: installing ansible-core into $ansible_venv"
  if ! python3 -m venv "$ansible_venv" >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv python3-pip >/dev/null
    python3 -m venv "$ansible_venv"
  fi
  "$ansible_venv/bin/pip" install -q --disable-pip-version-check ansible-core
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: the simulator's VMs need root (namespaces and mounts); run as root" >&2
  exit 1
fi
# The real Orchard controller and workers for the Orchard provider's tests (crates/tartlab/
# tests/e2e/orchard/fleet.rs, which find it through TARTLAB_TEST_ORCHARD: scripts/test.sh).
bash "$(dirname "${BASH_SOURCE[0]}")/install-orchard.sh"
# The Debian root of the simulator's systemd guests: built once, then kept.
bash "$(dirname "${BASH_SOURCE[0]}")/build-guest-root.sh"
