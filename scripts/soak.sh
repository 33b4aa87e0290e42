#!/usr/bin/env bash
# The long soak of docs/reliability.md: munin-asyncd on plugins at 1 to 5 second rates for
# SECONDS (default 600), munin-node taken away in the middle (a quarter of the run, at most
# 150 s), a reader moving its cursor like Debian's master. Prints what was taken and delivered. As root.
#   scripts/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
seconds="${1:-600}"
MUNIN_ASYNC_SOAK_SECONDS="$seconds" cargo test --release --test tests soak:: -- --include-ignored --nocapture 2>&1 \
    | grep -E '^(soak:|test |test result)|panicked|assert'
