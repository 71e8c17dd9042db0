# Sourced by the end-to-end scripts: moto on a free port of 127.0.0.1, fake credentials.
#
#   VENV=... ROOT=... source tests/e2e/moto.sh
#   start_moto LOGFILE     # sets MOTO_PID, MOTO_PORT, MOTO_ENDPOINT; stopped at exit
#
# moto runs through moto_server.py (its put_record under a lock: see there). The AWS_*
# variables point every SDK at fake credentials and away from the user's configuration.

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_SESSION_TOKEN=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KINESIS KINESIS_ENDPOINT KINESIS_STREAM || true

MOTO_PID=
stop_moto() {
    if [[ -n $MOTO_PID ]]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
        MOTO_PID=
    fi
}

start_moto() {
    local log=$1 i
    MOTO_PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    MOTO_ENDPOINT=http://127.0.0.1:$MOTO_PORT
    "$VENV/bin/python" "$ROOT/tests/e2e/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT" >"$log" 2>&1 &
    MOTO_PID=$!
    trap stop_moto EXIT
    trap 'exit 130' INT TERM
    for i in $(seq 1 100); do
        if "$VENV/bin/python" -c 'import sys, boto3; boto3.client("kinesis", endpoint_url=sys.argv[1], region_name="us-east-1").list_streams()' "$MOTO_ENDPOINT" 2>/dev/null; then
            return 0
        fi
        kill -0 "$MOTO_PID" 2>/dev/null || { echo "moto_server died:" >&2; cat "$log" >&2; return 1; }
        sleep 0.2
    done
    echo "moto_server does not answer on $MOTO_ENDPOINT" >&2
    return 1
}
