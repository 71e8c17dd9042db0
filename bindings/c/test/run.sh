#!/usr/bin/env bash
# End-to-end tests of kb-producer: dry runs, a fake Kinesis endpoint with partial
# failures, setup errors, and --key-field / --format ndjson against the command-line
# tool's answers for the same file.
#
#   PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig bash bindings/c/test/run.sh
#
# Needs an installed kinesis_batcher (`make install PREFIX=...` at the repository root)
# found through PKG_CONFIG_PATH; LD_LIBRARY_PATH is set from its libdir. Installs
# libcurl's headers and pkg-config with apt-get when they are missing. Builds into
# target/ (never the source tree) and cleans up its temporary files. The command-line
# tool is target/release/kinesis-batcher, built with cargo (a no-op when it is up to
# date); KB_CLI=PATH uses another build and skips cargo.
#
# KB_PRODUCER_WRAP="valgrind --error-exitcode=99 --leak-check=full ..." runs every
# kb-producer under that command; KB_PRODUCER_QUICK=1 skips the timed runs (8-vs-1
# throughput, the 200 MB memory bound), as a wrapper would make them meaningless.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
HERE=$ROOT/bindings/c/test
BUILD=${KB_PRODUCER_BUILD:-$ROOT/target/bindings-c} # CFLAGS/LDFLAGS pass through to make
START=$SECONDS

say() { printf '\n== %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# ---- Dependencies and build ----------------------------------------------------------
if ! command -v pkg-config >/dev/null || ! pkg-config --exists libcurl; then
    command -v apt-get >/dev/null || die "install pkg-config and libcurl's headers"
    say "installing pkg-config and libcurl4-openssl-dev"
    apt-get install -y -q pkg-config libcurl4-openssl-dev >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q pkg-config libcurl4-openssl-dev >/dev/null; }
fi
pkg-config --exists kinesis_batcher ||
    die "kinesis_batcher.pc not found: run 'make install PREFIX=...' at the root and set PKG_CONFIG_PATH"
LIBDIR=$(pkg-config --variable=libdir kinesis_batcher)
export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

say "building kb-producer into $BUILD"
make -s -C "$ROOT/bindings/c" BUILD="$BUILD"
P=$BUILD/kb-producer

if [[ -n ${KB_CLI:-} ]]; then
    CLI=$KB_CLI
else
    say "building the command-line tool (cargo build --release -p kinesis-batcher-cli)"
    CLI=$ROOT/target/release/kinesis-batcher
    command -v cargo >/dev/null || die "cargo is needed to build $CLI (or set KB_CLI)"
    (cd "$ROOT" && cargo build --release -q -p kinesis-batcher-cli)
fi
[[ -x $CLI ]] || die "no kinesis-batcher at $CLI"

mkdir -p "$ROOT/target"
WORK=$(mktemp -d "$ROOT/target/bindings-c-test.XXXXXX")
QUICK=${KB_PRODUCER_QUICK:-}
if [[ -n ${KB_PRODUCER_WRAP:-} ]]; then
    printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$KB_PRODUCER_WRAP" "$P" >"$WORK/kb-producer"
    chmod +x "$WORK/kb-producer"
    P=$WORK/kb-producer
    QUICK=1
fi
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# run EXPECTED_RC NAME CMD...: runs CMD with stdout and stderr in $WORK/NAME.{out,err}.
run() {
    local want=$1 name=$2 rc=0
    shift 2
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
    if [[ $rc != "$want" ]]; then
        tail -n 20 "$WORK/$name.err" >&2
        die "$name: exit status $rc, expected $want"
    fi
    tail -n 1 "$WORK/$name.err"
}
expect_err() { grep -q -- "$2" "$WORK/$1.err" || die "$1: stderr lacks '$2'"; }

# Credentials and region the fake endpoint expects (AWS's documentation examples).
export AWS_ACCESS_KEY_ID=AKIDEXAMPLE
export AWS_SECRET_ACCESS_KEY='wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'
export AWS_REGION=eu-west-1
unset AWS_SESSION_TOKEN AWS_DEFAULT_REGION KINESIS_ENDPOINT KINESIS_STREAM

start_server() { # start_server ARGS...: sets PORT and SERVER_PID
    rm -f "$WORK/port" "$WORK/requests.log" "$WORK/stored"
    python3 "$HERE/fake_kinesis.py" --port-file "$WORK/port" --log "$WORK/requests.log" \
        --stored "$WORK/stored" --stream test-stream --region eu-west-1 "$@" &
    SERVER_PID=$!
    for _ in $(seq 100); do [[ -s $WORK/port ]] && break; sleep 0.05; done
    [[ -s $WORK/port ]] || die "fake_kinesis.py did not start"
    PORT=$(cat "$WORK/port")
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=; }
ms_since() { python3 -c 'import sys, time; print(round((time.time() - float(sys.argv[1])) * 1000))' "$1"; }

say "generating test input"
python3 "$HERE/checks.py" gen "$WORK/input.ndjson"
IN=$WORK/input.ndjson
ls -l "$IN" | awk '{print $5 " bytes, '"$(wc -l <"$IN")"' newlines"}'
SMALL=$WORK/small.ndjson
seq 1 40 | sed 's/.*/{"n":&}/' >"$SMALL"

# ---- 1. Dry runs ----------------------------------------------------------------------
say "1a. --dry-run from stdin: request shapes, order, refusals (exit 1)"
run 1 dry sh -c '"$0" --dry-run --stream test-stream <"$1"' "$P" "$IN"
python3 "$HERE/checks.py" dry "$IN" "$WORK/dry.out" "$WORK/dry.err" 10

say "1b. --dry-run --profile kds-5mib: requests within 5 MiB"
run 1 dry5 "$P" --dry-run --stream test-stream --profile kds-5mib "$IN"
python3 "$HERE/checks.py" dry "$IN" "$WORK/dry5.out" "$WORK/dry5.err" 5

say "1c. --dry-run --partition-key: one key, everything stored (exit 0)"
KINESIS_STREAM=test-stream run 0 dryk "$P" --dry-run --partition-key 'device "7"' "$SMALL"
python3 - "$WORK/dryk.out" <<'EOF'
import json, sys
recs = [r for line in open(sys.argv[1]) for r in json.loads(line)["Records"]]
assert len(recs) == 40 and {r["PartitionKey"] for r in recs} == {'device "7"'}, recs[:3]
print("ok: 40 records, all with the fixed key")
EOF

# ---- 2. Against the fake endpoint -----------------------------------------------------
say "2a. HTTP 500 on the first request, throughput errors, terminal KMS errors (exit 1)"
start_server --first-request 500 --fail-every 3 --terminal-marker TERMINAL-ME
run 1 served "$P" --stream test-stream --endpoint "http://127.0.0.1:$PORT" --backoff-base-ms 1 "$IN"
stop_server
python3 "$HERE/checks.py" served "$IN" "$WORK/requests.log" "$WORK/stored" "$WORK/served.err" TERMINAL-ME
expect_err served "request 1: HTTP 500 InternalFailure"

say "2b. throttled first request (X-Amzn-ErrorType only), session token, no refusals (exit 0)"
start_server --first-request throttle --fail-every 4 --session-token 'FQoGZXIvYXdzE//token+/='
AWS_SESSION_TOKEN='FQoGZXIvYXdzE//token+/=' KINESIS_ENDPOINT="http://127.0.0.1:$PORT" \
    run 0 token "$P" --stream test-stream --backoff-base-ms 1 "$SMALL"
stop_server
python3 "$HERE/checks.py" served "$SMALL" "$WORK/requests.log" "$WORK/stored" "$WORK/token.err" ""
expect_err token "ThrottlingException.*(throttling, will retry)"

say "2c. AccessDeniedException: every record terminal, nothing re-sent (exit 1)"
start_server --deny-all
run 1 denied "$P" --stream test-stream --endpoint "http://127.0.0.1:$PORT" --backoff-base-ms 1 "$SMALL"
stop_server
[[ $(wc -l <"$WORK/requests.log") == 1 ]] || die "denied: the request was sent again"
[[ $(grep -c 'failed: access_denied$' "$WORK/denied.err") == 40 ]] || die "denied: 40 terminal lines expected"
expect_err denied "0 stored, 0 refused, 40 failed, 1 requests, 0 retries"

say "2d. nothing listening: transport errors until --max-attempts (exit 1)"
run 1 transport "$P" --stream test-stream --endpoint "http://127.0.0.1:$PORT" \
    --backoff-base-ms 1 --max-attempts 3 "$SMALL"
[[ $(grep -c 'failed: transport (gave up' "$WORK/transport.err") == 40 ]] || die "transport: 40 gave-up lines expected"
expect_err transport "3 requests, 80 retries"

say "2e. ExpiredTokenException, environment credentials: they cannot change, so after
    --credentials-wait-ms the records waiting for them fail (exit 1)"
start_server --session-token NEW-TOKEN --expired-token OLD-TOKEN
AWS_SESSION_TOKEN=OLD-TOKEN run 1 credgiveup "$P" --stream test-stream \
    --endpoint "http://127.0.0.1:$PORT" --credentials-wait-ms 1500 "$SMALL"
stop_server
[[ $(grep -c 'failed: credentials (gave up: no valid credentials for 1500 ms)$' "$WORK/credgiveup.err") == 40 ]] ||
    die "credgiveup: 40 lines failed as credentials expected"
expect_err credgiveup "HTTP 400 ExpiredTokenException"
expect_err credgiveup "trying the same credentials again"
expect_err credgiveup "0 stored, 0 refused, 40 failed"
[[ $(grep -c . "$WORK/requests.log") -ge 2 ]] || die "credgiveup: the same credentials were not tried again"

# ---- 3. Setup errors --------------------------------------------------------------------
say "3. usage and setup errors (exit 2)"
run 2 nostream "$P" "$SMALL"
expect_err nostream "missing a stream"
run 2 nocreds env -u AWS_SECRET_ACCESS_KEY "$P" --stream s "$SMALL"
expect_err nocreds "missing credentials (AWS_SECRET_ACCESS_KEY)"
run 2 noregion env -u AWS_REGION "$P" --stream s "$SMALL"
expect_err noregion "missing a region"
run 2 badopt "$P" --stream s --frobnicate 1 "$SMALL"
run 2 badkey "$P" --stream s --dry-run --partition-key '' "$SMALL"
expect_err badkey "key_empty"
run 2 badkib "$P" --stream s --dry-run --max-record-kib 512 "$SMALL"
run 2 zerokib "$P" --stream s --dry-run --max-record-kib 0 "$SMALL"
expect_err zerokib "MaxRecordSizeInKiB"
# The library reads a zero retry-policy field as its default: 0 is refused, not passed on.
run 2 zeroattempts "$P" --stream s --dry-run --max-attempts 0 "$SMALL"
expect_err zeroattempts "use 1 to send each record once"
run 2 zerobackoff "$P" --stream s --dry-run --backoff-base-ms 0 "$SMALL"
expect_err zerobackoff "1 is the shortest backoff"
run 2 nofile "$P" --stream s --dry-run "$WORK/does-not-exist"
run 2 keyboth "$P" --stream s --dry-run --key-field device --partition-key k "$SMALL"
expect_err keyboth "cannot be used together"
run 2 keylines "$P" --stream s --dry-run --key-field device --format lines "$SMALL"
expect_err keylines "cannot be used with --format lines"
run 2 keyempty "$P" --stream s --dry-run --key-field '' "$SMALL"
expect_err keyempty "needs a field name"
run 2 badformat "$P" --stream s --dry-run --format csv "$SMALL"
expect_err badformat "expected lines or ndjson"
run 2 zeroinflight "$P" --stream s --dry-run --in-flight 0 "$SMALL"
expect_err zeroinflight "at least one request must be in flight"
run 2 bigflight "$P" --stream s --dry-run --in-flight 1025 "$SMALL"
run 2 zerolinger "$P" --stream s --dry-run --linger-ms 0 "$SMALL"
expect_err zerolinger "1 is the shortest linger"
run 2 smallbuffer "$P" --stream s --dry-run --buffer-mib 5 "$SMALL"
expect_err smallbuffer "cannot hold a request"
run 2 zerobuffer "$P" --stream s --dry-run --buffer-records 0 "$SMALL"
run 2 ordering "$P" --stream s --dry-run --per-key-order --allow-reordering "$SMALL"
expect_err ordering "cannot be used together"
run 2 nocredfile "$P" --stream s --credentials-file "$WORK/does-not-exist" "$SMALL"
expect_err nocredfile "credentials: .*does-not-exist: No such file"
printf '[other]\naws_access_key_id = A\naws_secret_access_key = B\n' >"$WORK/creds-other"
run 2 credsection "$P" --stream s --credentials-file "$WORK/creds-other" "$SMALL"
expect_err credsection "no section \[default\]"
printf '[default]\naws_access_key_id = A\n' >"$WORK/creds-nosecret"
run 2 credsecret "$P" --stream s --credentials-file "$WORK/creds-nosecret" "$SMALL"
expect_err credsecret "no aws_secret_access_key in \[default\]"
printf '[default]\naws_access_key_id = A\naws_secret_access_key = B\naws_session_token = a b\n' >"$WORK/creds-space"
run 2 credspace "$P" --stream s --credentials-file "$WORK/creds-space" "$SMALL"
expect_err credspace "aws_session_token is not printable ASCII"
run 0 help "$P" --help

# ---- 4. --key-field and --format ndjson: one file, one answer ---------------------------
# A crafted file (checks.py KEY_CASES: accepted lines, invalid JSON, missing, null and
# object fields, numeric, multi-byte, escaped and empty keys, lines over the cap...),
# planned by the command-line tool and sent by the producer: the same lines refused for
# the same reasons, the same records with the same keys.
KEYS=$WORK/keys.ndjson
python3 "$HERE/checks.py" keys-gen "$KEYS"
cli_answer() { # cli_answer NAME OPTIONS...: the tool's refusals, summary and requests
    local name=$1 rc=0
    shift
    "$CLI" plan -q --summary json --refusals "$WORK/$name.cli-refusals" "$@" "$KEYS" \
        >"$WORK/$name.cli-summary" || rc=$?
    [[ $rc == 0 ]] || die "kinesis-batcher plan $*: exit status $rc"
    "$CLI" emit -q --out "$WORK/$name.cli" --stream test-stream "$@" "$KEYS" >/dev/null || rc=$?
    [[ $rc == 0 ]] || die "kinesis-batcher emit $*: exit status $rc"
}

say "4a. --key-field device --format ndjson, dry run: kinesis-batcher's refusals and keys (exit 1)"
cli_answer field --key-field device --format ndjson
run 1 field "$P" --dry-run --stream test-stream --key-field device --format ndjson "$KEYS"
python3 "$HERE/checks.py" keys key-field "$KEYS" "$WORK/field.cli" "$WORK/field.cli-refusals" \
    "$WORK/field.cli-summary" "$WORK/field.err" dry "$WORK/field.out"

say "4b. --key-field device against the fake endpoint, with retries (exit 1)"
start_server --fail-every 3
run 1 fieldserved "$P" --stream test-stream --endpoint "http://127.0.0.1:$PORT" \
    --backoff-base-ms 1 --key-field device "$KEYS"
stop_server
python3 "$HERE/checks.py" keys key-field "$KEYS" "$WORK/field.cli" "$WORK/field.cli-refusals" \
    "$WORK/field.cli-summary" "$WORK/fieldserved.err" served "$WORK/requests.log" "$WORK/stored"

say "4c. --format ndjson --partition-key k, as kinesis-batcher --format ndjson --key k (exit 1)"
cli_answer ndjson --format ndjson --key k
run 1 ndjson "$P" --dry-run --stream test-stream --format ndjson --partition-key k "$KEYS"
python3 "$HERE/checks.py" keys ndjson "$KEYS" "$WORK/ndjson.cli" "$WORK/ndjson.cli-refusals" \
    "$WORK/ndjson.cli-summary" "$WORK/ndjson.err" dry "$WORK/ndjson.out"

# ---- 5. The engine: requests in flight, linger, backpressure, credentials ----------
KEYED=$WORK/keyed.ndjson
python3 "$HERE/checks.py" keyed "$KEYED" 15000 2500

say "5a. 8 in flight, random latency: out-of-order responses, failures, per-key order (exit 0)"
start_server --latency-ms 5 --latency-jitter-ms 40 --fail-every 7 --seed 5
run 0 outoforder "$P" --stream test-stream --endpoint "http://127.0.0.1:$PORT" \
    --backoff-base-ms 1 --key-field k --in-flight 8 "$KEYED"
stop_server
python3 "$HERE/checks.py" served "$KEYED" "$WORK/requests.log" "$WORK/stored" \
    "$WORK/outoforder.err" "" perkey inflight=8 out-of-order

say "5b. 4 in flight: whole-request throttling, throughput errors, terminal KMS errors (exit 1)"
start_server --throttle-every 4 --fail-every 3 --terminal-marker TERMINAL-ME
run 1 throttled "$P" --stream test-stream --endpoint "http://127.0.0.1:$PORT" \
    --backoff-base-ms 1 --in-flight 4 "$IN"
stop_server
python3 "$HERE/checks.py" served "$IN" "$WORK/requests.log" "$WORK/stored" \
    "$WORK/throttled.err" TERMINAL-ME inflight=4
expect_err throttled "HTTP 400 ThrottlingException: .*(throttling, will retry)"
grep -Eq ', [1-9][0-9]* throttled' "$WORK/throttled.err" || die "throttled: no throttling counted"

say "5c. ExpiredTokenException until the credentials file changes: nothing lost (exit 0)"
CREDS=$WORK/credentials
write_creds() { # an AWS shared credentials file, replaced at once
    printf '# test\n[other]\naws_session_token = WRONG\n\n[default]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n' \
        "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$1" >"$CREDS.tmp"
    mv "$CREDS.tmp" "$CREDS"
}
write_creds OLD-TOKEN
start_server --session-token NEW-TOKEN --expired-token OLD-TOKEN --fail-every 5 --latency-ms 5
(sleep 1.5 && write_creds NEW-TOKEN) &
ROTATE_PID=$!
t0=$EPOCHREALTIME
run 0 credfile env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$P" --stream test-stream \
    --endpoint "http://127.0.0.1:$PORT" --credentials-file "$CREDS" --in-flight 4 \
    --backoff-base-ms 1 "$KEYED"
wait "$ROTATE_PID"
stop_server
python3 "$HERE/checks.py" served "$KEYED" "$WORK/requests.log" "$WORK/stored" \
    "$WORK/credfile.err" "" perkey
expect_err credfile "HTTP 400 ExpiredTokenException: .*(credentials, waiting for new credentials)"
expect_err credfile "credentials reloaded from $CREDS"
expired=$(grep -c '"request_failed"' "$WORK/requests.log" || true)
[[ $expired -ge 1 ]] || die "credfile: no request was refused for its token"
echo "ok: $expired requests refused for the old token, all stored after the file changed ($(ms_since "$t0") ms)"

say "5d. backpressure: --buffer-records 50, 2 in flight (exit 0)"
start_server --latency-ms 5 --fail-every 4
run 0 backpressure "$P" --stream test-stream --endpoint "http://127.0.0.1:$PORT" \
    --backoff-base-ms 1 --key-field k --in-flight 2 --buffer-records 50 "$KEYED"
stop_server
python3 "$HERE/checks.py" served "$KEYED" "$WORK/requests.log" "$WORK/stored" \
    "$WORK/backpressure.err" "" perkey inflight=2
python3 -c '
import json, sys
sizes = [len(json.loads(l)["entries"]) for l in open(sys.argv[1])]
assert max(sizes) <= 50, max(sizes)
print(f"ok: {len(sizes)} requests of at most {max(sizes)} records (the buffer holds 50)")
' "$WORK/requests.log"

say "5e. linger: a trickle (a line every 400 ms) is sent --linger-ms 150 after each line (exit 0)"
start_server --fail-every 0
cat >"$WORK/trickle.py" <<'PY'
import json, sys, time
with open(sys.argv[1], "w") as log:
    for i in range(6):
        line = json.dumps({"trickle": i})
        log.write(f"{time.time()} {line}\n")
        log.flush()
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        time.sleep(0.4)
PY
python3 "$WORK/trickle.py" "$WORK/writes" | run 0 linger "$P" --stream test-stream \
    --endpoint "http://127.0.0.1:$PORT" --linger-ms 150 -
stop_server
# Each line waits its linger alone: then sent 150 ms (plus a few) after it was written.
# Under a wrapper (valgrind) a request can take longer than a line's interval: lines
# then share requests, and only "sent within seconds" is checked.
if [[ -n ${KB_PRODUCER_WRAP:-} ]]; then linger_window=(0 5000); else linger_window=(140 400); fi
python3 "$HERE/checks.py" linger "$WORK/writes" "$WORK/requests.log" "${linger_window[@]}"

say "5h. SIGTERM: the lines read (lingering for a minute) are sent before exiting (exit 0)"
start_server --fail-every 0
{ seq 1 30 | sed 's/.*/{"n":&}/'; sleep 4; } | "$P" --stream test-stream \
    --endpoint "http://127.0.0.1:$PORT" --linger-ms 60000 >"$WORK/sigterm.out" 2>"$WORK/sigterm.err" &
PRODUCER_PID=$!
sleep "${KB_PRODUCER_WRAP:+2}${KB_PRODUCER_WRAP:-0.5}"
[[ ! -s $WORK/requests.log ]] || die "sigterm: a request was sent before the signal"
kill -TERM "$PRODUCER_PID"
rc=0
wait "$PRODUCER_PID" || rc=$?
stop_server
tail -n 1 "$WORK/sigterm.err"
[[ $rc == 0 ]] || die "sigterm: exit status $rc"
expect_err sigterm "interrupted: sending the records read so far"
expect_err sigterm "interrupted: 30 lines, 30 stored, 0 refused, 0 failed"
[[ $(wc -l <"$WORK/stored") == 30 ]] || die "sigterm: $(wc -l <"$WORK/stored") records stored, expected 30"

if [[ -z $QUICK ]]; then
    say "5f. throughput: 8 in flight against 1, 50 ms a request (exit 0; at least 5x)"
    TP=$WORK/throughput.ndjson
    seq 1 32000 | sed 's/.*/{"n":&,"msg":"a line of some forty bytes or so"}/' >"$TP"
    start_server --fast --latency-ms 50
    t0=$EPOCHREALTIME
    run 0 tp1 "$P" --stream test-stream --endpoint "http://127.0.0.1:$PORT" --in-flight 1 "$TP"
    t1=$EPOCHREALTIME
    run 0 tp8 "$P" --stream test-stream --endpoint "http://127.0.0.1:$PORT" --in-flight 8 "$TP"
    t2=$EPOCHREALTIME
    stop_server
    expect_err tp1 "done: 32000 lines, 32000 stored"
    expect_err tp8 "done: 32000 lines, 32000 stored"
    python3 -c '
import json, sys
t0, t1, t2 = map(float, sys.argv[1:4])
ms1, ms8 = round((t1 - t0) * 1000), round((t2 - t1) * 1000)
log = [json.loads(l) for l in open(sys.argv[4])]
assert sum(r["records"] for r in log) == 64000, "the endpoint did not get every record twice"
ratio, most = ms1 / ms8, max(r["concurrent"] for r in log)
print(f"ok: 32000 records, {len(log) // 2} requests: 1 in flight {ms1} ms, 8 in flight "
      f"{ms8} ms: {ratio:.1f}x, up to {most} at once")
assert ratio >= 5, f"8 in flight is only {ratio:.1f}x faster than 1"
' "$t0" "$t1" "$t2" "$WORK/requests.log"

    say "5g. memory bound: 200 MB of 16-byte lines from a pipe, max RSS under 100 MB (exit 0)"
    start_server --fast
    t0=$EPOCHREALTIME
    # The producer's own status: yes dies of SIGPIPE when head has had enough.
    set +e +o pipefail
    yes '{"k":"a","v":1}' | head -c 200M | /usr/bin/time -v -o "$WORK/mem.time" \
        "$P" --stream test-stream --endpoint "http://127.0.0.1:$PORT" --in-flight 4 \
        >"$WORK/mem.out" 2>"$WORK/mem.err"
    rc=${PIPESTATUS[2]}
    set -e -o pipefail
    stop_server
    [[ $rc == 0 ]] || { tail "$WORK/mem.err" >&2; die "mem: exit status $rc"; }
    tail -n 1 "$WORK/mem.err"
    expect_err mem "done: 13107200 lines, 13107200 stored"
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/mem.time")
    echo "ok: 13107200 records in $(ms_since "$t0") ms, max RSS $((rss / 1024)) MiB"
    [[ $rss -lt 102400 ]] || die "mem: max RSS $rss KiB"
fi

say "all kb-producer tests passed in $((SECONDS - START)) s"
