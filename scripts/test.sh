#!/usr/bin/env bash
# The project's test command: run as root on a Debian machine. Installs what the tests
# need, then runs formatting, lints, docs, every test, and builds and briefly runs the
# fuzz targets, and tests the Debian package (install, upgrade, purge) on this machine.
# FUZZ_SECONDS (default 20) sets how long each fuzz target runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --fuzz

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check
(cd fuzz && cargo fmt --check)

step "cargo clippy (warnings are errors)"
cargo clippy --all-targets --locked -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items --locked

step "fuzz targets: build and run ${FUZZ_SECONDS:-20} s each"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

step "cargo test, both tiers (--include-ignored: the tests that need root and Debian's munin too)"
cargo test --locked -- --include-ignored

step "the main job: scripts/demo.sh (20 s of spooling)"
DEMO_SECONDS=20 bash scripts/demo.sh

step "Debian package: install over Debian's munin-async, init script, unit, upgrade, purge"
# Last: it replaces Debian's munin-async for a while, which other tests compare against.
bash scripts/package-test.sh
