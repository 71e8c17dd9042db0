#!/usr/bin/env bash
# The Go Producer (bindings/go/producer) end to end against moto: tests/e2e/go_producer_e2e.py
# (directly, through fault_proxy.py's faults, and through --latency-ms 50 with 1 and 8
# requests in flight: exactly once, each key in order, 8 in flight >= 5x 1 in flight).
#
#   bash tests/e2e/go_producer_e2e.sh [--records N] [--latency-records N] [--min-ratio X] [--seed N]
#
# Needs the venv of tests/e2e/run.sh (target/e2e/venv: moto, boto3), made by running
# run.sh once. Installs the C library into target/e2e/prefix (as run.sh does), builds
# kbproduce into target/e2e/kbproduce, and starts its own moto on a free port
# (tests/e2e/moto.sh; stopped at exit). Outputs under
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
library_id="$( { echo "$E2E/prefix"; cat "$E2E/prefix/include/kinesis_batcher.h" "$E2E/prefix/lib/libkinesis_batcher.a"; } | sha256sum | cut -c1-16)"
export CGO_CFLAGS="$(go env CGO_CFLAGS) -DKBGO_LIBRARY_ID=$library_id"
(cd bindings/go/producer && go build -o "$E2E/kbproduce" ./cmd/kbproduce)

WORK=$E2E/go-producer
rm -rf "$WORK"
mkdir -p "$WORK"
source "$ROOT/tests/e2e/moto.sh"
start_moto "$WORK/moto.log"
say "moto_server on $MOTO_ENDPOINT (pid $MOTO_PID)"

"$VENV/bin/python" "$ROOT/tests/e2e/go_producer_e2e.py" --endpoint "$MOTO_ENDPOINT" --moto-port "$MOTO_PORT" \
    --work "$WORK" --kbproduce "$E2E/kbproduce" "$@"
