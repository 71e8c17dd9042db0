#!/usr/bin/env bash
# The full test suite: what the README's second command runs and what CI runs.
# Installs what it needs; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain components"
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

step "system packages (C compiler, pkg-config, valgrind, libcurl headers)"
# The C ABI's tests need these; install whatever is missing (Debian/Ubuntu).
missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ] ||
  missing+=(libcurl4-openssl-dev)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get install -y -q "${missing[@]}" >/dev/null ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${missing[@]}" >/dev/null; }
fi

step "format and lints (the no_std core alone, then everything with the C ABI)"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo clippy --workspace --all-targets --features kinesis-batcher/ffi-test-panic -- -D warnings

step "docs (broken links and examples are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet --features kinesis-batcher/ffi

step "unit, boundary, property, no-allocation, doc, header and C suite tests (optimised, with overflow and debug checks)"
cargo test --workspace --profile ci --features kinesis-batcher/ffi-test-panic

step "the C suite under AddressSanitizer + UndefinedBehaviorSanitizer, and under valgrind"
bash scripts/c-memcheck.sh

step "install into a temporary prefix; build and link a consumer with pkg-config alone"
bash scripts/install-test.sh

step "the README's C example, and the sample C producer against a fake Kinesis endpoint"
bash scripts/readme-c-example.sh
prefix="$PWD/target/c-prefix"
rm -rf "$prefix"
make -s install PREFIX="$prefix" >/dev/null
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" bash bindings/c/test/run.sh

step "the Go binding (vet, race, cgocheck2, GOGC=1, fuzz, a user's module outside the checkout) and its example producer"
export PATH="$PATH:/usr/local/go/bin"
bash bindings/go/test.sh
(
  # The library as bindings/go/test.sh installed it, found with pkg-config.
  export PKG_CONFIG_PATH="$PWD/target/go-prefix/lib/pkgconfig"
  cd bindings/go/examples/producer
  unformatted="$(gofmt -l .)"
  [ -z "$unformatted" ] || { echo "not gofmt-ed: $unformatted"; exit 1; }
  go vet ./...
  go test -count=1 .
  go test -count=1 -race .
)

step "the Python binding (pytest, hypothesis, moto + fault proxy, aws-kinesis-agg, mypy --strict, the wheel in a clean venv)"
bash bindings/python/test.sh

step "end to end against a real Kinesis API server (moto), directly and through a fault-injecting proxy"
bash tests/e2e/run.sh

step "fuzzing: every target for a bounded time (needs a nightly toolchain; says so when it skips)"
bash scripts/fuzz.sh

step "miri over the core and the C ABI's unsafe code (needs nightly miri; says so when it skips)"
bash scripts/miri.sh

step "benchmarks run once each (timings come from 'cargo bench', not from here)"
# The library's benches only: the tool has none, and a bench build of it would compile the
# AWS SDK a third time (after the ci and release profiles).
cargo bench -p kinesis-batcher --features ffi -- --test

step "the README's main command, and the Rust example"
cargo run --quiet --release -- demo >/dev/null 2>&1
cargo run --quiet --release --example plan_records >/dev/null

echo
echo "all checks passed"
