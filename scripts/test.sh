#!/usr/bin/env bash
# The project's test command: run as root on a Debian machine. Installs what the tests
# need, then runs formatting, lints, docs, every test, and builds and briefly runs the
# fuzz targets. FUZZ_SECONDS (default 20) sets how long each fuzz target runs.
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
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked

step "fuzz targets: build and run ${FUZZ_SECONDS:-20} s each"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

step "cargo test"
cargo test --locked
