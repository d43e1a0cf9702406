#!/usr/bin/env bash
# The project's whole test run, from a fresh Linux machine: installs what is missing, then
# format, lint (for Linux, and for the Mac with scripts/check-macos.sh) and every test (the
# simulator's guests need root, as CI has; the Orchard tests run the real orchard binary).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --with-nextest
# The orchard binary install-deps.sh installed (or $ORCHARD_BIN), for the Orchard tests.
TARTLAB_TEST_ORCHARD="$(bash scripts/install-orchard.sh --path)"
export TARTLAB_TEST_ORCHARD
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# tartlab as an Apple Silicon Mac compiles it: a macOS-only error or warning fails the run.
bash scripts/check-macos.sh
cargo nextest run --workspace --no-fail-fast "$@"
