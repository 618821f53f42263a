#!/usr/bin/env bash
# The test command (README, and what CI runs through .ci/run): on a fresh machine with the Rust
# toolchain and Python 3 it installs what it needs, then checks formatting and lints, checks the SAM
# template offline (cfn-lint, checkov), starts moto on 127.0.0.1, rehearses a deploy of the template
# into it, runs every test of the workspace against it (tests/local_stack.rs also brings the whole
# local stack up and down through scripts/dev.sh, and tests/readme.rs runs the README's commands
# and examples), and stops moto, also on failure.
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

# tests/readme.rs runs the README's commands and producer examples: the aws CLI (pinned, in its own
# venv) and, where Node.js is installed, the pinned AWS SDK for JavaScript.
ensure_venv awscli
if command -v node >/dev/null && command -v npm >/dev/null; then
    ensure_node_example
else
    log "Node.js not found: the README's Node example will not be run"
    export WAHOOK_README_NODE=skip
fi

# tests/local_stack.rs drives scripts/dev.sh as a user would; it gets prebuilt binaries so that no
# build runs inside a test.
log "building the local stack's binaries"
cargo build --locked --bins -p wahook-local -p wahook-meta-sim
export WAHOOK_DEV_BIN_DIR="$WAHOOK_ROOT/target/debug"
# tests/faults.rs starts a moto of its own, to pause it with SIGSTOP without stalling other tests.
export WAHOOK_MOTO_PYTHON="$VENV_ROOT/moto/bin/python"

log "cargo test --workspace"
cargo test --locked --workspace --no-fail-fast "$@"

# The peer comparison on a tiny sample (debug build): proves scripts/bench.sh compare runs on a fresh
# machine; the full run is on demand (README, Performance).
# Not when the caller narrowed the tests with arguments.
if [ $# -eq 0 ]; then
    log "scripts/bench.sh compare --smoke"
    bash scripts/bench.sh compare --smoke
fi
log "all tests passed"
