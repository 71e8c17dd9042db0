#!/usr/bin/env bash
# The Go Producer (bindings/go/producer) end to end against moto: tests/e2e/go_producer_e2e.py
# (directly, through fault_proxy.py's faults, and through --latency-ms 50 with 1 and 8
# requests in flight: exactly once, each key in order, 8 in flight >= 5x 1 in flight).
#
#   bash tests/e2e/go_producer_e2e.sh [--records N] [--latency-records N] [--min-ratio X] [--seed N]
#
# Needs the venv of tests/e2e/run.sh (target/e2e/venv: moto, boto3), made by running
# run.sh once. Installs the C library into target/e2e/prefix (as run.sh does), builds
# kbproduce into target/e2e/kbproduce, and starts its own moto on a free port through
# go_producer_moto.py: moto answering one request at a time, since moto's Kinesis loses
# records under concurrent PutRecords (see that file). Outputs under
# target/e2e/go-producer/; exit status non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
E2E=$ROOT/target/e2e
VENV=$E2E/venv
say() { printf 'go_producer_e2e: %s\n' "$*"; }

[[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c "import moto, boto3, werkzeug" 2>/dev/null ||
    { say "no venv with moto at $VENV: run 'bash tests/e2e/run.sh' once"; exit 1; }

say "building the C library (make install into target/e2e/prefix) and kbproduce"
make -s install PREFIX="$E2E/prefix" >/dev/null
export PKG_CONFIG_PATH=$E2E/prefix/lib/pkgconfig
export PATH=/usr/local/go/bin:$PATH
# Go's build cache does not see the C header or library: name this install in
# CGO_CFLAGS (part of the cache key), as bindings/go/test.sh does.
library_id="$(cat "$E2E/prefix/include/kinesis_batcher.h" "$E2E/prefix/lib/libkinesis_batcher.a" | sha256sum | cut -c1-16)"
export CGO_CFLAGS="$(go env CGO_CFLAGS) -DKBGO_LIBRARY_ID=$library_id"
(cd bindings/go/producer && go build -o "$E2E/kbproduce" ./cmd/kbproduce)

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_SESSION_TOKEN=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KINESIS || true

WORK=$E2E/go-producer
rm -rf "$WORK"
mkdir -p "$WORK"
MOTO_PID=""
cleanup() {
    if [[ -n $MOTO_PID ]]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
endpoint=http://127.0.0.1:$port
MOTO_PORT=$port "$VENV/bin/python" "$ROOT/tests/e2e/go_producer_moto.py" -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
for i in $(seq 1 100); do
    if "$VENV/bin/python" - "$endpoint" <<'EOF' 2>/dev/null; then break; fi
import sys, boto3
boto3.client("kinesis", endpoint_url=sys.argv[1], region_name="us-east-1").list_streams()
EOF
    kill -0 "$MOTO_PID" 2>/dev/null || { say "moto died:"; cat "$WORK/moto.log"; exit 1; }
    [[ $i == 100 ]] && { say "moto does not answer on $endpoint"; exit 1; }
    sleep 0.2
done
say "moto (one request at a time) on $endpoint (pid $MOTO_PID)"

"$VENV/bin/python" "$ROOT/tests/e2e/go_producer_e2e.py" --endpoint "$endpoint" --moto-port "$port" \
    --work "$WORK" --kbproduce "$E2E/kbproduce" "$@"
