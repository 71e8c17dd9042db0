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
# It starts its own moto on a free port (tests/e2e/moto.sh; stopped at exit).
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

mkdir -p "$WORK"
source "$ROOT/tests/e2e/moto.sh"
start_moto "$WORK/moto.log"
say "moto_server on $MOTO_ENDPOINT (pid $MOTO_PID)"

"$VENV/bin/python" "$ROOT/bindings/c/test/e2e_moto.py" --endpoint "$MOTO_ENDPOINT" \
    --moto-port "$MOTO_PORT" --producer "$PRODUCER" --work "$WORK" ${EXTRA[@]+"${EXTRA[@]}"}
