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

say "all kb-producer tests passed in $((SECONDS - START)) s"
