#!/usr/bin/env bash
# Benchmarks: the webhook core (criterion, no services) and the sender (a harness against moto and
# the Meta simulator, which this script starts and stops). Figures are ratios measured in one run;
# compare them, not absolute times, across machines.
#   scripts/bench.sh           both
#   scripts/bench.sh webhook   the criterion benchmark only
#   scripts/bench.sh sender    the sender harness only
#   scripts/bench.sh fuzz [cases] [seed]
#                              the long fuzz run (default 1,000,000 cases; not part of "all")
#   scripts/bench.sh instructions
#                              instructions per delivery (callgrind) of the webhook core, of HMAC-SHA256
#                              alone, and of parse + plan (the difference): unlike times, counts do not move
#                              with a shared machine's load, so they show what a change to the core did
#   scripts/bench.sh compare [--smoke]
#                              wahook beside the peer a team would pick instead, in one run: the webhook
#                              core against pywa (pinned, in .venv/pywa) on the same payload files, cold
#                              starts of the release `webhook` and of Python + pywa + boto3 under
#                              tools/coldstart, and the Lambda package sizes; prints one table of ratios.
#                              --smoke: debug build and tiny samples (CI proves it runs; figures mean nothing)
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

if [ "$what" = instructions ]; then
    command -v valgrind >/dev/null || die "valgrind is needed to count instructions (apt-get install valgrind)"
    cargo bench --locked -p wahook --bench webhook_core --no-run 2>&1 | tail -1
    bench_bin=$(cargo bench --locked -p wahook --bench webhook_core --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "webhook_core" and m.get("executable"):
        print(m["executable"])')
    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wahook-instructions.XXXXXX")
    trap 'rm -rf "$RUN_DIR"' EXIT
    # Instructions of one run of n iterations, less those of a run of none (start-up, payload building).
    instructions() { # mode case n
        WAHOOK_BENCH_COUNT="$2:$3" WAHOOK_BENCH_COUNT_MODE="$1" valgrind --tool=callgrind \
            --callgrind-out-file="$RUN_DIR/out" "$bench_bin" >/dev/null 2>"$RUN_DIR/log" ||
            { cat "$RUN_DIR/log"; die "callgrind failed"; }
        sed -n 's/^summary: //p' "$RUN_DIR/out"
    }
    # valgrind's CPU has no SHA extensions, so HMAC runs in software here: a ratio to it would not be
    # the ratio of times. What the counts are for is parse + plan before and after a change.
    printf '%-16s %16s %16s %18s\n' case "hmac (instr)" "core (instr)" "parse+plan (instr)"
    for case in text_625B:200 statuses_1000:5; do
        name=${case%%:*} n=${case##*:}
        per() { echo $(( ($(instructions "$1" "$name" "$n") - $(instructions "$1" "$name" 0)) / n )); }
        hmac=$(per hmac) core=$(per core)
        printf '%-16s %16s %16s %18s\n' "$name" "$hmac" "$core" "$((core - hmac))"
    done
    exit 0
fi

if [ "$what" = compare ]; then
    smoke=false
    [ "${2:-}" = --smoke ] && smoke=true
    ensure_venv pywa
    RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wahook-compare.XXXXXX")
    trap 'rm -rf "$RUN_DIR"' EXIT
    export WAHOOK_BENCH_PAYLOAD_DIR="$RUN_DIR/payloads"
    if $smoke; then
        # The test build's profile and artifacts: no release build of the SDK just to prove this runs.
        bench_profile=dev profile=dev out=debug runs=2 pywa_seconds=0.2
        # Workspace-wide, as the test build resolves features: every artifact is the test build's.
        scope=(--workspace --all-targets)
        criterion_args=(--warm-up-time 0.05 --measurement-time 0.1 --sample-size 10)
        # Its own criterion output: a smoke run must not become the baseline of the next real one.
        export CRITERION_HOME="$RUN_DIR/criterion"
    else
        # criterion under the bench profile (release with symbols, as `scripts/bench.sh webhook`); the
        # functions as they ship.
        bench_profile=bench profile=release out=release runs=20 pywa_seconds=3
        # The functions alone, with their own features, as cargo lambda builds them.
        scope=(-p wahook-webhook -p wahook-sender -p wahook-template-sync -p wahook-media -p wahook-publisher -p wahook-coldstart --bins)
        criterion_args=()
    fi
    log "webhook core: criterion ($bench_profile profile)"
    cargo bench --locked --profile "$bench_profile" --workspace --bench webhook_core -- ${criterion_args[@]+"${criterion_args[@]}"} >"$RUN_DIR/criterion.log" ||
        { cat "$RUN_DIR/criterion.log"; die "the criterion benchmark failed"; }
    grep -E '^[a-z_0-9]+/|time:' "$RUN_DIR/criterion.log" || true
    log "webhook core: $(cat "$WAHOOK_ROOT/scripts/python/pywa.in" | tr '\n' ' ')on the same payload files"
    "$VENV_ROOT/pywa/bin/python" scripts/bench/pywa_core.py --seconds "$pywa_seconds" --out "$RUN_DIR/pywa.json" \
        text_625B="$WAHOOK_BENCH_PAYLOAD_DIR/text-hola.json" statuses_1000="$WAHOOK_BENCH_PAYLOAD_DIR/statuses-1000.json"

    log "cold starts: the $profile webhook, sender and publisher binaries and Python + pywa + boto3, $runs runs each"
    cargo build --locked --profile "$profile" "${scope[@]}"
    bin="$WAHOOK_TARGET_DIR/$out"
    # Secrets from env, fixture values; the endpoint is never called by the verification event.
    cold_env=(--env WAHOOK_APP_SECRET=wahook-fixture-app-secret --env WAHOOK_VERIFY_TOKEN=wahook-fixture-verify-token
        --env AWS_ACCESS_KEY_ID=testing --env AWS_SECRET_ACCESS_KEY=testing --env AWS_EC2_METADATA_DISABLED=true
        --env AWS_ENDPOINT_URL=http://127.0.0.1:9)
    cold=("$bin/coldstart" --runs "$runs" --event events/apigw-get-verify.json --expect-status 200 "${cold_env[@]}")
    "${cold[@]}" --label "wahook webhook" --json "$RUN_DIR/cold-wahook.json" -- "$bin/webhook"
    # The sender with an empty batch: its init (config, SDK clients, the Graph client) and memory.
    # (`{"Records":[]}` is an empty batch for the publisher's stream event too.)
    echo '{"Records":[]}' >"$RUN_DIR/sqs-empty.json"
    "$bin/coldstart" --runs "$runs" --event "$RUN_DIR/sqs-empty.json" "${cold_env[@]}" --env WAHOOK_ACCESS_TOKEN=bench-token \
        --env WAHOOK_SENDS_QUEUE_URL=http://127.0.0.1:9/123456789012/sends \
        --env WAHOOK_SENDS_DLQ_URL=http://127.0.0.1:9/123456789012/sends-dlq \
        --label "wahook sender" --json "$RUN_DIR/cold-sender.json" -- "$bin/sender"
    # The publisher with an empty stream batch: its init (config, the DynamoDB and EventBridge clients).
    "$bin/coldstart" --runs "$runs" --event "$RUN_DIR/sqs-empty.json" "${cold_env[@]}" \
        --label "wahook publisher" --json "$RUN_DIR/cold-publisher.json" -- "$bin/publisher"
    "${cold[@]}" --label "python+pywa+boto3" --json "$RUN_DIR/cold-python.json" -- \
        "$VENV_ROOT/pywa/bin/python" scripts/bench/pywa_lambda.py
    printf '%s\n' "$bin/webhook" "$bin/sender" "$bin/template-sync" "$bin/media" "$bin/publisher" >"$RUN_DIR/binaries.txt"

    log "the table"
    smoke_flag=()
    $smoke && smoke_flag=(--smoke)
    "$VENV_ROOT/pywa/bin/python" scripts/bench/compare.py "$RUN_DIR" "${CRITERION_HOME:-$WAHOOK_TARGET_DIR/criterion}" ${smoke_flag[@]+"${smoke_flag[@]}"}
    exit 0
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
