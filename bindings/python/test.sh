#!/usr/bin/env bash
# The Python binding's tests: one command from a fresh checkout.
#
#   bash bindings/python/test.sh          # from anywhere; E2E=0 skips the moto tests
#
# Keeps a venv in target/python/venv with the pinned test tools (created once, made again
# when a pin changes), installs the package the way a user does (`pip install
# ./bindings/python`: maturin builds the abi3 wheel), runs pytest (boundaries, hypothesis
# against a naive model, the drop-in, and boto3 against moto when present), mypy --strict
# on a typed example (and checks that mypy rejects a wrongly typed one), then installs the
# built wheel alone into a clean venv and imports it there. Cargo's build directory is
# target/python/cargo, kept between runs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=$ROOT/bindings/python
OUT=$ROOT/target/python
VENV=$OUT/venv
mkdir -p "$OUT"
export CARGO_TARGET_DIR=$OUT/cargo
say() { printf 'python: %s\n' "$*"; }
start=$(date +%s)

# Pins: the test tools, and moto + boto3 and the reference aggregator (aws-kinesis-agg, with
# protobuf and six) as tests/e2e/run.sh pins them.
PINS=(pytest==8.3.5 hypothesis==6.131.0 mypy==1.15.0 "moto==5.2.5" flask flask-cors boto3 typing_extensions
      "aws-kinesis-agg==1.2.3" "protobuf==4.25.3" "six==1.17.0")
PINS_ID=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-16)
if [[ ! -x $VENV/bin/python || $(cat "$VENV/.pins" 2>/dev/null) != "$PINS_ID" ]]; then
    say "creating $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" 2>/dev/null || { rm -rf "$VENV"; apt-get install -y python3-venv >/dev/null; python3 -m venv "$VENV"; }
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q "${PINS[@]}"
    echo "$PINS_ID" >"$VENV/.pins"
fi

say "pip install ./bindings/python"
(cd "$ROOT" && nice -n 19 "$VENV/bin/pip" install -q --force-reinstall --no-deps ./bindings/python)

say "pytest"
(cd "$PY" && nice -n 19 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests)

say "mypy --strict"
(cd "$PY/examples" && nice -n 19 "$VENV/bin/mypy" --strict --no-incremental typed_example.py)
"$VENV/bin/python" "$PY/examples/typed_example.py"
# The stubs must be able to fail a program: a plan is not an int.
bad=$OUT/typed_bad.py
printf 'from kinesis_batcher import plan\nx: int = plan([])\n' >"$bad"
if (cd "$OUT" && "$VENV/bin/mypy" --strict --no-incremental "$bad" >/dev/null 2>&1); then
    say "FAIL: mypy accepted a wrongly typed program"; exit 1
fi

say "the wheel in a clean venv"
rm -rf "$OUT/wheels"
(cd "$ROOT" && nice -n 19 "$VENV/bin/pip" wheel -q --no-deps -w "$OUT/wheels" ./bindings/python)
wheel=$(ls "$OUT"/wheels/kinesis_batcher-*-abi3-*.whl)
CLEAN=$OUT/clean-venv
rm -rf "$CLEAN"
python3 -m venv "$CLEAN"
"$CLEAN/bin/pip" install -q --no-index --no-deps "$wheel"
(cd / && "$CLEAN/bin/python" -c '
import kinesis_batcher, kinesis_batcher.compat, kinesis_batcher.aws, kinesis_batcher.aggregation, os
from importlib.resources import files
p = kinesis_batcher.plan([(b"x", "k")])
assert [b.count for b in p.batches] == [1]
assert files("kinesis_batcher").joinpath("py.typed").is_file()
assert files("kinesis_batcher").joinpath("_native.pyi").is_file()
print("python: clean venv imports", os.path.basename(kinesis_batcher._native.__file__))
')
say "ok in $(($(date +%s) - start)) s ($(basename "$wheel"))"
