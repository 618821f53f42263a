#!/usr/bin/env bash
# The whole pipeline on one machine, no AWS account:
#   moto (DynamoDB with streams, SQS, S3, EventBridge) on 127.0.0.1, with the tables, the sends queue
#   + DLQ, the media queue and bucket, and the event bus created from the code's definitions;
#   wahook-local running the webhook (real HTTP), the sender (fed from SQS) and the publisher (fed
#   from the tables' streams) with the same handler code as Lambda; the Meta simulator, wired both
#   ways (Graph calls go to it; it posts signed inbound and status webhooks to the webhook).
#
#   scripts/dev.sh               start, play the demo, keep running until Ctrl-C, stop everything
#   scripts/dev.sh --detach      start and return once healthy (settings in .wahook/dev.env)
#   scripts/dev.sh down          stop what a detached start started
#   scripts/dev.sh inbound|send|consent|status|timeline|dlq|templates|events|report|demo ...
#                                talk to the running stack (see: scripts/dev.sh help)
#
# WAHOOK_WEBHOOK_PORT / WAHOOK_META_SIM_PORT choose ports (default: free ones); WAHOOK_DEV_DIR the
# state directory (default .wahook); WAHOOK_DEV_BIN_DIR prebuilt binaries (default: build them).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$WAHOOK_ROOT"

STATE=${WAHOOK_DEV_DIR:-$WAHOOK_ROOT/.wahook}
NUMBER=106540352242922

bin_dir() {
    if [ -n "${WAHOOK_DEV_BIN_DIR:-}" ]; then
        echo "$WAHOOK_DEV_BIN_DIR"
    else
        echo "$WAHOOK_ROOT/target/debug"
    fi
}

random_hex() {
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
}

running() {
    local f
    for f in "$STATE"/pids/*.pid; do
        [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && return 0
    done
    return 1
}

# ours PIDFILE PATTERN: whether the PID in the file is still the process we started (its command
# line names PATTERN). A PID left from a crash may since belong to something else: never signal that.
ours() { # PIDFILE PROGRAM: is that pid still PROGRAM (its argv[0], or the script python runs)?
    local pid args prog script
    pid=$(cat "$1" 2>/dev/null) || return 1
    args=$(ps -p "$pid" -o args= 2>/dev/null) || return 1
    read -r prog script _ <<<"$args"
    # The program itself, not a mention of it (`tail -f .../wahook-local.log` is not ours).
    [ "$(basename "$prog")" = "$2" ] && return 0
    case "$(basename "$prog")" in
        python*) [ "$(basename "${script:-}")" = "$2" ] ;;
        *) return 1 ;;
    esac
}

down() {
    local f any= pattern
    for name in wahook-local meta-sim moto; do
        f="$STATE/pids/$name.pid"
        if [ -f "$f" ]; then
            any=1
            pattern=$name
            [ "$name" = moto ] && pattern=moto_server.py
            if ours "$f" "$pattern"; then
                stop_pid_file "$f"
            else
                log "$name (pid $(cat "$f")) is gone or is another program now; not signalling it"
                rm -f "$f"
            fi
        fi
    done
    rm -f "$STATE/dev.env"
    if [ -n "$any" ]; then log "stopped"; fi
}

wait_answer() { # NAME URL PIDFILE
    local name=$1 url=$2 pidfile=$3
    if ! wait_http "$url" 60 "$(cat "$pidfile")"; then
        tail -20 "$STATE/logs/$name.log" >&2 || true
        die "$name did not come up (log: $STATE/logs/$name.log)"
    fi
}

up() {
    if running; then
        die "a local stack is already running from $STATE: use it (scripts/dev.sh timeline …), or stop it first with scripts/dev.sh down"
    fi
    require_python
    # Settings hold the local secrets: only this user may read them.
    umask 077
    mkdir -p "$STATE/pids" "$STATE/logs"
    chmod 700 "$STATE"
    rm -f "$STATE"/pids/*.pid "$STATE/dev.env"
    # Anything started from here on is stopped again if the start fails half-way.
    trap 'status=$?; if [ $status -ne 0 ]; then log "start failed; stopping what was started"; down; fi' EXIT

    # Before the build, so that a PyPI problem shows in a minute rather than after it.
    ensure_venv moto

    local bins
    bins=$(bin_dir)
    if [ -z "${WAHOOK_DEV_BIN_DIR:-}" ]; then
        log "building wahook-local, wahook-dev and meta-sim (the first build compiles the AWS SDK: a few minutes)"
        cargo build --locked --bins -p wahook-local -p wahook-meta-sim
    fi
    for b in wahook-local wahook-dev meta-sim; do
        [ -x "$bins/$b" ] || die "$bins/$b is missing: build it with cargo build --bins -p wahook-local -p wahook-meta-sim"
    done

    local webhook_port=${WAHOOK_WEBHOOK_PORT:-$(free_port)}
    local sim_port=${WAHOOK_META_SIM_PORT:-$(free_port)}
    for p in "$webhook_port" "$sim_port"; do
        if ! python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$p" 2>/dev/null; then
            die "port $p on 127.0.0.1 is taken: free it, or choose others with WAHOOK_WEBHOOK_PORT / WAHOOK_META_SIM_PORT"
        fi
    done

    log "starting moto"
    start_moto "$STATE/pids" >/dev/null 2>&1 || die "moto did not start (log: $STATE/pids/moto.log)"
    mv "$STATE/pids/moto.log" "$STATE/logs/moto.log" 2>/dev/null || true
    export AWS_EC2_METADATA_DISABLED=true

    export WAHOOK_CONTACTS_TABLE=wahook-local-contacts WAHOOK_MESSAGES_TABLE=wahook-local-messages
    export WAHOOK_EVENTS_TABLE=wahook-local-events WAHOOK_SENDS_TABLE=wahook-local-sends
    export WAHOOK_TEMPLATES_TABLE=wahook-local-templates WAHOOK_FIGURES_TABLE=wahook-local-figures
    # An example rate card so `report` shows a cost: not Meta's prices (they change; keep your own).
    export WAHOOK_RATE_CARD='{"52": {"marketing": 0.0436, "utility": 0.0085}, "*": {"marketing": 0.025, "utility": 0.004}}'
    log "creating the tables, the sends queue with its DLQ, the media queue and the media bucket"
    eval "$("$bins/wahook-dev" provision wahook-local-sends | sed 's/^/export /')"

    # From the OS random source: a local stack listens on 127.0.0.1, but other users of the machine
    # should not be able to guess its secrets.
    export WAHOOK_APP_SECRET="local-app-secret-$(random_hex)"
    export WAHOOK_VERIFY_TOKEN="local-verify-token-$(random_hex)"
    export WAHOOK_ACCESS_TOKEN=local-access-token
    export WAHOOK_DEFAULT_PHONE_NUMBER_ID=$NUMBER
    # The simulator's business account: the template registry is read under it.
    export WAHOOK_WABA_ID=102290129340398
    export WAHOOK_WEBHOOK_PORT=$webhook_port
    export WAHOOK_WEBHOOK_URL="http://127.0.0.1:$webhook_port/webhook"
    export WAHOOK_META_SIM_PORT=$sim_port
    export WAHOOK_META_SIM_URL="http://127.0.0.1:$sim_port"
    export WAHOOK_META_SIM_WEBHOOK_URL=$WAHOOK_WEBHOOK_URL
    export WAHOOK_GRAPH_BASE_URL=$WAHOOK_META_SIM_URL
    # Locally a lost answer is reconciled sooner than the 120 s a deployment waits.
    export WAHOOK_RECONCILE_WAIT_SECONDS=10

    log "starting the Meta simulator on $WAHOOK_META_SIM_URL"
    "$bins/meta-sim" >"$STATE/logs/meta-sim.log" 2>&1 &
    echo $! >"$STATE/pids/meta-sim.pid"
    wait_answer meta-sim "$WAHOOK_META_SIM_URL/_sim/health" "$STATE/pids/meta-sim.pid"

    log "starting the webhook on $WAHOOK_WEBHOOK_URL and the sender"
    "$bins/wahook-local" >"$STATE/logs/wahook-local.log" 2>&1 &
    echo $! >"$STATE/pids/wahook-local.pid"
    wait_answer wahook-local "$WAHOOK_WEBHOOK_URL" "$STATE/pids/wahook-local.pid"

    {
        for k in WAHOOK_WEBHOOK_URL WAHOOK_META_SIM_URL AWS_ENDPOINT_URL AWS_REGION AWS_DEFAULT_REGION AWS_ACCESS_KEY_ID \
            AWS_SECRET_ACCESS_KEY WAHOOK_SENDS_QUEUE_URL WAHOOK_SENDS_DLQ_URL WAHOOK_MEDIA_QUEUE_URL WAHOOK_MEDIA_BUCKET \
            WAHOOK_EVENT_BUS_NAME WAHOOK_EVENTS_TAP_URL WAHOOK_CONTACTS_TABLE \
            WAHOOK_MESSAGES_TABLE WAHOOK_EVENTS_TABLE WAHOOK_SENDS_TABLE WAHOOK_TEMPLATES_TABLE WAHOOK_FIGURES_TABLE WAHOOK_APP_SECRET \
            WAHOOK_VERIFY_TOKEN WAHOOK_ACCESS_TOKEN WAHOOK_DEFAULT_PHONE_NUMBER_ID WAHOOK_WABA_ID; do
            echo "$k=${!k}"
        done
    } >"$STATE/dev.env"
    chmod 600 "$STATE/dev.env"
    trap - EXIT
    log "up. Settings in ${STATE#$WAHOOK_ROOT/}/dev.env; logs in ${STATE#$WAHOOK_ROOT/}/logs/"
}

case "${1:-up}" in
up | --detach)
    up
    if [ "${1:-up}" = --detach ]; then
        log "detached; stop it with scripts/dev.sh down"
        exit 0
    fi
    trap 'echo; down; exit 0' INT TERM
    WAHOOK_DEV_ENV="$STATE/dev.env" "$(bin_dir)/wahook-dev" demo || { down; exit 1; }
    echo
    log "the stack keeps running; try, in another terminal:"
    log "  scripts/dev.sh inbound --from +5215512345678 --text 'Hola otra vez'"
    log "  scripts/dev.sh timeline +5215512345678"
    log "Ctrl-C stops everything"
    while running; do sleep 1; done
    log "a process of the stack exited (see $STATE/logs/); stopping the rest"
    down
    exit 1
    ;;
down)
    if ! running && [ ! -f "$STATE/dev.env" ]; then
        log "nothing is running from $STATE"
    fi
    down
    ;;
inbound | send | consent | status | timeline | dlq | templates | events | report | demo)
    [ -f "$STATE/dev.env" ] || die "the stack is not up: start it with scripts/dev.sh --detach"
    exec env WAHOOK_DEV_ENV="$STATE/dev.env" "$(bin_dir)/wahook-dev" "$@"
    ;;
help | -h | --help)
    # The comment block at the top of this file, up to the first line of code.
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
    "$(bin_dir)/wahook-dev" help 2>&1 | tail -n +2 || true
    ;;
*)
    die "unknown command $1: see scripts/dev.sh help"
    ;;
esac
