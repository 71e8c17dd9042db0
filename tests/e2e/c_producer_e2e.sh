#!/usr/bin/env bash
# kb-producer (bindings/c) against moto, with several requests in flight: directly, and
# through fault_proxy.py (faults, latency). Exactly-once and per-key order are checked
# on the records read back with boto3 (bindings/c/test/e2e_moto.py).
#
#   bash tests/e2e/c_producer_e2e.sh [--producer PATH] [--work DIR] [--seed N] [--records N]
#
# Needs the venv tests/e2e/run.sh creates (target/e2e/venv: moto 5.2.5, boto3). Without
# --producer it builds the library (make install into target/e2e/prefix) and kb-producer
# (target/e2e/bindings-c); with it, LD_LIBRARY_PATH must already find the library.
#
# It starts its own moto_server on a free port (stopped at exit), with one fix: moto
# 5.2.5's Shard.put_record takes the shard's highest sequence number plus one without a
# lock, so two PutRecords served at once on one shard can get the same number, and the
# later record silently replaces the earlier one (both acknowledged; 8 boto3 threads
# writing 40,000 records to one shard read back about 38,500). Here put_record runs
# under a lock. Any driver with several requests in flight needs this against moto.
# Exit status non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
E2E=$ROOT/target/e2e
VENV=$E2E/venv
PRODUCER= WORK=$E2E/run/c-producer EXTRA=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --producer) PRODUCER=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --seed | --records) EXTRA+=("$1" "$2"); shift 2 ;;
    *) echo "c_producer_e2e: unknown argument $1" >&2; exit 2 ;;
    esac
done
say() { printf 'c_producer_e2e: %s\n' "$*"; }
[[ -x $VENV/bin/python ]] || { say "no venv at $VENV: run tests/e2e/run.sh once"; exit 2; }

if [[ -z $PRODUCER ]]; then
    say "building the library and kb-producer"
    (cd "$ROOT" && make -s >/dev/null && make -s install PREFIX="$E2E/prefix" >/dev/null)
    PKG_CONFIG_PATH=$E2E/prefix/lib/pkgconfig make -s -C "$ROOT/bindings/c" BUILD="$E2E/bindings-c" >/dev/null
    PRODUCER=$E2E/bindings-c/kb-producer
    export LD_LIBRARY_PATH=$E2E/prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
[[ -x $PRODUCER ]] || { say "no kb-producer at $PRODUCER"; exit 2; }

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_SESSION_TOKEN=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE KINESIS_ENDPOINT KINESIS_STREAM || true
mkdir -p "$WORK"

MOTO_PID=
cleanup() {
    if [[ -n $MOTO_PID ]]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$VENV/bin/python" -c '
import sys, threading
from moto.kinesis import models
lock, put_record = threading.Lock(), models.Shard.put_record
def serialized(self, *args, **kwargs):
    with lock:
        return put_record(self, *args, **kwargs)
models.Shard.put_record = serialized
from moto.server import main
main(sys.argv[1:])
' -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
ENDPOINT=http://127.0.0.1:$PORT
for i in $(seq 1 100); do
    if "$VENV/bin/python" -c 'import sys, boto3; boto3.client("kinesis", endpoint_url=sys.argv[1], region_name="us-east-1").list_streams()' "$ENDPOINT" 2>/dev/null; then break; fi
    kill -0 "$MOTO_PID" 2>/dev/null || { say "moto_server died:"; cat "$WORK/moto.log"; exit 1; }
    [[ $i == 100 ]] && { say "moto_server does not answer on $ENDPOINT"; exit 1; }
    sleep 0.2
done
say "moto_server (put_record serialized) on $ENDPOINT (pid $MOTO_PID)"

"$VENV/bin/python" "$ROOT/bindings/c/test/e2e_moto.py" --endpoint "$ENDPOINT" \
    --moto-port "$PORT" --producer "$PRODUCER" --work "$WORK" ${EXTRA[@]+"${EXTRA[@]}"}
