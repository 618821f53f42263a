# Shared by the scripts: pinned Python tools in git-ignored venvs, and services on 127.0.0.1 that are
# started and stopped by PID. Source it; do not run it.

WAHOOK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV_ROOT="$WAHOOK_ROOT/.venv"
# Where cargo puts its output (a team may share one target dir across checkouts).
WAHOOK_TARGET_DIR="${CARGO_TARGET_DIR:-$WAHOOK_ROOT/target}"

log() { printf '\033[1m[wahook]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[wahook] error:\033[0m %s\n' "$*" >&2; exit 1; }

require_python() {
    command -v python3 >/dev/null 2>&1 ||
        die "python3 not found: install Python 3.9+ with pip and venv (Debian/Ubuntu: apt-get install python3 python3-venv)"
    python3 -c 'import venv, ensurepip' 2>/dev/null ||
        die "python3 cannot create virtual environments: install the venv module (Debian/Ubuntu: apt-get install python3-venv)"
}

# ensure_venv NAME: .venv/NAME with scripts/python/NAME.in installed under the pins of NAME.lock.
# Reinstalls only when those two files change.
ensure_venv() {
    local name=$1
    local dir="$VENV_ROOT/$name"
    local req="$WAHOOK_ROOT/scripts/python/$name.in"
    local lock="$WAHOOK_ROOT/scripts/python/$name.lock"
    installed_from "$dir" "$req" "$lock" && return 0
    require_python
    log "installing $(tr '\n' ' ' <"$req")into .venv/$name (pinned; first run takes about a minute)"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" -c "$lock" ||
        die "pip could not install $(cat "$req"): check network access to PyPI (or a PIP_INDEX_URL mirror)"
    mark_installed "$dir" "$req" "$lock"
}

# installed_from DIR FILE...: whether DIR was installed from exactly these pin files.
installed_from() {
    local dir=$1
    shift
    [ -f "$dir/.wahook-stamp" ] && [ "$(cat "$dir/.wahook-stamp")" = "$(cat "$@" | sha256sum | cut -d' ' -f1)" ]
}

# mark_installed DIR FILE...: records that DIR now holds what these pin files say.
mark_installed() {
    local dir=$1
    shift
    cat "$@" | sha256sum | cut -d' ' -f1 >"$dir/.wahook-stamp"
}

# ensure_node_example: .venv/node with the pinned packages of scripts/node (the AWS SDK for
# JavaScript that the README's Node example imports). Reinstalls only when the lock changes.
ensure_node_example() {
    local dir="$VENV_ROOT/node"
    local pins=("$WAHOOK_ROOT/scripts/node/package.json" "$WAHOOK_ROOT/scripts/node/package-lock.json")
    installed_from "$dir" "${pins[@]}" && return 0
    log "installing the pinned AWS SDK for JavaScript into .venv/node (for the README's Node example)"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "${pins[@]}" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
        die "npm could not install scripts/node's packages: check network access to the npm registry"
    mark_installed "$dir" "${pins[@]}"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL SECONDS PID: until URL answers, the process PID dies, or time runs out.
wait_http() {
    local url=$1 seconds=$2 pid=$3
    python3 - "$url" "$seconds" "$pid" <<'PY'
import os, sys, time, urllib.request, urllib.error
url, deadline, pid = sys.argv[1], time.time() + float(sys.argv[2]), int(sys.argv[3])
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(2)
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # it answered
    except Exception:
        time.sleep(0.1)
sys.exit(1)
PY
}

# start_moto RUN_DIR: moto's server on a free 127.0.0.1 port; exports AWS_* so the SDK reaches it.
start_moto() {
    local run_dir=$1 port pid attempt
    ensure_venv moto
    for attempt in 1 2 3; do
        port=$(free_port)
        # Our launcher: moto_server with DynamoDB requests serialized (see scripts/moto_server.py).
        "$VENV_ROOT/moto/bin/python" "$WAHOOK_ROOT/scripts/moto_server.py" 127.0.0.1 "$port" >"$run_dir/moto.log" 2>&1 &
        pid=$!
        echo "$pid" >"$run_dir/moto.pid"
        if wait_http "http://127.0.0.1:$port/moto-api/" 30 "$pid"; then
            export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
            export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
            export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
            unset AWS_PROFILE AWS_SESSION_TOKEN
            log "moto listening on $AWS_ENDPOINT_URL (pid $pid, log $run_dir/moto.log)"
            return 0
        fi
        stop_pid_file "$run_dir/moto.pid"
        log "moto did not start on port $port (attempt $attempt); see $run_dir/moto.log"
    done
    tail -20 "$run_dir/moto.log" >&2 || true
    die "could not start moto"
}

# stop_pid_file FILE: stops the process whose PID the file holds (TERM, then KILL after 5 s).
stop_pid_file() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    rm -f "$file"
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

# check_infra: offline checks of infra/template.yaml. cfn-lint on the SAM template and on its
# CloudFormation translation (cfn-lint sees inside SAM resources only after translation), then checkov
# on both; every checkov skip is written next to its resource with the reason.
check_infra() {
    ensure_venv iac
    ensure_venv checkov
    local out="$WAHOOK_ROOT/target/iac"
    mkdir -p "$out"
    log "cfn-lint infra/template.yaml (SAM, then translated)"
    "$VENV_ROOT/iac/bin/cfn-lint" --regions us-east-1 -- "$WAHOOK_ROOT/infra/template.yaml"
    AWS_DEFAULT_REGION=us-east-1 "$VENV_ROOT/iac/bin/python" "$WAHOOK_ROOT/infra/rehearse.py" translate "$out/template.json"
    "$VENV_ROOT/iac/bin/cfn-lint" --regions us-east-1 -- "$out/template.json"
    log "checkov (SAM, then translated)"
    for f in "$WAHOOK_ROOT/infra/template.yaml" "$out/template.json"; do
        "$VENV_ROOT/checkov/bin/checkov" -f "$f" --framework cloudformation --skip-download --quiet --compact ||
            die "checkov found problems in $f: fix them, or skip one in the template's Metadata with a reason"
    done
}

# rehearse_deploy RUN_DIR: creates the stack in moto's CloudFormation (moto must be running) and
# exports WAHOOK_REHEARSAL_REPORT for tests/infra_template.rs.
rehearse_deploy() {
    local run_dir=$1
    ensure_venv iac
    log "rehearsing a deploy of infra/template.yaml into moto's CloudFormation"
    "$VENV_ROOT/iac/bin/python" "$WAHOOK_ROOT/infra/rehearse.py" deploy wahook-rehearsal "$run_dir/rehearsal.json"
    export WAHOOK_REHEARSAL_REPORT="$run_dir/rehearsal.json"
}
