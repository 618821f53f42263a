#!/usr/bin/env bash
# Benchmarks: the webhook core (criterion, no services) and the sender (a harness against moto and
# the Meta simulator, which this script starts and stops). Figures are ratios measured in one run;
# compare them, not absolute times, across machines.
#   scripts/bench.sh           both
#   scripts/bench.sh webhook   the criterion benchmark only
#   scripts/bench.sh sender    the sender harness only
#   scripts/bench.sh fuzz [cases] [seed]
#                              the long fuzz run (default 1,000,000 cases; not part of "all")
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$WAHOOK_ROOT"
what=${1:-all}

if [ "$what" = fuzz ]; then
    log "fuzz: mutated payloads and requests through every parser input reaches"
    # The dev profile: it shares the test build, and keeps debug assertions and overflow checks on,
    # which is what a fuzz run wants (about 2,500 cases/s on 2 cores: a million in ~7 min).
    exec cargo run --locked -p wahook-tests --bin fuzz -- "${2:-1000000}" "${3:-24301}"
fi

if [ "$what" = all ] || [ "$what" = webhook ]; then
    log "webhook core: signature + parse + plan, against HMAC alone"
    cargo bench -p wahook --bench webhook_core
fi
if [ "$what" = all ] || [ "$what" = sender ]; then
    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wahook-bench.XXXXXX")
    trap 'stop_pid_file "$RUN_DIR/moto.pid"; rm -rf "$RUN_DIR"' EXIT
    start_moto "$RUN_DIR"
    log "sender: batch latency, pacing, DynamoDB requests per send"
    cargo run --release --locked -p wahook-tests --bin sender-bench
fi
