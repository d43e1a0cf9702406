#!/usr/bin/env bash
# Builds, once, the Debian root that tart-sim's systemd guests boot (crates/tart-sim/README.md,
# "The guests"): Debian 12 (bookworm) from Debian's packages with debootstrap, with systemd,
# dbus, openssh-server, sudo and cloud-init, sshd socket-activated as on Ubuntu 24.04, and
# cloud-init as the cirruslabs images leave it: run once when the image was made, every
# datasource off since (`datasource_list: [ None ]`). Kept as a tarball beside the root, so a
# root that is lost is unpacked again rather than downloaded. Idempotent; run as root.
set -euo pipefail

version=v2
cache=${TART_SIM_CACHE:-/var/cache/tart-sim}
root=$cache/debian-bookworm-systemd-$version
tarball=$root.tar
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ -x "$root/usr/lib/systemd/systemd" ] && [ -f "$root/.tart-sim-root" ]; then
  exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -f "$tarball" ]; then
  echo "build-guest-root: unpacking $tarball"
  tar -C "$work" -xf "$tarball"
else
  echo "build-guest-root: debootstrap of Debian bookworm into $root (about a minute)"
  started=$(date +%s)
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,openssh-server,sudo,iproute2,procps \
    bookworm "$work" "$mirror" > "$cache/debootstrap.log" 2>&1 || {
      tail -20 "$cache/debootstrap.log" >&2
      exit 1
    }
  mount -t proc proc "$work/proc"
  mount --rbind /dev "$work/dev"
  trap 'umount -R "$work/dev" 2>/dev/null; umount "$work/proc" 2>/dev/null; rm -rf "$work"' EXIT
  # cloud-init with apt, not debootstrap: debootstrap's own configure order fails on its
  # Python dependencies.
  chroot "$work" /bin/bash -euo pipefail -c '
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends cloud-init locales
    # en_US.UTF-8 built, as in Ubuntu'"'"'s cloud images (cloud-init'"'"'s locale module sets it).
    sed -i "s/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/" /etc/locale.gen
    locale-gen >/dev/null
  ' >> "$cache/debootstrap.log" 2>&1 || {
    tail -20 "$cache/debootstrap.log" >&2
    exit 1
  }
  # cloud-init's first run, as when the cirruslabs image was built (its datasource None):
  # its once-per-instance modules are then done, so clones do not make new host keys.
  chroot "$work" /bin/bash -euo pipefail -c '
    printf "datasource_list: [ None ]\nssh_pwauth: true\n" > /etc/cloud/cloud.cfg.d/99_cirruslabs.cfg
    for stage in "init --local" "init" "modules --mode=config" "modules --mode=final"; do
      cloud-init $stage > /dev/null 2>&1 || true
    done
    test -d /var/lib/cloud/instances/iid-datasource-none
  '
  umount -R "$work/dev"
  umount "$work/proc"
  trap 'rm -rf "$work"' EXIT
  chroot "$work" /bin/bash -euo pipefail -c '
    # sshd as on Ubuntu 24.04: ssh.socket listens, and starts ssh.service on the first
    # connection; the service is not started by itself.
    systemctl disable ssh.service >/dev/null 2>&1 || true
    systemctl enable ssh.socket >/dev/null 2>&1
    # The image has one account, admin (tart-sim makes it); not Debian'"'"'s default user.
    userdel -r debian >/dev/null 2>&1 || true
    # No login prompt on the console (it goes to the VM console log).
    systemctl mask console-getty.service >/dev/null 2>&1
    printf "PasswordAuthentication yes\n" > /etc/ssh/sshd_config.d/tart-sim.conf
    # Each image makes its own (tart-sim at setup): clones of one image share them.
    rm -f /etc/ssh/ssh_host_* /etc/machine-id /var/lib/dbus/machine-id
    rm -rf /var/log/cloud-init*.log
    : > /etc/machine-id
    apt-get clean
    rm -rf /var/lib/apt/lists/*
  '
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - started )) s" > "$work/.tart-sim-root"
  tar -C "$work" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi
rm -rf "$root"
mv "$work" "$root"
trap - EXIT
echo "build-guest-root: $(cat "$root/.tart-sim-root"), $(du -sh "$root" | cut -f1) at $root"
