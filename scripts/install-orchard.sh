#!/usr/bin/env bash
# Makes the `orchard` binary (controller, worker and CLI in one) available to the Orchard
# tests, never downloading it at test time. In this order: $ORCHARD_BIN as is; else the
# build with the test-only tart-runtime patch from ../shared/tools/orchard/ beside the
# checkout, unpacked and checked against its sha256; else built from a clone of
# cirruslabs/orchard at the same commit with that patch (needs Go and the network). The
# unpatched build (vetu runtime) goes beside it for an optional smoke test. Prints which it
# used. Idempotent: a binary already in place with the right sha256 is kept.
# `install-orchard.sh --path` only prints where the tests find the patched binary.
set -euo pipefail

dest_dir=/opt/tartlab-test-tools/orchard
dest="$dest_dir/orchard"              # patched: ORCHARD_WORKER_RUNTIME=tart works on Linux
dest_vetu="$dest_dir/orchard-vetu"    # unpatched: a Linux worker always uses vetu
if [ "${1:-}" = --path ]; then
  echo "${ORCHARD_BIN:-$dest}"
  exit 0
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="$repo/../shared/tools/orchard"
commit=b30bb5bedf23
sha_patched=0a4b955aa390b25469c08bfd1a9ef8a9b351f2cac73e3fe37a78ba742ec3e1f2
sha_vetu=7880b48cb5d9010dbd9576c9c4b352982aae44897a58c195f8c5748b71a31722

has_sha() { [ -x "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# Unpacks an .xz build to DEST through a temporary file, so a half-written binary is never
# left where the tests look; fails on a sha256 mismatch.
unpack() {
  local xz="$1" out="$2" sha="$3"
  has_sha "$out" "$sha" && return 0
  mkdir -p "$(dirname "$out")"
  xz -dc "$xz" > "$out.tmp"
  chmod 755 "$out.tmp"
  if ! has_sha "$out.tmp" "$sha"; then
    rm -f "$out.tmp"
    echo "install-orchard: $xz does not unpack to sha256 $sha" >&2
    exit 1
  fi
  mv -f "$out.tmp" "$out"
}

# Orchard's own build (shared/tools/orchard/README.md): `go install` refuses orchard (its
# go.mod has a replace), so clone, patch (scripts/orchard/, the same patch) and build.
build_from_source() {
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  git clone -q https://github.com/cirruslabs/orchard "$work/orchard"
  git -C "$work/orchard" checkout -q "$commit"
  git -C "$work/orchard" apply "$repo/scripts/orchard/tart-runtime-on-linux.patch"
  mkdir -p "$(dirname "$1")"
  (cd "$work/orchard" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$1.tmp" ./cmd/orchard)
  mv -f "$1.tmp" "$1"
}

if [ -n "${ORCHARD_BIN:-}" ]; then
  [ -x "$ORCHARD_BIN" ] || { echo "install-orchard: ORCHARD_BIN=$ORCHARD_BIN is not an executable" >&2; exit 1; }
  echo "install-orchard: using \$ORCHARD_BIN ($ORCHARD_BIN) as is"
elif [ -f "$shared/orchard-tart-runtime-linux-amd64.xz" ]; then
  unpack "$shared/orchard-tart-runtime-linux-amd64.xz" "$dest" "$sha_patched"
  echo "install-orchard: using $dest (unpacked from ../shared/tools/orchard, sha256 checked)"
else
  [ -x "$dest" ] || {   # a build of its own: its sha256 depends on the Go version
    echo "install-orchard: no ../shared/tools/orchard; building orchard $commit with the tart-runtime patch"
    build_from_source "$dest"
  }
  echo "install-orchard: using $dest (built from cirruslabs/orchard $commit with the patch)"
fi

# The unpatched build, for the optional vetu smoke test; its absence fails no test.
if [ -f "$shared/orchard-linux-amd64.xz" ]; then
  unpack "$shared/orchard-linux-amd64.xz" "$dest_vetu" "$sha_vetu"
fi
