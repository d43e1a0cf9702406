#!/bin/bash
# Builds a simulated VM's root inside fresh mount, UTS and PID namespaces, then either runs
# the image's one-time setup (mode "setup") or becomes the guest's init (mode "boot").
# Usage: boot.sh setup GUEST_DIR HOSTNAME
#        boot.sh boot  GUEST_DIR IP SSHD_DELAY_MS|never [SSHD_QUIRK: none|fixed-keys]
set -euo pipefail
mode=$1 G=$2
R=$G/mnt
mount --make-rprivate /
mkdir -p "$R" "$G/home" "$G/roothome"
mount -t tmpfs -o size=16m,mode=755 tmpfs "$R"
# The guest sees the host's system files through copy-on-write layers kept in GUEST_DIR,
# so everything it writes persists in its own "disk" and nothing reaches the host.
for d in usr etc var opt; do
  mkdir -p "$R/$d" "$G/upper/$d" "$G/work/$d"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$G/upper/$d,workdir=$G/work/$d" "$R/$d"
done
for l in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$R/$l"
  elif [ -d "/$l" ]; then mkdir -p "$R/$l"; mount --bind "/$l" "$R/$l"; mount -o remount,bind,ro "$R/$l"; fi
done
mkdir -p "$R/home" "$R/root" "$R/proc" "$R/sys" "$R/dev" "$R/run" "$R/tmp"
chmod 700 "$G/roothome"
mount --bind "$G/home" "$R/home"
mount --bind "$G/roothome" "$R/root"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys" 2>/dev/null || true
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"

if [ "$mode" = setup ]; then
  exec chroot "$R" /bin/bash -euo pipefail -c '
    name=$1
    useradd -m -s /bin/bash -U -G sudo admin
    echo "admin:${TART_SIM_IMAGE_PASSWORD:-admin}" | chpasswd
    echo "admin ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/admin
    chmod 440 /etc/sudoers.d/admin
    echo "$name" > /etc/hostname
    printf "127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost ip6-localhost ip6-loopback\n" "$name" > /etc/hosts
    # Like systemd-resolved on Ubuntu: a stub on loopback. Guests never query the real network.
    rm -f /etc/resolv.conf
    printf "nameserver 127.0.0.53\noptions timeout:1 attempts:1\n" > /etc/resolv.conf
    od -An -N16 -tx1 /dev/urandom | tr -d " \n" > /etc/machine-id; echo >> /etc/machine-id
    rm -f /etc/ssh/ssh_host_*
    ssh-keygen -A >/dev/null
    mkdir -p /var/lib/tart-sim && echo "$name" > /var/lib/tart-sim/image
  ' setup "$3"
fi

IP=$3 SSHD_DELAY_MS=$4 SSHD_QUIRK=${5:-none}
mkdir -p "$R/usr/local/bin" "$R/usr/local/sbin" "$R/run/sshd" "$R/run/tart-sim"
# Shared directories (`tart run --dir`, listed by tart-sim in virtiofs.list): each virtiofs
# device is built here, outside the guest's root, where no path from inside reaches it. The
# guest's init holds one descriptor per device, and the guest's `mount -t virtiofs TAG DIR`
# (the shim below, root only, as /proc/1/fd is) binds that descriptor, and nothing else.
: > "$R/run/tart-sim/virtiofs"
chmod 600 "$R/run/tart-sim/virtiofs"
if [ -s "$G/virtiofs.list" ]; then
  V=$G/virtiofs
  declare -A tag_of=() named=()
  while IFS=$'\t' read -r idx tag name mode path; do
    d=$V/$idx
    mkdir -p "$d"
    tag_of[$idx]=$tag
    if [ "$name" != - ]; then
      # Named shares: a root of its own holding one subdirectory per name.
      if [ -z "${named[$idx]:-}" ]; then mount -t tmpfs -o size=1m,mode=755 tmpfs "$d"; named[$idx]=1; fi
      d=$d/$name
      mkdir -p "$d"
    fi
    mount --bind "$path" "$d"
    if [ "$mode" = ro ]; then mount -o remount,bind,ro "$d"; fi
  done < "$G/virtiofs.list"
  for idx in "${!named[@]}"; do mount -o remount,ro "$V/$idx"; done
  for idx in "${!tag_of[@]}"; do
    exec {fd}<"$V/$idx"
    printf '%s\t%s\n' "${tag_of[$idx]}" "$fd" >> "$R/run/tart-sim/virtiofs"
  done
fi
cat > "$R/usr/local/sbin/mount" <<'SHIM'
#!/bin/bash
# tart-sim: the guest kernel's virtiofs. `mount -t virtiofs TAG DIR` mounts the device the VM
# was given under TAG (listed in /run/tart-sim/virtiofs) and fails for any other TAG as
# Linux does (EINVAL); `mount -a` mounts /etc/fstab's virtiofs lines this way. Everything
# else is util-linux's mount.
real=/usr/bin/mount
map=/run/tart-sim/virtiofs
orig=("$@") types="" opts="" all=0 args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t|--types) types=${2:-}; shift 2 || shift ;;
    -t*) types=${1#-t}; shift ;;
    --types=*) types=${1#--types=}; shift ;;
    -o|--options) opts=${2:-}; shift 2 || shift ;;
    -o*) opts=${1#-o}; shift ;;
    --options=*) opts=${1#--options=}; shift ;;
    -a|--all) all=1; shift ;;
    --) shift; args+=("$@"); break ;;
    -*) shift ;;
    *) args+=("$1"); shift ;;
  esac
done
mount_one() { # TAG DIR OPTIONS
  local tag=$1 dir=$2 o=$3 t fd=""
  if [ "$(id -u)" != 0 ]; then "$real" -t virtiofs ${o:+-o "$o"} "$tag" "$dir"; return; fi
  if [ ! -d "$dir" ]; then echo "mount: $dir: mount point does not exist." >&2; return 32; fi
  while IFS=$'\t' read -r t f; do if [ "$t" = "$tag" ]; then fd=$f; break; fi; done < "$map"
  if [ -z "$fd" ]; then
    echo "mount: $dir: wrong fs type, bad option, bad superblock on $tag, missing codepage or helper program, or other error." >&2
    echo "       dmesg(1) may have more information after failed mount system call." >&2
    return 32
  fi
  "$real" -c --rbind "/proc/1/fd/$fd" "$dir" || return 32
  case ",$o," in
    *,ro,*)
      # Read-only for the whole device, named shares included.
      dir=$(realpath "$dir")
      while read -r _ _ _ _ point _; do
        case "$point" in "$dir"|"$dir"/*) "$real" -o remount,bind,ro "$point" || return 32 ;; esac
      done < /proc/self/mountinfo ;;
  esac
}
if [ "$all" = 1 ]; then
  rc=0
  if [ -z "$types" ] || [ "$types" = virtiofs ]; then
    while read -r spec file vfstype mntops _; do
      case "$spec" in ''|'#'*) continue ;; esac
      [ "$vfstype" = virtiofs ] || continue
      file=${file//\\040/ }
      mountpoint -q "$file" 2>/dev/null && continue
      # At boot, as a systemd mount unit does, the mount point is made if it is missing.
      if [ -n "${TART_SIM_BOOT:-}" ]; then mkdir -p "$file"; fi
      mount_one "$spec" "$file" "${mntops:-defaults}" || case ",$mntops," in *,nofail,*) ;; *) rc=32 ;; esac
    done < /etc/fstab
  fi
  if [ "$types" = virtiofs ]; then exit "$rc"; fi
  if [ -z "$types" ]; then "$real" "${orig[@]}" -t novirtiofs || rc=$?; exit "$rc"; fi
  exec "$real" "${orig[@]}"
fi
if [ "$types" = virtiofs ] && [ ${#args[@]} -eq 2 ]; then
  mount_one "${args[0]}" "${args[1]}" "$opts"
  exit
fi
exec "$real" "${orig[@]}"
SHIM
chmod 755 "$R/usr/local/sbin/mount"
cat > "$R/usr/local/bin/hostnamectl" <<'SHIM'
#!/bin/bash
# tart-sim: hostnamectl without systemd. Sets the UTS name and /etc/hostname and keeps the
# 127.0.1.1 line so the name resolves, as systemd-resolved would make it.
set -euo pipefail
case "${1:-status}" in
  set-hostname|hostname)
    if [ $# -lt 2 ]; then hostname; exit 0; fi
    if [ "$(id -u)" != 0 ]; then echo "Could not set static hostname: Access denied" >&2; exit 1; fi
    name=$2
    hostname "$name"
    echo "$name" > /etc/hostname
    if grep -q '^127\.0\.1\.1[[:space:]]' /etc/hosts; then
      sed -i "s/^127\.0\.1\.1[[:space:]].*/127.0.1.1 $name/" /etc/hosts
    else
      echo "127.0.1.1 $name" >> /etc/hosts
    fi ;;
  status)
    echo " Static hostname: $(cat /etc/hostname)"
    echo "      Machine ID: $(cat /etc/machine-id)"
    echo "Operating System: tart-sim guest" ;;
  *) echo "Unknown command verb '$1'." >&2; exit 1 ;;
esac
SHIM
cat > "$R/usr/local/sbin/shutdown" <<'SHIM'
#!/bin/bash
# tart-sim: powering off (or rebooting: Virtualization.framework has no guest reset) ends
# the guest's init, which ends the VM ("tart run" exits 0).
if [ "$(id -u)" != 0 ]; then echo "Failed to set wall message, ignoring: Access denied" >&2; echo "Call to PowerOff failed: Access denied" >&2; exit 1; fi
( sleep 0.2; kill -TERM 1 ) >/dev/null 2>&1 &
exit 0
SHIM
cp "$R/usr/local/sbin/shutdown" "$R/usr/local/sbin/poweroff"
cp "$R/usr/local/sbin/shutdown" "$R/usr/local/sbin/halt"
cp "$R/usr/local/sbin/shutdown" "$R/usr/local/sbin/reboot"
chmod 755 "$R/usr/local/bin/hostnamectl" "$R/usr/local/sbin/"{shutdown,poweroff,halt,reboot}
cat > "$R/run/tart-sim/init" <<'INIT'
#!/bin/bash
# tart-sim guest init (PID 1 of the VM): starts sshd on the VM's address, and on SIGTERM
# (a shutdown from inside, or tart's graceful stop) ends everything.
hostname "$(cat /etc/hostname 2>/dev/null || echo ubuntu)"
# As systemd's fstab generator does before ssh: /etc/fstab's virtiofs lines (only those: the
# guest's fstab starts as the host's, whose disks are not the guest's).
TART_SIM_BOOT=1 /usr/local/sbin/mount -a -t virtiofs || true
stop_guest() { kill -TERM $(jobs -p) 2>/dev/null; exit 0; }
trap stop_guest TERM INT
sleep infinity &
if [ "$SSHD_DELAY_MS" != never ]; then
  (
    [ "$SSHD_DELAY_MS" -gt 0 ] && sleep "$(printf '%d.%03d' $((SSHD_DELAY_MS / 1000)) $((SSHD_DELAY_MS % 1000)))"
    quirk=()
    case "$SSHD_QUIRK" in
      fixed-keys)
        mkdir -p /run/tart-sim/host-keys
        cp /etc/ssh/ssh_host_*_key /run/tart-sim/host-keys/
        for k in /run/tart-sim/host-keys/*_key; do quirk+=(-h "$k"); done ;;
    esac
    exec /usr/sbin/sshd -D -e -o "ListenAddress=$IP:22" -o PasswordAuthentication=yes -o UsePAM=yes "${quirk[@]}"
  ) &
fi
while :; do wait; done
INIT
chmod 755 "$R/run/tart-sim/init"
export IP SSHD_DELAY_MS SSHD_QUIRK
exec chroot "$R" /run/tart-sim/init
