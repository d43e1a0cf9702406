#!/usr/bin/env bash
# Compiles tartlab for an Apple Silicon Mac, here on Linux: `cargo check` and
# `cargo clippy -- -D warnings` of package tartlab, every target, for aarch64-apple-darwin.
# It type-checks and lints every line a Mac compiles (macOS's libc types included); it
# links and runs nothing (docs/TESTING.md). Installs what it needs once, and only that:
# Debian's rustc-web, cargo-web, rust-web-src and rust-web-clippy (a compiler that targets
# macOS, with the std sources of its own version, built here with -Zbuild-std), and zig
# from PyPI's ziglang (in a venv under /opt/tartlab-test-tools) as the C compiler for
# ring's build script. Where rustup has the target installed (GitHub's runner), its std is
# used instead and nothing comes from apt. Its own target directory keeps the Linux build.
# Extra arguments go to both cargo commands.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-apple-darwin
# The version PyPI's ziglang was checked at: its macOS headers compile ring.
zig_version=0.17.1
zig_venv=/opt/tartlab-test-tools/zig
target_dir=${TARTLAB_MACOS_TARGET_DIR:-$PWD/target/macos-check}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
}

zig_install() {
  if [ ! -x "$zig_venv/bin/python" ] ||
    ! "$zig_venv/bin/python" -m ziglang version 2>/dev/null | grep -qx "$zig_version"; then
    echo "check-macos: installing ziglang $zig_version into $zig_venv (a C compiler for macOS)"
    if ! python3 -m venv --clear "$zig_venv" >/dev/null 2>&1; then
      apt_install python3-venv python3-pip
      python3 -m venv --clear "$zig_venv"
    fi
    "$zig_venv/bin/pip" install -q --disable-pip-version-check "ziglang==$zig_version"
  fi
}

unset RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER
if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  # rustup's own std for the target, where it can be downloaded (GitHub's Linux runner:
  # dtolnay/rust-toolchain adds it in .github/workflows/ci.yml).
  build_std=()
  clippy=(cargo clippy)
  std_from="rustup's $target std"
else
  need_apt=()
  for pkg in rustc-web cargo-web rust-web-src rust-web-clippy; do
    dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed ||
      need_apt+=("$pkg")
  done
  if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "check-macos: ${need_apt[*]} missing; install them with apt-get as root, or run this as root" >&2
      exit 1
    fi
    echo "check-macos: installing ${need_apt[*]} (Debian's Rust, which can target macOS)"
    apt_install "${need_apt[@]}"
  fi
  # Debian's tools, not rustup's proxies (1.95 here), which do not match the std sources.
  export PATH=/usr/bin:$PATH
  export RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo RUSTDOC=/usr/bin/rustdoc
  unset RUSTUP_TOOLCHAIN
  # -Zbuild-std is unstable; Debian's 1.96 is a stable compiler.
  export RUSTC_BOOTSTRAP=1
  rustc_version=$(rustc --version | awk '{print $2}')
  std_src=$(readlink -f "$(rustc --print sysroot)/lib/rustlib/src/rust")
  if [ "$(basename "$std_src")" != "rustc-$rustc_version" ]; then
    echo "check-macos: $RUSTC is $rustc_version but the std sources are $std_src" >&2
    exit 1
  fi
  build_std=("-Zbuild-std=std,panic_abort")
  # /usr/bin's cargo-clippy runs its own clippy-driver: `cargo clippy` would find rustup's
  # proxy in ~/.cargo/bin first.
  clippy=(/usr/bin/cargo-clippy clippy)
  std_from="std built from $std_src ($(dpkg-query -W -f='${Version}' rust-web-src))"
fi
zig_install

export CARGO_TARGET_DIR=$target_dir
zig=$("$zig_venv/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
export TARTLAB_ZIG=$zig
export ZIG_GLOBAL_CACHE_DIR=$target_dir/zig-cache ZIG_LOCAL_CACHE_DIR=$target_dir/zig-cache
# cc-rs (ring's build script) takes these for the target; they give zig its own target.
export CC_aarch64_apple_darwin=$PWD/scripts/macos-check/cc
export AR_aarch64_apple_darwin=$PWD/scripts/macos-check/ar
echo "check-macos: $(rustc --version) at $(command -v rustc), $std_from," \
  "$("${clippy[@]}" --version), C by zig $("$zig" version) ($zig)"

cargo=(-p tartlab --all-targets --locked --target "$target" "${build_std[@]}")
cargo check "${cargo[@]}" "$@"
"${clippy[@]}" "${cargo[@]}" "$@" -- -D warnings
echo "check-macos: tartlab checks and lints clean for $target"
