#!/usr/bin/env bash
# The test command (README, and what CI runs through .ci/run): on a fresh machine with the Rust
# toolchain and Python 3 it installs what it needs, then checks formatting and lints, checks the SAM
# template offline (cfn-lint, checkov), starts moto on 127.0.0.1, rehearses a deploy of the template
# into it, runs every test of the workspace against it, and stops moto, also on failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$WAHOOK_ROOT"

log "cargo fmt --check"
cargo fmt --all -- --check || die "code is not formatted: run cargo fmt --all"

log "cargo clippy (warnings are errors)"
cargo clippy --locked --workspace --all-targets -- -D warnings

check_infra

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wahook-test.XXXXXX")
cleanup() {
    stop_pid_file "$RUN_DIR/moto.pid"
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT
start_moto "$RUN_DIR"
rehearse_deploy "$RUN_DIR"

log "cargo test --workspace"
cargo test --locked --workspace --no-fail-fast "$@"
log "all tests passed"
