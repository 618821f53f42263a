#!/usr/bin/env bash
# Builds the Lambda functions the way infra/template.yaml expects them: one `cargo lambda build
# --release --arm64` for the workspace, producing target/lambda/{webhook,sender,template-sync,media,publisher}/bootstrap
# (the template's CodeUri). cargo-lambda is installed pinned into
# .venv/cargo-lambda; it brings Zig for the cross-link.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$WAHOOK_ROOT"

if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    die "the arm64 Rust target is missing: run 'rustup target add aarch64-unknown-linux-gnu' (Lambda runs the functions on Graviton)"
fi
ensure_venv cargo-lambda
export PATH="$VENV_ROOT/cargo-lambda/bin:$PATH"
log "cargo lambda build --release --arm64 (a release build of the AWS SDK takes several minutes)"
cargo lambda build --release --arm64 --bin webhook --bin sender --bin template-sync --bin media --bin publisher
for f in webhook sender template-sync media publisher; do
    [ -x "target/lambda/$f/bootstrap" ] || die "target/lambda/$f/bootstrap was not built"
done
log "built target/lambda/{webhook,sender,template-sync,media,publisher}/bootstrap"
log "next: sam deploy --guided --template-file infra/template.yaml --config-file infra/samconfig.toml"
