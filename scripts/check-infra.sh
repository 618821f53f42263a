#!/usr/bin/env bash
# Checks infra/template.yaml on its own: cfn-lint and checkov, then a rehearsed deploy into moto and
# the test that compares what it created with the code. (scripts/test.sh does all of this too.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$WAHOOK_ROOT"
check_infra
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wahook-infra.XXXXXX")
trap 'stop_pid_file "$RUN_DIR/moto.pid"; rm -rf "$RUN_DIR"' EXIT
start_moto "$RUN_DIR"
rehearse_deploy "$RUN_DIR"
cargo test --locked -p wahook-tests --test infra_template
