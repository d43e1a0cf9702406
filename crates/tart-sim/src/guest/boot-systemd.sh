#!/bin/bash
# A systemd guest: the Debian root (built once by scripts/install-deps.sh) as the lower
# layer, this VM's changes in GUEST_DIR/sys-upper, mounted in the private mount namespace
# this script runs in (`unshare --mount`); then the image's one-time setup (mode "setup"),
# or systemd-nspawn booting it with systemd as PID 1 (mode "boot").
# Usage: boot-systemd.sh setup GUEST_DIR ROOT HOSTNAME
#        boot-systemd.sh boot  GUEST_DIR ROOT VM IP SSHD_DELAY_MS|never [SSHD_QUIRK]
set -euo pipefail
mode=$1 G=$2 ROOT=$3
R=$G/sysmnt
mount --make-rprivate /
mkdir -p "$R" "$G/sys-upper" "$G/sys-work"
mount -t overlay overlay -o "lowerdir=$ROOT,upperdir=$G/sys-upper,workdir=$G/sys-work" "$R"

if [ "$mode" = setup ]; then
  # What the cirruslabs image has made once, and every clone of it shares: the admin
  # account, the hostname, the SSH host keys and the machine-id.
  exec chroot "$R" /bin/bash -euo pipefail -c '
    name=$1
    useradd -m -s /bin/bash -U -G sudo admin
    echo "admin:${TART_SIM_IMAGE_PASSWORD:-admin}" | chpasswd
    echo "admin ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/admin
    chmod 440 /etc/sudoers.d/admin
    echo "$name" > /etc/hostname
    printf "127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost ip6-localhost ip6-loopback\n" "$name" > /etc/hosts
    od -An -N16 -tx1 /dev/urandom | tr -d " \n" > /etc/machine-id; echo >> /etc/machine-id
    rm -f /etc/ssh/ssh_host_*
    ssh-keygen -A >/dev/null
    mkdir -p /var/lib/tart-sim && echo "$name" > /var/lib/tart-sim/image
  ' setup "$4"
fi

VM=$4 IP=$5 SSHD_DELAY_MS=$6 SSHD_QUIRK=${7:-none}
# This boot's sshd: socket-activated as on Ubuntu 24.04 (ssh.socket starts ssh.service on
# the first connection), on this VM's own address only, since the guest shares the host's
# network namespace (as the light guests do; the network rules keep guests apart).
d=$R/etc/systemd/system/ssh.socket.d
mkdir -p "$d"
{
  echo "[Socket]"
  echo "ListenStream="
  echo "ListenStream=$IP:22"
  echo "FreeBind=yes"
  if [ "$SSHD_DELAY_MS" = never ]; then
    echo "[Unit]"
    echo "ConditionPathExists=/run/tart-sim-sshd-never"
  elif [ "$SSHD_DELAY_MS" -gt 0 ]; then
    echo "ExecStartPre=/bin/sleep $(printf '%d.%03d' $((SSHD_DELAY_MS / 1000)) $((SSHD_DELAY_MS % 1000)))"
  fi
} > "$d/tart-sim.conf"
# The fault `sshd-keys-at-start`: sshd serves copies of the keys made when it starts, and a
# reload does nothing, so it serves the old keys until it is restarted.
rm -rf "$R/etc/systemd/system/ssh.service.d"
if [ "$SSHD_QUIRK" = keys-at-start ]; then
  mkdir -p "$R/etc/systemd/system/ssh.service.d"
  cat > "$R/etc/systemd/system/ssh.service.d/tart-sim-quirk.conf" <<'UNIT'
[Service]
ExecStartPre=/bin/sh -c 'mkdir -p /run/sshd-keys && cp /etc/ssh/ssh_host_*_key /run/sshd-keys/'
ExecReload=
ExecReload=/bin/true
ExecStart=
ExecStart=/bin/sh -c 'exec /usr/sbin/sshd -D $$(for k in /run/sshd-keys/*_key; do printf -- "-h %%s " "$$k"; done)'
UNIT
fi
# The fault `sshd-reload-fails`: a reload's control process fails, as `sshd -t` does on a
# config it refuses; sshd goes on as it was.
if [ "$SSHD_QUIRK" = reload-fails ]; then
  mkdir -p "$R/etc/systemd/system/ssh.service.d"
  printf '[Service]\nExecReload=\nExecReload=/bin/false\n' > "$R/etc/systemd/system/ssh.service.d/tart-sim-quirk.conf"
fi
# Should sshd ever listen by itself (a reload re-executes it without the socket systemd
# passed), only on this address: never on the host's own addresses.
mkdir -p "$R/etc/ssh/sshd_config.d"
echo "ListenAddress $IP:22" > "$R/etc/ssh/sshd_config.d/tart-sim-listen.conf"
# The guest's console (systemd's boot messages) goes to the VM's console.log.
exec systemd-nspawn --quiet --boot --directory="$R" --machine="$VM" \
  --register=no --keep-unit --link-journal=no --resolv-conf=off --timezone=off \
  --console=read-only --settings=no
