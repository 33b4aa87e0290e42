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
# cargo-fuzz needs nightly-only compiler flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
(
    cd fuzz
    cargo fuzz build -O
    for target in session spool_reader spool_meta; do
        log="target/fuzz-$target.log"
        mkdir -p target
        if ! cargo fuzz run -O "$target" -- -max_total_time="${FUZZ_SECONDS:-20}" -max_len=4096 >"$log" 2>&1; then
            tail -n 40 "$log" >&2
            echo "fuzz target $target failed: see fuzz/$log and fuzz/artifacts/$target" >&2
            exit 1
        fi
        echo "$target: $(grep -E '^Done' "$log")"
    done
)
unset RUSTC_BOOTSTRAP

step "cargo test"
cargo test --locked
