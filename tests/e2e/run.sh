#!/usr/bin/env bash
# End-to-end tests against a real Kinesis API server (moto 5.2.5, 127.0.0.1 only).
#
#   bash tests/e2e/run.sh            # E2E_SEED=N to replay a workload; E2E_RECORDS=N
#
# Builds the C library (make install into target/e2e/prefix), the C sample producer, the
# Go sample producer and the CLI; keeps a venv with moto + boto3 in target/e2e/venv
# (created once); starts moto_server on a free port (tests/e2e/moto.sh: stopped at exit)
# and runs tests/e2e/e2e.py, then tests/compat/kpl_compat.py (our aggregates against the
# reference, aws-kinesis-agg, both ways), tests/e2e/aggregate_e2e.py (emit --aggregate
# against moto, read back and deaggregated) and tests/e2e/send_e2e.py (kinesis-batcher
# send against moto, through fault_proxy.py, and against send_fake_kinesis.py for
# streaming, credentials, throughput at 50 ms a request and memory on a 200 MB stdin),
# then tests/e2e/c_producer_e2e.sh (kb-producer) and tests/e2e/go_producer_e2e.sh (the Go
# Producer), each against a moto of its own.
# Outputs: target/e2e/. Exit status non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
E2E=$ROOT/target/e2e
mkdir -p "$E2E"
start=$(date +%s)
say() { printf 'e2e: %s\n' "$*"; }

# --- Python environment: moto 5.2.5 + flask + flask-cors + boto3, and the reference
# aggregator aws-kinesis-agg 1.2.3 with protobuf 4.25.3 (3.20.3 works too) and six (which
# it imports without declaring it), cached; a cached venv without them is made again.
VENV=$E2E/venv
want_moto=5.2.5
want_agg=1.2.3
want_protobuf=4.25.3
want_six=1.17.0
have_venv() {
    [[ -x $VENV/bin/python ]] && "$VENV/bin/python" - "$want_moto" "$want_agg" "$want_protobuf" "$want_six" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
assert version("moto") == sys.argv[1]
assert version("aws-kinesis-agg") == sys.argv[2]
assert version("protobuf") == sys.argv[3]
assert version("six") == sys.argv[4]
import aws_kinesis_agg.aggregator, aws_kinesis_agg.deaggregator
for p in ("flask", "flask-cors", "boto3"):
    version(p)
EOF
}
if ! have_venv; then
    say "creating $VENV (moto $want_moto, flask, flask-cors, boto3, aws-kinesis-agg $want_agg)"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        apt-get install -y python3-venv >/dev/null
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q "moto==$want_moto" flask flask-cors boto3 \
        "aws-kinesis-agg==$want_agg" "protobuf==$want_protobuf" "six==$want_six"
    have_venv || { say "venv install failed"; exit 1; }
fi

# GNU time, for send_e2e.py's max RSS of a run.
if [[ ! -x /usr/bin/time ]]; then
    say "installing GNU time"
    apt-get install -y time >/dev/null
fi

# --- Builds.
say "building the C library, the C and Go producers and the CLI"
make -s >/dev/null
make -s install PREFIX="$E2E/prefix" >/dev/null
export PKG_CONFIG_PATH=$E2E/prefix/lib/pkgconfig
export LD_LIBRARY_PATH=$E2E/prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
make -s -C bindings/c BUILD="$E2E/bindings-c" >/dev/null
export PATH=/usr/local/go/bin:$PATH
(cd bindings/go/examples/producer && go build -o "$E2E/go-producer" .)
cargo build -q --release -p kinesis-batcher-cli
say "built in $(( $(date +%s) - start )) s"

# --- moto on a free port (tests/e2e/moto.sh: put_record under a lock); always stopped.
WORK=$E2E/run
rm -rf "$WORK"
mkdir -p "$WORK"
source "$ROOT/tests/e2e/moto.sh"
start_moto "$WORK/moto.log"
ENDPOINT=$MOTO_ENDPOINT PORT=$MOTO_PORT
say "moto_server $want_moto on $ENDPOINT (pid $MOTO_PID)"

status=0
"$VENV/bin/python" "$ROOT/tests/e2e/e2e.py" --endpoint "$ENDPOINT" --moto-port "$PORT" \
    --work "$WORK" --cli "$ROOT/target/release/kinesis-batcher" \
    --c-producer "$E2E/bindings-c/kb-producer" --go-producer "$E2E/go-producer" \
    ${E2E_SEED:+--seed "$E2E_SEED"} ${E2E_RECORDS:+--records "$E2E_RECORDS"} \
    ${E2E_ONLY:+--only "$E2E_ONLY"} ${E2E_CLI_PROFILE:+--cli-profile "$E2E_CLI_PROFILE"} || status=$?
t=$(date +%s)
"$VENV/bin/python" "$ROOT/tests/compat/kpl_compat.py" --work "$WORK/compat" \
    --cli "$ROOT/target/release/kinesis-batcher" ${E2E_SEED:+--seed "$E2E_SEED"} || status=1
say "compatibility with aws-kinesis-agg in $(( $(date +%s) - t )) s"
t=$(date +%s)
"$VENV/bin/python" "$ROOT/tests/e2e/aggregate_e2e.py" --endpoint "$ENDPOINT" --work "$WORK/aggregate" \
    --cli "$ROOT/target/release/kinesis-batcher" ${E2E_SEED:+--seed "$E2E_SEED"} || status=1
say "aggregation against moto in $(( $(date +%s) - t )) s"
t=$(date +%s)
"$VENV/bin/python" "$ROOT/tests/e2e/send_e2e.py" --endpoint "$ENDPOINT" --work "$WORK/send" \
    --cli "$ROOT/target/release/kinesis-batcher" ${E2E_SEED:+--seed "$E2E_SEED"} || status=1
say "send against moto and a fake endpoint in $(( $(date +%s) - t )) s"
t=$(date +%s)
bash "$ROOT/tests/e2e/c_producer_e2e.sh" --producer "$E2E/bindings-c/kb-producer" \
    --work "$WORK/c-producer" ${E2E_SEED:+--seed "$E2E_SEED"} || status=1
say "kb-producer against moto in $(( $(date +%s) - t )) s"
t=$(date +%s)
bash "$ROOT/tests/e2e/go_producer_e2e.sh" ${E2E_SEED:+--seed "$E2E_SEED"} || status=1
say "the Go Producer against moto in $(( $(date +%s) - t )) s"
say "finished in $(( $(date +%s) - start )) s, status $status"
exit $status
