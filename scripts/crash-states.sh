#!/usr/bin/env bash
# The long crash-state exploration of the spool writer (docs/reliability.md). The test
# command runs a bounded one (about 6000 states); this one explores random workloads of
# STEPS samples, SEEDS of them, and checks BUDGET crash states of each that cannot be
# explored whole. Needs no root and no munin.
#   scripts/crash-states.sh [BUDGET] [STEPS] [SEEDS]      (defaults: 100000 200 5)
set -euo pipefail
cd "$(dirname "$0")/.."
export CRASH_STATES_BUDGET="${1:-100000}"
export CRASH_STATES_STEPS="${2:-200}"
export CRASH_STATES_SEEDS="${3:-5}"
exec cargo test --release --locked --lib \
    spool::crash_tests::tests::every_crash_state_of_the_writers_workloads_keeps_the_invariants \
    -- --nocapture
