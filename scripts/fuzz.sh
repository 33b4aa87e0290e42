#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 300), starting from its corpus and from the
# seeds in fuzz/seeds/<target> (real spool files written by Debian's munin-asyncd and ours,
# SPOOL-META files from both, master sessions as munin-update speaks them), and prints the
# executions and crashes of each. A crash leaves its input in fuzz/artifacts/<target>.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (targets: session spool_reader spool_meta)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-300}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(session spool_reader spool_meta)
if ! command -v cargo-fuzz >/dev/null; then
    echo "fuzz: cargo-fuzz is missing: run scripts/setup.sh --fuzz" >&2
    exit 1
fi
# cargo-fuzz needs nightly-only compiler flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
mkdir -p target
status=0
for target in "${targets[@]}"; do
    log="target/fuzz-$target.log"
    mkdir -p "corpus/$target" "artifacts/$target"
    if cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -max_len=4096 >"$log" 2>&1; then
        result="no crash"
    else
        tail -n 40 "$log" >&2
        result="CRASHED: see fuzz/$log and fuzz/artifacts/$target"
        status=1
    fi
    echo "$target: $(grep -E '^Done' "$log" || echo 'no summary'); $(ls "seeds/$target" | wc -l) seeds; $result"
done
exit "$status"
