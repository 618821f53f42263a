#!/usr/bin/env bash
# Benchmarks: the webhook core (criterion, no services) and the sender (a harness against moto and
# the Meta simulator, which this script starts and stops). Figures are ratios measured in one run;
# compare them, not absolute times, across machines.
#   scripts/bench.sh           both
#   scripts/bench.sh webhook   the criterion benchmark only
#   scripts/bench.sh sender    the sender harness only
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$WAHOOK_ROOT"
what=${1:-all}

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
